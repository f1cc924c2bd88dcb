"""Gluon datasets: ``Dataset`` with lazy ``transform``/``transform_first``, ``SimpleDataset``,
``ArrayDataset``.

A dataset backed by whole arrays (``ArrayDataset``, the vision sets) exposes them through
``_arrays()``, so the DataLoader can gather a batch with one fancy index and run transforms
that know a batched form (``ToTensor``, ``Normalize``, ``Cast``) once per batch instead of
once per sample.
"""

from __future__ import annotations

import numpy as np

from runtime.ndarray.ndarray import NDArray


class Dataset:
    """Abstract dataset: ``__getitem__`` and ``__len__``."""

    def __getitem__(self, idx):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError

    def transform(self, fn, lazy=True):
        """A dataset whose samples are ``fn(*sample)``."""
        dataset = _LazyTransformDataset(self, fn, first=False)
        return dataset if lazy else SimpleDataset([dataset[i] for i in range(len(self))])

    def transform_first(self, fn, lazy=True):
        """A dataset whose samples have ``fn`` applied to their first element only."""
        dataset = _LazyTransformDataset(self, fn, first=True)
        return dataset if lazy else SimpleDataset([dataset[i] for i in range(len(self))])

    def filter(self, fn):
        return SimpleDataset([self[i] for i in range(len(self)) if fn(self[i])])

    def take(self, count):
        return SimpleDataset([self[i] for i in range(min(count, len(self)))])

    def _arrays(self):
        """(data, label) whole arrays when the samples are rows of them, else None."""
        return None


class SimpleDataset(Dataset):
    """Any sequence (list, numpy array) as a dataset."""

    def __init__(self, data):
        self._data = data

    def __len__(self):
        return len(self._data)

    def __getitem__(self, idx):
        return self._data[idx]


def _wrap(value):
    if isinstance(value, np.ndarray) and value.ndim > 0:
        return NDArray(value)
    return value


class ArrayDataset(Dataset):
    """Rows of several arrays of one length, returned together."""

    def __init__(self, *args):
        if not args:
            raise ValueError("Needs at least 1 arrays")
        self._length = len(args[0])
        self._data = []
        for index, data in enumerate(args):
            if len(data) != self._length:
                raise ValueError(f"All arrays must have the same length; array[0] has length "
                                 f"{self._length} while array[{index}] has {len(data)}.")
            if isinstance(data, NDArray):
                data = data._value()
            self._data.append(data)

    def __getitem__(self, idx):
        if len(self._data) == 1:
            return _wrap(self._data[0][idx])
        return tuple(_wrap(d[idx]) for d in self._data)

    def __len__(self):
        return self._length

    def _arrays(self):
        if all(isinstance(d, np.ndarray) for d in self._data) and len(self._data) == 2:
            return tuple(self._data)
        return None


class _LazyTransformDataset(Dataset):
    def __init__(self, data, fn, first):
        self._data, self._fn, self._first = data, fn, first

    def __len__(self):
        return len(self._data)

    def __getitem__(self, idx):
        item = self._data[idx]
        if self._first:
            if isinstance(item, tuple):
                return (self._fn(item[0]),) + item[1:]
            return self._fn(item)
        if isinstance(item, tuple):
            return self._fn(*item)
        return self._fn(item)

    def _batched(self, indices):
        """(data, label) for ``indices`` with the transform applied once, or None."""
        arrays = whole_arrays(self._data)
        batch = getattr(self._fn, "batch", None)
        if arrays is None or not self._first or batch is None:
            return None
        data, label = arrays
        return batch(data[indices]), label[indices]


def whole_arrays(dataset):
    """(data, label) when every sample of ``dataset`` is a row of two whole arrays, else
    None. A subclass that overrides ``__getitem__`` (an augmentation, say) is honoured:
    its samples are fetched one by one."""
    method = getattr(dataset, "_arrays", None)
    if method is None:
        return None
    owner = next(c for c in type(dataset).__mro__ if "_arrays" in c.__dict__)
    if type(dataset).__getitem__ is not owner.__getitem__:
        return None
    return method()
