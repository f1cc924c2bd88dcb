"""``sg.distributed``: Horovod's MXNet API (``horovod.mxnet``) on symgraph's MPI kvstore.

A Horovod script runs with ``import horovod.mxnet as hvd`` replaced by
``import symgraph.distributed as hvd``. Sums go through the same polled collectives as
``kvstore='dist_sync'`` (so a failed or stuck rank stops the others with an error).
"""

from __future__ import annotations

import os

import numpy as np

from runtime.gluon.parameter import Parameter, ParameterDict
from runtime.gluon.trainer import Trainer
from runtime.kvstore import DistKVStore
from runtime.kvstore.base import as_numpy
from runtime.ndarray.ndarray import NDArray

__all__ = ["init", "shutdown", "is_initialized", "rank", "size", "local_rank", "local_size",
           "broadcast_parameters", "allreduce", "allreduce_", "broadcast", "broadcast_",
           "DistributedTrainer", "DistributedOptimizer"]

_STORE = None
_LOCAL_RANK_VARS = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "PMIX_LOCAL_RANK")
_LOCAL_SIZE_VARS = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "PMIX_LOCAL_SIZE")


def init(timeout=None):
    """Start (once) the MPI world; a single worker with a warning outside mpiexec."""
    global _STORE
    if _STORE is None:
        _STORE = DistKVStore("horovod", timeout=timeout)
    return _STORE


def shutdown():
    """Forget the store (MPI itself is finalized at exit, by mpi4py)."""
    global _STORE
    _STORE = None


def is_initialized() -> bool:
    return _STORE is not None


def _store() -> DistKVStore:
    if _STORE is None:
        raise ValueError("Horovod has not been initialized; use hvd.init().")
    return _STORE


def rank() -> int:
    return _store().rank


def size() -> int:
    return _store().num_workers


def _env_int(names, default):
    for name in names:
        if name in os.environ:
            return int(os.environ[name])
    return default


def local_rank() -> int:
    """Rank among the processes on this machine (from the launcher's environment)."""
    _store()
    return _env_int(_LOCAL_RANK_VARS, rank())


def local_size() -> int:
    _store()
    return _env_int(_LOCAL_SIZE_VARS, size())


def allreduce_(tensor, average=True, name=None, priority=0, prescale_factor=1.0,
               postscale_factor=1.0):
    """Sum (or average) ``tensor`` over all workers, in place; returns it."""
    store = _store()
    array = as_numpy(tensor)
    if prescale_factor != 1.0:
        array *= prescale_factor
    store.allreduce_arrays_([array])
    scale = postscale_factor / store.num_workers if average else postscale_factor
    if scale != 1.0:
        array *= np.asarray(scale, dtype=array.dtype)
    return tensor


def allreduce(tensor, average=True, name=None, priority=0, prescale_factor=1.0,
              postscale_factor=1.0):
    """A new NDArray: ``tensor`` summed (or averaged) over all workers."""
    result = NDArray(np.array(as_numpy(tensor), copy=True))
    return allreduce_(result, average, name, priority, prescale_factor, postscale_factor)


def broadcast_(tensor, root_rank=0, name=None, priority=0):
    _store().broadcast_arrays_([as_numpy(tensor)], root=root_rank)
    return tensor


def broadcast(tensor, root_rank=0, name=None, priority=0):
    return broadcast_(NDArray(np.array(as_numpy(tensor), copy=True)), root_rank)


def broadcast_parameters(params, root_rank=0, prefix=None):
    """Rank ``root_rank``'s values into every worker's ``params`` (sorted by name): a
    dict of name -> NDArray (Module's ``get_params()``) or of Parameters."""
    if not isinstance(params, (ParameterDict, dict)):
        raise ValueError(f"invalid params of type: {type(params)}")
    items = sorted(params.items())
    arrays, copies = [], []
    for _, value in items:
        if isinstance(value, Parameter):
            data = value.list_data()
            arrays.append(data[0]._value())
            copies.append(data)
        else:
            arrays.append(as_numpy(value))
    _store().broadcast_arrays_(arrays, root=root_rank)
    for data in copies:
        for other in data[1:]:
            np.copyto(other._data, data[0]._data)


class DistributedTrainer(Trainer):
    """A Trainer whose gradient reduction sums over all workers (Horovod's semantics:
    gradients averaged, i.e. rescale 1/(batch_size x size))."""

    def __init__(self, params, optimizer, optimizer_params=None, gradient_predivide_factor=1.0,
                 prefix=None, num_groups=0, compression=None):
        super().__init__(params, optimizer, optimizer_params, kvstore=init())


class DistributedOptimizer:
    """Wraps an optimizer for ``Module.fit(kvstore=None, optimizer=hvd.DistributedOptimizer(
    opt))``: Module unwraps it and sums gradients over workers in one bucket per step.
    As Horovod, the wrapped optimizer's ``rescale_grad`` is divided by ``size()``."""

    def __init__(self, optimizer, gradient_predivide_factor=1.0, num_groups=0):
        self.optimizer = optimizer
        self.distributed_kvstore = init()
        optimizer.rescale_grad *= gradient_predivide_factor / size()

    def __getattr__(self, name):
        return getattr(self.optimizer, name)
