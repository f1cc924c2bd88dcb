"""``mx.io``: data descriptors, batches and iterators with MXNet 1.x semantics.

Batches hold numpy arrays. ``NDArrayIter.next()`` has a fast path for the common case (no
roll-over, batch fully inside the data): it slices precomputed source lists and builds the
batch without going through getdata/getlabel/getpad, because Module.fit's whole per-batch
Python budget is a few tens of microseconds. The slow path reproduces MXNet exactly.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import weakref
from collections import namedtuple

import numpy as np

__all__ = ["DataDesc", "DataBatch", "DataIter", "NDArrayIter", "CSVIter", "ResizeIter",
           "PrefetchingIter", "MNISTIter"]


class DataDesc(namedtuple("DataDesc", ["name", "shape"])):
    """``(name, shape)`` namedtuple with extra ``dtype`` and ``layout`` attributes."""

    def __new__(cls, name, shape, dtype=np.float32, layout="NCHW"):
        ret = super().__new__(cls, name, shape)
        ret.dtype = dtype
        ret.layout = layout
        return ret

    def __repr__(self):
        return f"DataDesc[{self.name},{self.shape},{self.dtype},{self.layout}]"

    @staticmethod
    def get_batch_axis(layout):
        """Index of 'N' in ``layout`` (0 when layout is None, -1 when there is no N)."""
        if layout is None:
            return 0
        return layout.find("N")

    @staticmethod
    def get_list(shapes, types):
        """DataDescs from ``[(name, shape)]`` and optional ``[(name, dtype)]``."""
        if types is not None:
            type_dict = dict(types)
            return [DataDesc(x[0], x[1], type_dict[x[0]]) for x in shapes]
        return [DataDesc(x[0], x[1]) for x in shapes]


class DataBatch:
    """One batch: lists of arrays plus ``pad`` (filler samples at the end) and ``index``."""

    __slots__ = ("data", "label", "pad", "index", "bucket_key", "provide_data", "provide_label")

    def __init__(self, data, label=None, pad=None, index=None, bucket_key=None,
                 provide_data=None, provide_label=None):
        if data is not None and not isinstance(data, (list, tuple)):
            raise TypeError("Data must be list of NDArrays")
        if label is not None and not isinstance(label, (list, tuple)):
            raise TypeError("Label must be list of NDArrays")
        self.data = data
        self.label = label
        self.pad = pad
        self.index = index
        self.bucket_key = bucket_key
        self.provide_data = provide_data
        self.provide_label = provide_label

    def __str__(self):
        data_shapes = [d.shape for d in self.data]
        label_shapes = [lb.shape for lb in self.label] if self.label else None
        return f"{type(self).__name__}: data shapes: {data_shapes} label shapes: {label_shapes}"


def _new_batch(data, label, pad, index):
    """Build a DataBatch without the type checks (inputs are known-good lists)."""
    batch = DataBatch.__new__(DataBatch)
    batch.data = data
    batch.label = label
    batch.pad = pad
    batch.index = index
    batch.bucket_key = None
    batch.provide_data = None
    batch.provide_label = None
    return batch


class DataIter:
    """Base iterator: subclasses give iter_next/getdata/getlabel/getpad and provide_*."""

    def __init__(self, batch_size=0):
        self.batch_size = batch_size

    def __iter__(self):
        return self

    def reset(self):
        """Go back to the first batch."""

    def next(self):
        """The next DataBatch, or StopIteration at the end of the epoch."""
        if self.iter_next():
            return DataBatch(data=self.getdata(), label=self.getlabel(), pad=self.getpad(),
                             index=self.getindex())
        raise StopIteration

    def __next__(self):
        return self.next()

    def iter_next(self):
        """Advance; True if a batch is available."""

    def getdata(self):
        """Data arrays of the current batch."""

    def getlabel(self):
        """Label arrays of the current batch."""

    def getindex(self):
        """Sample indices of the current batch (None when unknown)."""
        return None

    def getpad(self):
        """Number of filler samples at the end of the current batch."""

    # provide_data / provide_label: subclasses either assign them in __init__ (as MXNet's
    # ResizeIter does) or override them as properties, so the base allows both.
    @property
    def provide_data(self):
        try:
            return self.__dict__["_provide_data"]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} does not define provide_data") \
                from None

    @provide_data.setter
    def provide_data(self, value):
        self.__dict__["_provide_data"] = value

    @property
    def provide_label(self):
        try:
            return self.__dict__["_provide_label"]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} does not define provide_label") \
                from None

    @provide_label.setter
    def provide_label(self, value):
        self.__dict__["_provide_label"] = value


# ----------------------------------------------------------------------------- NDArrayIter
def _to_array(value, name, dtype):
    if hasattr(value, "asnumpy") and not isinstance(value, np.ndarray):
        value = value.asnumpy()
    try:
        return np.array(value, dtype=dtype, copy=True, order="C")
    except (TypeError, ValueError) as err:
        raise TypeError(f"Invalid type '{type(value)}' for {name}, should be numpy.ndarray, "
                        "a list of them or a dict with them as values") from err


def _init_data(data, allow_empty, default_name, dtype):
    """MXNet's io._init_data: normalise to a list of (name, array) sorted by name."""
    if data is None:
        if not allow_empty:
            raise ValueError("data must not be None")
        data = []
    if isinstance(data, np.ndarray) or hasattr(data, "asnumpy"):
        data = [data]
    if isinstance(data, (list, tuple)):
        if not allow_empty and not data:
            raise ValueError("data must not be empty")
        if len(data) == 1:
            data = {default_name: data[0]}
        else:
            data = {f"_{i}_{default_name}": d for i, d in enumerate(data)}
    if not isinstance(data, dict):
        raise TypeError("Input must be numpy.ndarray, a list of them or dict with them as values")
    return sorted(((k, _to_array(v, k, dtype)) for k, v in data.items()), key=lambda kv: kv[0])


