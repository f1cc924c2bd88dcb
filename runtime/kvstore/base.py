"""MXNet's ``KVStoreBase``: the interface and the registry ``create`` consults first."""

from __future__ import annotations

import numpy as np


def as_numpy(value) -> np.ndarray:
    """The buffer behind an NDArray (so in-place updates reach it) or a numpy array."""
    data = getattr(value, "_value", None)
    if callable(data):
        return data()
    return np.asarray(value)


def as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


class KVStoreBase:
    """Users add a type with ``@KVStoreBase.register``; ``sg.kv.create(name)`` finds it by
    its lower-cased class name."""

    kv_registry: dict = {}
    OPTIMIZER = "optimizer"

    @staticmethod
    def register(klass):
        name = klass.__name__.lower()
        KVStoreBase.kv_registry[name] = klass
        return klass

    # the interface (MXNet 1.9 names) ------------------------------------------------------
    def broadcast(self, key, value, out, priority=0):
        raise NotImplementedError()

    def pushpull(self, key, value, out=None, priority=0):
        raise NotImplementedError()

    def set_optimizer(self, optimizer):
        raise NotImplementedError()

    @staticmethod
    def is_capable(capability):
        raise NotImplementedError()

    def save_optimizer_states(self, fname, dump_optimizer=False):
        raise NotImplementedError()

    def load_optimizer_states(self, fname):
        raise NotImplementedError()

    @property
    def type(self):
        raise NotImplementedError()

    @property
    def rank(self):
        raise NotImplementedError()

    @property
    def num_workers(self):
        raise NotImplementedError()

