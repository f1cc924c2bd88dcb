"""``sg.kv`` / ``sg.kvstore``: MXNet's kvstore namespace.

``create(name)`` consults the registry first (``KVStoreBase.register``), then the built-in
types: ``local`` and ``device`` (one process) and the MPI-backed distributed types
``dist_sync``, ``dist_device_sync``, ``dist_async`` (run synchronously, with a warning)
and ``horovod`` (see docs/distributed.md).
"""

from __future__ import annotations

from runtime.kvstore.base import KVStoreBase
from runtime.kvstore.dist import DIST_TYPES, DistKVStore
from runtime.kvstore.errors import (
    DistributedError,
    DistributedTimeoutError,
    KVStoreError,
    MPIUnavailableError,
    PeerFailedError,
    RankMismatchError,
)
from runtime.kvstore.local import LocalKVStore

__all__ = ["create", "KVStoreBase", "KVStore", "LocalKVStore", "DistKVStore", "is_distributed",
           "DistributedError", "MPIUnavailableError", "PeerFailedError",
           "DistributedTimeoutError", "RankMismatchError", "KVStoreError"]

KVStore = LocalKVStore
_LOCAL_TYPES = ("local", "device", "local_update_cpu", "local_allreduce_cpu",
                "local_allreduce_device", "nccl")


def create(name="local", timeout=None):
    """A kvstore of type ``name`` (``timeout``: seconds a distributed collective may wait)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    key = name.lower()
    if key in KVStoreBase.kv_registry:
        return KVStoreBase.kv_registry[key]()
    if key in _LOCAL_TYPES:
        return LocalKVStore(name)
    if key in DIST_TYPES:
        return DistKVStore(key, timeout=timeout)
    known = sorted(set(_LOCAL_TYPES) | set(DIST_TYPES) | set(KVStoreBase.kv_registry))
    raise KVStoreError(f"unknown kvstore type {name!r}; known: {known}")


def is_distributed(kvstore) -> bool:
    """True for a kvstore (object or name) whose type trains over several processes."""
    if kvstore is None:
        return False
    name = kvstore if isinstance(kvstore, str) else getattr(kvstore, "type", "")
    return isinstance(kvstore, DistKVStore) or str(name).lower() in DIST_TYPES