def part_slice(num_data, num_parts, part_index, who="") -> slice:
    """The ``part_index``-th of ``num_parts`` equal contiguous slices of ``num_data``
    samples (the remainder is dropped, so every part has the same number of batches), as
    MXNet's iterators take a distributed rank's share; ``who`` prefixes the error."""
    num_parts, part_index = int(num_parts), int(part_index)
    if num_parts < 1 or not 0 <= part_index < num_parts:
        raise ValueError(f"{who}part_index must be in [0, num_parts), got "
                         f"part_index={part_index}, num_parts={num_parts}")
    step = num_data // num_parts
    return slice(part_index * step, (part_index + 1) * step)


def _part(data, label, num_data, num_parts, part_index):
    cut = part_slice(num_data, num_parts, part_index, "NDArrayIter: ")
    if cut.start == cut.stop:
        raise ValueError(f"NDArrayIter: {num_data} samples cannot be split into "
                         f"{num_parts} parts")
    return ([(k, v[cut]) for k, v in data], [(k, v[cut]) for k, v in label])


def _take(sources, idx):
    """The rows ``idx`` of each source (``np.take``: the same rows as ``v[idx]``, several
    times faster on 2-D arrays, which matters once the epoch itself runs natively)."""
    return [(k, np.take(v, idx, axis=0)) for k, v in sources]


def _in_epoch_order(field):
    """MXNet's ``data``/``label`` attribute over ``field`` (arrays in their first order):
    [(name, array)] read in the epoch's order; assigning one keeps the other in order."""

    def read(self):
        return self._in_order(getattr(self, field))

    def write(self, value):
        self._settle()
        setattr(self, field, value)

    return property(read, write)


