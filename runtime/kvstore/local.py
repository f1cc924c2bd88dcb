"""``local``/``device`` kvstore and the key-value logic the distributed one extends.

Values pushed as a list (one per device) are summed; with an optimizer set, a push
updates the stored weight (MXNet's update_on_kvstore), otherwise it replaces it.
"""

from __future__ import annotations

import numpy as np

from runtime import optim as _opt
from runtime.kvstore.base import KVStoreBase, as_list, as_numpy
from runtime.kvstore.errors import KVStoreError


class LocalKVStore(KVStoreBase):
    """One process; ``rank`` 0 of 1 worker."""

    def __init__(self, name="local"):
        self._type = name
        self._store = {}
        self._updater = None
        self._optimizer = None

    @property
    def type(self):
        return self._type

    @property
    def rank(self):
        return 0

    @property
    def num_workers(self):
        return 1

    @staticmethod
    def is_capable(capability):
        return capability == KVStoreBase.OPTIMIZER

    # ---- reduction (the distributed store overrides these two) ----------------------------
    def _reduce(self, key, merged: np.ndarray) -> np.ndarray:
        return merged

    def _share_initial(self, key, value: np.ndarray) -> np.ndarray:
        return value

    def barrier(self):
        """Nothing to wait for in one process."""

    # ---- key-value interface --------------------------------------------------------------
    def init(self, key, value):
        for k, v in _pairs(key, value):
            self._store[k] = self._share_initial(k, np.array(_sum(v), copy=True))

    def push(self, key, value, priority=0):
        for k, v in _pairs(key, value):
            stored = self._stored(k)
            merged = self._reduce(k, _sum(v))
            if self._updater is not None:
                self._updater(_index(k), merged, stored)
            else:
                np.copyto(stored, merged, casting="unsafe")

    def pull(self, key, out=None, priority=0, ignore_sparse=True):
        for k, o in _pairs(key, out):
            stored = self._stored(k)
            for target in as_list(o):
                np.copyto(as_numpy(target), stored, casting="unsafe")

    def pushpull(self, key, value, out=None, priority=0):
        """Sum ``value`` over devices and workers into ``out`` (or back into ``value``)."""
        outs = value if out is None else out
        for (k, v), (_, o) in zip(_pairs(key, value), _pairs(key, outs)):
            merged = self._reduce(k, _sum(v))
            for target in as_list(o):
                np.copyto(as_numpy(target), merged, casting="unsafe")

    def broadcast(self, key, value, out, priority=0):
        """Rank 0's ``value`` into ``out`` on every worker."""
        self.init(key, value)
        self.pull(key, out)

    def set_optimizer(self, optimizer):
        self._optimizer = optimizer
        self._updater = _opt.get_updater(optimizer)

    def save_optimizer_states(self, fname, dump_optimizer=False):
        from runtime.atomic import atomic_write

        atomic_write(fname, self._updater.get_states(dump_optimizer))

    def load_optimizer_states(self, fname):
        with open(fname, "rb") as handle:
            self._updater.set_states(handle.read())

    def _stored(self, key):
        if key not in self._store:
            raise KVStoreError(f"kvstore key {key!r} was not initialized (call init first)")
        return self._store[key]


def _pairs(key, value):
    if isinstance(key, (list, tuple)):
        values = list(value)
        if len(values) != len(key):
            raise KVStoreError(f"{len(key)} keys but {len(values)} values")
        return list(zip(key, values))
    return [(key, value)]


def _sum(value) -> np.ndarray:
    arrays = [as_numpy(v) for v in as_list(value)]
    if len(arrays) == 1:
        return np.ascontiguousarray(arrays[0])
    total = np.array(arrays[0], copy=True)
    for other in arrays[1:]:
        total += other
    return total


def _index(key):
    return key if isinstance(key, int) else str(key)
