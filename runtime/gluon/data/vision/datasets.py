"""``gluon.data.vision`` datasets, read through :mod:`runtime.datasets` (``root=``, then
``SYMGRAPH_DATA``, then the cache; never faked)."""

from __future__ import annotations

import numpy as np

from runtime import datasets as _files
from runtime.ndarray.ndarray import NDArray

from ..dataset import Dataset


class _ImageDataset(Dataset):
    """Images (N, H, W, C) uint8 and int32 labels held in memory."""

    _loader = None

    def __init__(self, root=None, train=True, transform=None):
        self._train = train
        self._transform = transform
        images, labels = type(self)._loader(root, "train" if train else "test")
        self._data = np.ascontiguousarray(images.reshape(images.shape + (1,)))
        self._label = labels.astype(np.int32)

    def __len__(self):
        return len(self._label)

    def __getitem__(self, idx):
        if isinstance(idx, (int, np.integer)):
            data, label = NDArray(self._data[idx]), self._label[idx]
        else:
            data, label = NDArray(self._data[idx]), self._label[idx]
        if self._transform is not None:
            return self._transform(data, label)
        return data, label

    def _arrays(self):
        return None if self._transform is not None else (self._data, self._label)


class MNIST(_ImageDataset):
    """MNIST handwritten digits: 28x28x1 uint8 images, labels 0-9."""

    _loader = staticmethod(lambda root, kind: _files.load_mnist(root, kind))


class FashionMNIST(_ImageDataset):
    """Fashion-MNIST: same layout as MNIST, ten clothing classes."""

    _loader = staticmethod(lambda root, kind: _files.load_fashion_mnist(root, kind))
