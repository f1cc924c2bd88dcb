"""``gluon.data.DataLoader``: batches from a dataset, shuffled, with MXNet's last-batch rules.

Batches are stacked numpy arrays wrapped as NDArrays. When the dataset is whole arrays,
untransformed or with a transform that has a batched form, a batch is one fancy index
(plus one transform call), whatever ``num_workers`` says: that beats any worker. Otherwise
samples are fetched and transformed one by one; ``num_workers`` > 0 offers a thread pool
for that, used only if it is faster: the first batches alternate between the pool and
this thread, and the faster one fetches the rest of that epoch and every later one. A
transform in pure Python holds the GIL, so on a loaded 2-core machine threads lose and are
dropped; one that spends its time in numpy or native code gains. Either way the samples
and their order are the same, so ``num_workers`` never changes results and never makes
loading slower than 0.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from runtime.gluon.data.dataset import whole_arrays
from runtime.ndarray.ndarray import NDArray

PROBE_BATCHES = 2  # per way of fetching, at the start of each epoch


def default_batchify_fn(data):
    """Stack samples (NDArrays, numpy arrays or numbers); tuples are stacked field-wise."""
    first = data[0]
    if isinstance(first, tuple):
        return tuple(default_batchify_fn(list(field)) for field in zip(*data))
    if isinstance(first, NDArray):
        return NDArray(np.stack([d._value() for d in data]), first.context)
    return NDArray(np.asarray(np.stack([np.asarray(d) for d in data])))


class DataLoader:
    """Iterate over ``dataset`` in mini-batches (MXNet's ``gluon.data.DataLoader``)."""

    def __init__(self, dataset, batch_size=None, shuffle=False, sampler=None,
                 last_batch=None, batch_sampler=None, batchify_fn=None, num_workers=0,
                 pin_memory=False, pin_device_id=0, prefetch=None, thread_pool=False,
                 timeout=120, try_nopython=None):
        if batch_sampler is None:
            if batch_size is None:
                raise ValueError("batch_size must be specified unless batch_sampler is "
                                 "specified")
            if sampler is not None and shuffle:
                raise ValueError("shuffle must not be specified if sampler is specified")
            last_batch = last_batch or "keep"
            if last_batch not in ("keep", "discard", "rollover"):
                raise ValueError(f"last_batch must be one of 'keep', 'discard', or "
                                 f"'rollover', but got {last_batch}")
        elif batch_size is not None or shuffle or sampler is not None or last_batch:
            raise ValueError("batch_size, shuffle, sampler and last_batch must not be "
                             "specified if batch_sampler is specified.")
        self._dataset = dataset
        self._batch_size = batch_size
        self._shuffle = shuffle
        self._sampler = sampler
        self._last_batch = last_batch
        self._batch_sampler = batch_sampler
        self._batchify = batchify_fn or default_batchify_fn
        self._num_workers = max(0, int(num_workers))
        self._pool_faster = None  # decided by the first epoch that fetches per sample
        self._leftover = np.zeros(0, dtype=np.int64)

    def __len__(self):
        if self._batch_sampler is not None:
            return len(self._batch_sampler)
        n, b = len(self._dataset), self._batch_size
        if self._last_batch == "keep":
            return (n + b - 1) // b
        if self._last_batch == "discard":
            return n // b
        return (n + len(self._leftover)) // b

    def _batches(self):
        if self._batch_sampler is not None:
            yield from (np.asarray(list(b), dtype=np.int64) for b in self._batch_sampler)
            return
        if self._sampler is not None:
            order = np.asarray(list(self._sampler), dtype=np.int64)
        elif self._shuffle:
            order = np.arange(len(self._dataset))
            np.random.shuffle(order)
        else:
            order = np.arange(len(self._dataset))
        if self._last_batch == "rollover":
            order = np.concatenate([self._leftover, order])
        b = self._batch_size
        full = len(order) // b * b
        for start in range(0, full, b):
            yield order[start:start + b]
        rest = order[full:]
        if self._last_batch == "keep" and len(rest):
            yield rest
        self._leftover = rest if self._last_batch == "rollover" else self._leftover[:0]

    def _fetch(self, indices, pool):
        """Samples in order; with workers, one contiguous chunk per worker (a handful of
        tasks per batch, so threads cost next to nothing when transforms are cheap)."""
        fetch = self._dataset.__getitem__
        if pool is None or len(indices) < 2 * self._num_workers:
            return [fetch(i) for i in indices]
        step = -(-len(indices) // self._num_workers)
        chunks = [indices[i:i + step] for i in range(0, len(indices), step)]
        parts = pool.map(lambda chunk: [fetch(i) for i in chunk], chunks)
        return [sample for part in parts for sample in part]

    def _fast(self, indices):
        """The batch by whole-array indexing (and the batched transform), or None."""
        if self._batchify is not default_batchify_fn:
            return None
        batched = getattr(self._dataset, "_batched", None)
        fast = batched(indices) if batched is not None else None
        if fast is None and batched is None:
            arrays = whole_arrays(self._dataset)
            fast = None if arrays is None else tuple(a[indices] for a in arrays)
        return fast

    def __iter__(self):
        chooser = _WorkerChoice(self._num_workers, self._pool_faster)
        try:
            for indices in self._batches():
                fast = self._fast(indices)
                if fast is not None:
                    yield tuple(NDArray(np.ascontiguousarray(f)) for f in fast)
                    continue
                yield self._batchify(chooser.fetch(self._fetch, indices.tolist()))
        finally:
            self._pool_faster = chooser.close()


class _WorkerChoice:
    """Fetches per-sample batches with the thread pool or in this thread, whichever the
    first batches fetched showed to be faster (``decided``: an earlier epoch's verdict;
    the pool is made on first need)."""

    def __init__(self, workers, decided=None):
        self._workers = workers
        self._pool = None
        self._spent = [0.0, 0.0]  # seconds fetching: [this thread, pool]
        self._probes = 0
        self._use_pool = decided if workers else False

    def fetch(self, fetch, indices):
        if self._use_pool is False:
            return fetch(indices, None)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers)
        if self._use_pool:
            return fetch(indices, self._pool)
        way = self._probes % 2
        start = time.perf_counter()
        samples = fetch(indices, self._pool if way else None)
        self._spent[way] += time.perf_counter() - start
        self._probes += 1
        if self._probes == 2 * PROBE_BATCHES:
            self._use_pool = self._spent[1] < self._spent[0]
        return samples

    def close(self):
        """Stop the pool; returns the verdict (None if not reached) for the next epoch."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
        return self._use_pool