class NDArrayIter(DataIter):
    """Iterate over in-memory arrays (MXNet's ``mx.io.NDArrayIter``).

    ``dtype`` (extension, default float32 as in MXNet) is what numpy inputs are cast to;
    ``dtype=None`` keeps each input's own dtype (for example integer labels).
    ``num_parts``/``part_index`` (as MXNet's MNISTIter and ImageRecordIter) keep the
    ``part_index``-th of ``num_parts`` contiguous slices of the samples: in distributed
    training each rank passes ``num_parts=kv.num_workers, part_index=kv.rank``.

    Shuffling gives MXNet's order (``idx`` permuted by numpy's global RNG, the data
    reordered by it, epoch after epoch), but the arrays stay in their first order and the
    epoch's order is kept as row numbers (``_order``) that each batch is gathered by (in
    native code by the compiled epoch): a reordered copy of the whole data set per epoch
    held two copies at once and cost a full pass over it.  ``data`` and ``label`` still
    read as MXNet's reordered lists (made on access).
    """

    def __init__(self, data, label=None, batch_size=1, shuffle=False, last_batch_handle="pad",
                 data_name="data", label_name="softmax_label", layout="NCHW",
                 dtype=np.float32, num_parts=1, part_index=0):
        super().__init__(batch_size)
        if last_batch_handle not in ("pad", "discard", "roll_over"):
            raise ValueError(f"last_batch_handle must be 'pad', 'discard' or 'roll_over', "
                             f"got {last_batch_handle!r}")
        if int(batch_size) <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self._order = None  # epoch row i is array row _order[i]; None: rows in place
        self.data = _init_data(data, False, data_name, dtype)
        self.label = _init_data(label, True, label_name, dtype)
        self.num_data = self.data[0][1].shape[0]
        for name, arr in self.data + self.label:
            if arr.ndim == 0 or arr.shape[0] != self.num_data:
                raise ValueError(f"NDArrayIter: {name} has shape {arr.shape}, but the first "
                                 f"source has {self.num_data} samples")
        if num_parts != 1 or part_index != 0:
            self.data, self.label = _part(self.data, self.label, self.num_data, num_parts,
                                          part_index)
            self.num_data = self.data[0][1].shape[0]
        self.idx = np.arange(self.num_data)
        self.shuffle = shuffle
        self.last_batch_handle = last_batch_handle
        self.batch_size = int(batch_size)
        self.layout = layout
        self.cursor = -self.batch_size
        self._cache_data = None
        self._cache_label = None
        self._fast = self._fast_path_allowed()
        self.reset()

    def _fast_path_allowed(self):
        """The fast next() is only exact when no subclass overrides the batch pieces."""
        cls = type(self)
        return all(getattr(cls, m) is getattr(NDArrayIter, m)
                   for m in ("getdata", "getlabel", "getpad", "getindex", "iter_next"))

    data = _in_epoch_order("_data")
    label = _in_epoch_order("_label")

    def _settle(self):
        """Put the arrays in the epoch's order (before one of them is replaced)."""
        if self._order is not None:
            self._data, self._label = self.data, self.label
            self._order = None

    @property
    def data_list(self):
        return [x[1] for x in self.data + self.label]

    def _in_order(self, sources):
        return sources if self._order is None else _take(sources, self._order)

    def _rows(self, array, start, end):
        """Epoch rows [start, end) of one of the arrays (a view when rows are in place)."""
        if self._order is None:
            return array[start:end]
        return np.take(array, self._order[start:end], axis=0)

    def _refresh_views(self):
        """Cache the array lists the fast path slices (rebuilt when data are permuted)."""
        self.num_source = len(self._data) + len(self._label)
        self._data_arrays = [x[1] for x in self._data]
        self._label_arrays = [x[1] for x in self._label]
        self._fast_end = self.num_data - self.batch_size

    @property
    def provide_data(self):
        return [DataDesc(k, (self.batch_size,) + v.shape[1:], v.dtype, layout=self.layout)
                for k, v in self._data]

    @property
    def provide_label(self):
        return [DataDesc(k, (self.batch_size,) + v.shape[1:], v.dtype, layout=self.layout)
                for k, v in self._label]

    def hard_reset(self):
        """Reset ignoring any rolled-over samples."""
        if self.shuffle:
            self._shuffle_data()
        self.cursor = -self.batch_size
        self._cache_data = None
        self._cache_label = None

    def reset(self):
        """Reshuffle (if asked) and rewind; roll_over keeps the held-back tail."""
        if self.shuffle:
            self._shuffle_data()
        else:
            self._refresh_views()
        n, bs = self.num_data, self.batch_size
        if self.last_batch_handle == "roll_over" and n - bs < self.cursor < n:
            self.cursor = self.cursor - n - bs
        else:
            self.cursor = -bs

    def iter_next(self):
        self.cursor += self.batch_size
        return self.cursor < self.num_data

    def next(self):
        if self._fast:
            c = self.cursor + self.batch_size
            if 0 <= c <= self._fast_end:
                self.cursor = c
                e = c + self.batch_size
                return _new_batch([self._rows(a, c, e) for a in self._data_arrays],
                                  [self._rows(a, c, e) for a in self._label_arrays], 0, None)
        if not self.iter_next():
            raise StopIteration
        data = self.getdata()
        label = self.getlabel()
        if data[0].shape[0] != self.batch_size:
            self._cache_data = data
            self._cache_label = label
            raise StopIteration
        return DataBatch(data=data, label=label, pad=self.getpad(), index=None)

    def _getdata(self, data_source, start=None, end=None):
        start = 0 if start is None else start
        if end is None:
            end = data_source[0][1].shape[0] if data_source else 0
        return [self._rows(x[1], start, end) for x in data_source]

    @staticmethod
    def _concat(first, second):
        if not first or not second:
            return first if first else second
        return [np.concatenate((a, b), axis=0) for a, b in zip(first, second)]

    @staticmethod
    def _tile(data, repeats):
        return [np.tile(d, (repeats,) + (1,) * (d.ndim - 1)) for d in data]

    def _batchify(self, data_source):
        """MXNet's NDArrayIter._batchify: roll-over head, padded tail, or a plain slice."""
        if self.cursor >= self.num_data:
            raise RuntimeError("DataIter needs reset.")
        n, bs, c = self.num_data, self.batch_size, self.cursor
        if self.last_batch_handle == "roll_over" and -bs < c < 0:
            return self._rolled_over_head(data_source)
        if self.last_batch_handle == "pad" and c + bs > n:
            return self._padded_tail(data_source)
        return self._getdata(data_source, c, min(c + bs, n))

    def _rolled_over_head(self, data_source):
        if self._cache_data is None and self._cache_label is None:
            raise RuntimeError("next epoch should have cached data")
        cache = self._cache_data if self._cache_data is not None else self._cache_label
        second = self._getdata(data_source, end=self.cursor + self.batch_size)
        if self._cache_data is not None:
            self._cache_data = None
        else:
            self._cache_label = None
        return self._concat(cache, second)

    def _padded_tail(self, data_source):
        n = self.num_data
        pad = self.batch_size - n + self.cursor
        first = self._getdata(data_source, start=self.cursor)
        if pad > n:
            second = self._tile(self._getdata(data_source, end=n), pad // n)
            if pad % n:
                second = self._concat(second, self._getdata(data_source, end=pad % n))
        else:
            second = self._getdata(data_source, end=pad)
        return self._concat(first, second)

    def getdata(self):
        return self._batchify(self._data)

    def getlabel(self):
        return self._batchify(self._label)

    def getpad(self):
        n, bs, c = self.num_data, self.batch_size, self.cursor
        if self.last_batch_handle == "pad" and c + bs > n:
            return c + bs - n
        if self.last_batch_handle == "roll_over" and -bs < c < 0:
            return -c
        return 0

    def _shuffle_data(self):
        """Permute ``idx`` with numpy's global RNG and physically reorder the data by it."""
        np.random.shuffle(self.idx)
        self._order = self.idx.copy() if self._order is None else self._order[self.idx]
        self._refresh_views()


# ----------------------------------------------------------------------------- CSVIter
def _read_csv(path, row_shape, dtype, what):
    width = int(np.prod(row_shape))
    try:
        table = np.loadtxt(os.fspath(path), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise ValueError(f"CSVIter: cannot parse {what} file {path!r}: {err}") from None
    if table.size == 0:
        raise ValueError(f"CSVIter: {what} file {path!r} is empty")
    if table.shape[1] != width:
        raise ValueError(f"CSVIter: rows of {path!r} have {table.shape[1]} values, but "
                         f"{what}_shape {tuple(row_shape)} needs {width}")
    return table.astype(dtype).reshape((table.shape[0],) + tuple(row_shape))


class CSVIter(DataIter):
    """Batches from CSV files (MXNet's C++ ``CSVIter``, read with numpy).

    round_batch=True wraps the last batch around to the start and the next epoch begins
    where the wrap ended; False leaves the previous batch's rows in the tail. Either way
    ``pad`` is the number of filler rows. Without ``label_csv`` the labels are 0.
    """

    def __init__(self, data_csv, data_shape, label_csv=None, label_shape=(1,), batch_size=1,
                 round_batch=True, dtype="float32", data_name="data",
                 label_name="softmax_label", **_ignored):
        super().__init__(int(batch_size))
        self.dtype = np.dtype(dtype)
        self._data = _read_csv(data_csv, tuple(data_shape), self.dtype, "data")
        n = self._data.shape[0]
        if label_csv is None or label_csv == "NULL":
            self._label = np.zeros((n,) + tuple(label_shape), dtype=self.dtype)
        else:
            self._label = _read_csv(label_csv, tuple(label_shape), self.dtype, "label")
            if self._label.shape[0] != n:
                raise ValueError(f"CSVIter: {label_csv!r} has {self._label.shape[0]} rows, "
                                 f"{data_csv!r} has {n}")
        if round_batch and n < self.batch_size:
            raise ValueError("CSVIter: number of input must be bigger than batch size")
        self.round_batch = bool(round_batch)
        self.provide_data = [DataDesc(data_name, (self.batch_size,) + tuple(data_shape),
                                      self.dtype)]
        self.provide_label = [DataDesc(label_name, (self.batch_size,) + tuple(label_shape),
                                       self.dtype)]
        self._pos = 0
        self._overflow = 0
        self._prev_rows = None
        self._current = None

    def reset(self):
        if not self.round_batch or self._overflow == 0:
            self._pos = 0
        self._overflow = 0
        self._prev_rows = None

    def iter_next(self):
        n, bs = self._data.shape[0], self.batch_size
        if self._overflow or self._pos >= n:
            return False
        rows = np.arange(self._pos, min(self._pos + bs, n))
        pad = bs - len(rows)
        self._pos += len(rows)
        if pad and self.round_batch:
            rows = np.concatenate((rows, np.arange(pad)))
            self._pos, self._overflow = pad, pad
        elif pad:
            rows = np.concatenate((rows, self._stale_rows(len(rows))))
        self._prev_rows = rows
        self._current = (rows, pad)
        return True

    def _stale_rows(self, start):
        """Tail rows kept from the previous batch (row 0 when there was none)."""
        if self._prev_rows is None:
            return np.zeros(self.batch_size - start, dtype=np.int64)
        return self._prev_rows[start:]

    def getdata(self):
        return [self._data[self._current[0]]]

    def getlabel(self):
        return [self._label[self._current[0]]]

    def getpad(self):
        return self._current[1]

    def getindex(self):
        return self._current[0].astype(np.uint64)


# ----------------------------------------------------------------------------- ResizeIter
class _WrappedBatchIter(DataIter):
    """An iterator whose ``iter_next`` stores the batch it hands out in ``current_batch``."""

    def getdata(self):
        return self.current_batch.data

    def getlabel(self):
        return self.current_batch.label

    def getindex(self):
        return self.current_batch.index

    def getpad(self):
        return self.current_batch.pad


class ResizeIter(_WrappedBatchIter):
    """Exactly ``size`` batches per epoch, resetting the inner iterator when it runs out."""

    def __init__(self, data_iter, size, reset_internal=True):
        super().__init__()
        self.data_iter = data_iter
        self.size = size
        self.reset_internal = reset_internal
        self.cur = 0
        self.current_batch = None
        self.provide_data = data_iter.provide_data
        self.provide_label = data_iter.provide_label
        self.batch_size = data_iter.batch_size
        if hasattr(data_iter, "default_bucket_key"):
            self.default_bucket_key = data_iter.default_bucket_key

    def reset(self):
        self.cur = 0
        if self.reset_internal:
            self.data_iter.reset()

    def iter_next(self):
        if self.cur == self.size:
            return False
        try:
            self.current_batch = self.data_iter.next()
        except StopIteration:
            self.data_iter.reset()
            self.current_batch = self.data_iter.next()
        self.cur += 1
        return True


# ----------------------------------------------------------------------------- PrefetchingIter
_NEXT, _RESET, _STOP = "next", "reset", "stop"


def _prefetch_worker(it, commands, results):
    """Serve one inner iterator: each command yields exactly one result (batch/None/error).

    It holds no reference to the PrefetchingIter, so that object can be collected and its
    finalizer can stop this thread.
    """
    while True:
        cmd = commands.get()
        if cmd == _STOP:
            return
        try:
            if cmd == _RESET:
                it.reset()
            results.put(("ok", it.next()))
        except StopIteration:
            results.put(("ok", None))
        except BaseException as err:  # handed to the consumer thread, re-raised there
            results.put(("error", err))


def _shutdown(workers):
    for commands, results, _thread, pending in workers:
        if pending[0]:
            results.get()
            pending[0] = False
        commands.put(_STOP)
    for _commands, _results, thread, _pending in workers:
        thread.join()


class PrefetchingIter(_WrappedBatchIter):
    """Prefetch one batch ahead from each iterator on a background thread; concatenate.

    ``rename_data``/``rename_label``: one dict per iterator mapping old to new names.
    Call :meth:`close` (or use ``with``) to join the threads; garbage collection does too.
    """

    def __init__(self, iters, rename_data=None, rename_label=None):
        super().__init__()
        if not isinstance(iters, list):
            iters = [iters]
        if not iters:
            raise ValueError("PrefetchingIter needs at least one iterator")
        self.n_iter = len(iters)
        self.iters = iters
        self.rename_data = rename_data
        self.rename_label = rename_label
        self.batch_size = self.provide_data[0][1][0]
        self.current_batch = None
        self._workers = []
        for it in iters:
            commands, results = queue.Queue(maxsize=1), queue.Queue(maxsize=1)
            thread = threading.Thread(target=_prefetch_worker, args=(it, commands, results),
                                      daemon=True, name="symgraph-prefetch")
            thread.start()
            self._workers.append((commands, results, thread, [False]))
        self._finalizer = weakref.finalize(self, _shutdown, self._workers)
        self._request(_NEXT)

    def _request(self, cmd):
        for commands, _results, _thread, pending in self._workers:
            commands.put(cmd)
            pending[0] = True

    def _collect(self):
        """One result per worker that owes one (None for workers with nothing pending)."""
        out, error = [], None
        for _commands, results, _thread, pending in self._workers:
            if not pending[0]:
                out.append(None)
                continue
            status, value = results.get()
            pending[0] = False
            if status == "error" and error is None:
                error = value
            out.append(value if status == "ok" else None)
        if error is not None:
            raise error
        return out

    @staticmethod
    def _renamed(descs_per_iter, renames):
        if renames is None:
            return sum(descs_per_iter, [])
        return [DataDesc(r.get(x.name, x.name), x.shape, x.dtype,
                         getattr(x, "layout", "NCHW")) if isinstance(x, DataDesc)
                else DataDesc(r.get(x[0], x[0]), x[1])
                for r, descs in zip(renames, descs_per_iter) for x in descs]

    @property
    def provide_data(self):
        return self._renamed([i.provide_data for i in self.iters], self.rename_data)

    @property
    def provide_label(self):
        return self._renamed([i.provide_label for i in self.iters], self.rename_label)

    def close(self):
        """Stop and join the prefetch threads (idempotent)."""
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def reset(self):
        if not self._finalizer.alive:
            raise RuntimeError("PrefetchingIter is closed")
        self._collect()
        self._request(_RESET)

    def iter_next(self):
        if not self._finalizer.alive:
            raise RuntimeError("PrefetchingIter is closed")
        if not any(p[0] for *_rest, p in self._workers):
            return False
        batches = self._collect()
        if batches[0] is None:
            if any(b is not None for b in batches):
                raise ValueError("Number of entry mismatches between iterators")
            return False
        if any(b is None or b.pad != batches[0].pad for b in batches):
            raise ValueError("Number of entry mismatches between iterators")
        self.current_batch = DataBatch(sum([list(b.data) for b in batches], []),
                                       sum([list(b.label or []) for b in batches], []),
                                       batches[0].pad, batches[0].index,
                                       provide_data=self.provide_data,
                                       provide_label=self.provide_label)
        self._request(_NEXT)
        return True

    def next(self):
        if self.iter_next():
            return self.current_batch
        raise StopIteration


# ----------------------------------------------------------------------------- MNISTIter
def _resolve_idx_path(path):
    """MXNet takes raw IDX paths; also accept the ``.gz`` download next to them."""
    path = os.fspath(path)
    if not os.path.exists(path) and os.path.exists(path + ".gz"):
        return path + ".gz"
    return path


class MNISTIter(DataIter):
    """MNIST from IDX files (gzip or raw), MXNet's C++ ``MNISTIter`` semantics.

    Pixels are scaled by 1/256 (as MXNet does, not 1/255); data (B,1,28,28) or (B,784) with
    ``flat``; labels (B,) float32; the last incomplete batch is dropped. ``shuffle`` permutes
    once at load with ``np.random.RandomState(seed)`` (MXNet's C++ RNG order is not
    reproduced). ``num_parts``/``part_index`` take a contiguous slice of the samples.
    """

    def __init__(self, image="./train-images-idx3-ubyte", label="./train-labels-idx1-ubyte",
                 batch_size=128, shuffle=True, flat=False, seed=0, silent=False, num_parts=1,
                 part_index=0, data_name="data", label_name="softmax_label", **_ignored):
        super().__init__(int(batch_size))
        from runtime.datasets import read_idx  # lazy: datasets pulls in urllib/hashlib

        images = read_idx(_resolve_idx_path(image))
        labels = read_idx(_resolve_idx_path(label))
        if images.ndim != 3 or labels.shape != images.shape[:1]:
            raise ValueError(f"MNISTIter: images {images.shape} and labels {labels.shape} "
                             "don't match")
        part = part_slice(images.shape[0], num_parts, part_index, "MNISTIter: ")
        order = np.arange(images.shape[0])[part]
        if shuffle:
            order = order[np.random.RandomState(seed).permutation(len(order))]
        shape = (-1, images.shape[1] * images.shape[2]) if flat else (-1, 1) + images.shape[1:]
        self._data = (images[order].astype(np.float32) * np.float32(1 / 256)).reshape(shape)
        self._label = labels[order].astype(np.float32)
        self._inst = order.astype(np.uint64)
        f32 = np.dtype(np.float32)  # MXDataIter describes batches with the arrays' dtype
        self.provide_data = [DataDesc(data_name, (self.batch_size,) + self._data.shape[1:], f32)]
        self.provide_label = [DataDesc(label_name, (self.batch_size,), f32)]
        self._loc = 0
        self._cur = 0
        if not silent:
            logging.info("MNISTIter: load %d images, shuffle=%d, shape=%s", len(order),
                         int(bool(shuffle)), (self.batch_size,) + self._data.shape[1:])

    def reset(self):
        self._loc = 0

    def iter_next(self):
        if self._loc + self.batch_size <= self._data.shape[0]:
            self._cur = self._loc
            self._loc += self.batch_size
            return True
        return False

    def next(self):
        if not self.iter_next():
            raise StopIteration
        s = slice(self._cur, self._cur + self.batch_size)
        return _new_batch([self._data[s]], [self._label[s]], 0, self._inst[s])

    def getdata(self):
        return [self._data[self._cur:self._cur + self.batch_size]]

    def getlabel(self):
        return [self._label[self._cur:self._cur + self.batch_size]]

    def getindex(self):
        return self._inst[self._cur:self._cur + self.batch_size]

    def getpad(self):
        return 0
