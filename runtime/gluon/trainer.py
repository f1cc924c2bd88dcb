"""``gluon.Trainer``: reduce gradients over devices, then one fused native update.

``step(batch_size)`` sets ``rescale_grad = scale / batch_size`` (a loss of shape (B,) gives
gradients summed over the batch), sums each parameter's gradients over its devices into
the first device's buffer, runs the optimizer over every trainable parameter in one call
(:class:`runtime.optim.fused_update.FusedUpdater`, or the per-parameter ``Updater`` for
optimizers without a formula) and copies the new weights to the other devices.
"""

from __future__ import annotations

import numpy as np

from runtime import optim as _opt
from runtime.atomic import atomic_write
from runtime.gluon.parameter import Parameter, ParameterDict
from runtime.ndarray.state import EPOCH


def _is_distributed(kvstore) -> bool:
    from runtime.kvstore import is_distributed

    return is_distributed(kvstore)


def _initialized(params) -> bool:
    """True when every parameter has its values (none is waiting for a deferred shape)."""
    from runtime.gluon.parameter import DeferredInitializationError

    try:
        for param in params:
            param.data()._value()
    except (DeferredInitializationError, RuntimeError):
        return False
    return True


class Trainer:
    """MXNet's ``gluon.Trainer``. A distributed ``kvstore`` ('dist_sync', 'horovod', ... or
    a kvstore object) broadcasts rank 0's parameters at the first step and sums gradients
    over all workers (rescale 1/(batch_size x workers)); other kvstores are one process.
    The broadcast happens in the constructor when the parameters are initialized (so the
    first gradients are already computed on equal weights), otherwise at the first step."""

    def __init__(self, params, optimizer, optimizer_params=None, kvstore="device",
                 compression_params=None, update_on_kvstore=None):
        if isinstance(params, (dict, ParameterDict)):
            params = [params[k] for k in sorted(params.keys())]
        params = list(params)
        for param in params:
            if not isinstance(param, Parameter):
                raise ValueError("First argument must be a list or dict of Parameters, got "
                                 f"list of {type(param)}.")
        self._params = params
        optimizer_params = dict(optimizer_params or {})
        idx2name = {i: p.name for i, p in enumerate(params)}
        if isinstance(optimizer, _opt.Optimizer):
            if optimizer_params:
                raise ValueError("optimizer_params must be None if optimizer is an instance "
                                 "of Optimizer instead of str")
            self._optimizer = optimizer
            optimizer.idx2name = idx2name
        else:
            self._optimizer = _opt.Optimizer.create_optimizer(
                optimizer, param_idx2name=idx2name, **optimizer_params)
        self._optimizer.set_lr_mult({p.name: p.lr_mult for p in params})
        self._optimizer.set_wd_mult({p.name: p.wd_mult for p in params})
        self._scale = self._optimizer.rescale_grad
        self._updater = None
        self._trainable = None
        self._kvstore = kvstore
        self._dist = None
        if _is_distributed(kvstore) and _initialized(params):  # else at the first step
            self._start_data_parallel()

    @property
    def optimizer(self):
        return self._optimizer

    @property
    def learning_rate(self):
        return self._optimizer.learning_rate

    def set_learning_rate(self, lr):
        self._optimizer.set_learning_rate(lr)

    # ---- stepping ------------------------------------------------------------------------
    @property
    def num_workers(self):
        return self._dist.num_workers if self._dist is not None else 1

    def step(self, batch_size, ignore_stale_grad=False):
        self._ensure_updater()
        self._optimizer.rescale_grad = self._scale / (batch_size * self.num_workers)
        fresh = self._check_stale(ignore_stale_grad)
        if self._multi or self._dist is not None:
            self.allreduce_grads()
        self._update(fresh)

    def allreduce_grads(self):
        """Sum every parameter's gradients over its devices into the first one, then over
        the workers (one allreduce per dtype)."""
        self._ensure_updater()
        for param in self._trainable:
            grads = param.list_grad()
            for other in grads[1:]:
                grads[0]._data += other._data
        if self._dist is not None:
            self._dist.reduce_grads([p.list_grad()[0]._data for p in self._trainable])

    def update(self, batch_size, ignore_stale_grad=False):
        self._ensure_updater()
        self._optimizer.rescale_grad = self._scale / (batch_size * self.num_workers)
        self._update(self._check_stale(ignore_stale_grad))

    def _update(self, fresh):
        """Update the parameters whose gradients are fresh (all of them, normally: then the
        fused updater runs; a subset goes through the same rule and states in numpy)."""
        if isinstance(self._updater, _opt.Updater):
            for index, param in enumerate(self._trainable):
                if fresh[index]:
                    self._updater(self._indices[index], param.list_grad()[0]._data,
                                  param.data()._data)
        elif all(fresh):
            self._updater.step()
        else:
            states = self._updater.states
            for index, param in enumerate(self._trainable):
                if fresh[index]:
                    self._optimizer.update(self._indices[index], param.data()._data,
                                           param.list_grad()[0]._data,
                                           states[self._indices[index]])
        if self._multi:
            for param in self._trainable:
                arrays = param.list_data()
                for other in arrays[1:]:
                    np.copyto(other._data, arrays[0]._data)
        for array in self._arrays:
            array._fresh_grad = False

    def _buffers(self) -> list:
        return [(a._data, a._grad._data if a._grad is not None else None)
                for p in self._trainable for a in p.list_data()]

    def _unchanged(self) -> bool:
        """Every trainable parameter still has the arrays and buffers the updater was
        compiled over: nothing can have changed while the epoch stands still (every buffer
        replacement bumps it), else checked by identity."""
        if self._epoch == EPOCH[0]:
            return True
        for param, arrays in self._views:
            if param._data is not arrays:
                return False
        for array, data, grad in self._bound_arrays:
            if array._data is not data or array._grad is None or array._grad._data is not grad:
                return False
        self._epoch = EPOCH[0]
        return True

    def _ensure_updater(self):
        if self._updater is not None:
            if self._unchanged():
                return
            # cast() or reset_ctx() replaced buffers: the compiled update must follow them
            old = self._updater.states if not isinstance(self._updater, _opt.Updater) else None
            self._updater = None
            self._ensure_updater()
            if old is not None:
                try:
                    self._updater.load_states(old)
                except Exception:  # shapes/dtypes changed (cast): states restart
                    self._updater.load_states({})
            return
        self._trainable = [p for p in self._params if p.grad_req != "null"]
        for param in self._trainable:
            param.data()._value()  # raises the deferred-initialization error if needed
        self._start_data_parallel()
        self._indices = [self._params.index(p) for p in self._trainable]
        names = [p.name for p in self._trainable]
        from runtime.optim.fused_update import FusedUpdater

        self._bound = self._buffers()
        self._epoch = -1  # checked by identity at the next step, then trusted until a bump
        self._views = [(p, p._data) for p in self._trainable]
        self._arrays = [a for p in self._trainable for a in p.list_data()]
        self._bound_arrays = [(a, d, g) for a, (d, g) in zip(self._arrays, self._bound)]
        self._multi = any(len(p._data) > 1 for p in self._trainable)
        self._all_fresh = [True] * len(self._trainable)
        if FusedUpdater.supports(self._optimizer):
            weights = {p.name: p.data()._data for p in self._trainable}
            grads = {p.name: p.list_grad()[0]._data for p in self._trainable}
            self._updater = FusedUpdater(self._optimizer, weights, grads, names,
                                         indices=self._indices)
        else:
            self._updater = _opt.get_updater(self._optimizer)

    def _start_data_parallel(self):
        """Same parameter names and shapes on every rank, then rank 0's values everywhere."""
        from runtime.kvstore import create
        from runtime.kvstore.data_parallel import DataParallel

        if self._dist is not None or not _is_distributed(self._kvstore):
            return
        kv = create(self._kvstore) if isinstance(self._kvstore, str) else self._kvstore
        self._dist = DataParallel(kv)
        params = {p.name: p.data()._value() for p in self._params}
        self._dist.start("gluon", params, {})
        for param in self._params:
            arrays = param.list_data()
            for other in arrays[1:]:
                np.copyto(other._data, arrays[0]._data)

    def _check_stale(self, ignore) -> list:
        """Per trainable parameter: were all its gradients written since the last step?"""
        for array in self._arrays:
            if not array._fresh_grad:
                break
        else:
            return self._all_fresh
        fresh = [all(a._fresh_grad for a in p.list_data()) for p in self._trainable]
        if ignore:
            return fresh
        for param in self._trainable:
            for array in param.list_data():
                if not array._fresh_grad:
                    raise UserWarning(
                        f"Gradient of Parameter `{param.name}` on context {array.context} has "
                        "not been updated by backward since last `step`. This could mean a bug "
                        "in your model that made it only use a subset of the Parameters "
                        "(Blocks) for this iteration. If you are intentionally only using a "
                        "subset, call step with ignore_stale_grad=True to suppress this "
                        "warning and skip updating of Parameters with stale gradient")

    # ---- states ---------------------------------------------------------------------------
    def save_states(self, fname):
        self._ensure_updater()
        if isinstance(self._updater, _opt.Updater):
            blob = self._updater.get_states()
        else:
            blob = _opt.encode_states(self._updater.states)
        atomic_write(fname, blob)

    def load_states(self, fname):
        self._ensure_updater()
        with open(fname, "rb") as f:
            blob = f.read()
        if isinstance(self._updater, _opt.Updater):
            self._updater.set_states(blob)
        else:
            self._updater.load_states(blob)
