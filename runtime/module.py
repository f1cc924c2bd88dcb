"""``sg.mod.Module``: MXNet 1.x's Module over one compiled executor.

Parameters live in the executors' shared parameter arrays: ``self._arg_params`` are the
active executor's ``arg_dict`` arrays (not copies), so a training step copies nothing but
the batch. Module
differs from MXNet only where the hardware model does:

* a list of contexts is MXNet's data parallelism in one process: one executor per
  context on its slice of the batch, run on separate cores at once, gradients summed
  (kvstore 'local'), one update with rescale 1/B_total (runtime/device_group.py);
* new batch shapes (last batch, predict with another batch size) bind a second executor;
  executors are cached per shape and share one set of parameter, aux and gradient arrays
  (``simple_bind(shared_exec=...)``), so alternating sizes neither recompiles nor copies;
* the optimizer step is one native call through ``runtime.optim.fused_update.FusedUpdater`` when
  it is available and supports the optimizer; otherwise ``runtime.optim.Updater`` runs
  per parameter (set ``USE_FUSED_UPDATE = False`` or ``SYMGRAPH_FUSED_UPDATE=0`` to force it);
* optimizer states are saved in symgraph's pickle-free format (docs/formats.md).
"""

from __future__ import annotations

import logging
import os
import warnings

import numpy as np

from runtime import compiled_epoch as _compiled_epoch
from runtime import deferred_step as _deferred
from runtime import module_checks as _checks
from runtime import native_step as _native_step
from runtime import optim as _opt
from runtime.base_module import (
    DEFAULT_INITIALIZER,
    BaseModule,
    as_descs,
    check_input_names,
    parse_data_desc,
)
from runtime.checkpoint import (
    check_pair,
    check_states,
    load_checkpoint,
    load_states,
    new_token,
    read_states,
    save_states,
)
from runtime.context import Context, cpu
from runtime.device_group import DeviceGroup, NotSplittable, can_split
from runtime.executor import Executor
from runtime.initializer import InitDesc
from runtime.io import DataDesc
from runtime.ndarray.ndarray import NDArray
from symgraph.errors import SerializationError, SymgraphError

__all__ = ["Module", "USE_FUSED_UPDATE"]

#: Set to False (or the env var SYMGRAPH_FUSED_UPDATE=0) to force the per-parameter Updater.
USE_FUSED_UPDATE = True


def _fused_updater_class(optimizer):
    """FusedUpdater if it is importable, enabled and supports ``optimizer``; else None."""
    if not USE_FUSED_UPDATE or os.environ.get("SYMGRAPH_FUSED_UPDATE", "1") == "0":
        return None
    try:
        from runtime.optim.fused_update import FusedUpdater
    except ImportError:
        return None
    return FusedUpdater if FusedUpdater.supports(optimizer) else None


def _contexts(context):
    """MXNet accepts one Context or a list (data parallelism, one executor per context)."""
    if context is None:
        return [cpu()]
    if isinstance(context, Context):
        return [context]
    return [Context(c) for c in context] or [cpu()]


def _shape_key(descs):
    return tuple((d.name, tuple(d.shape), np.dtype(d.dtype).str) for d in descs)


class _Bound:
    """What the per-batch path needs about one executor, looked up once per executor."""

    __slots__ = ("exe", "data", "shapes", "label", "label_names", "preds", "step", "fused",
                 "grads", "fold")

    def __init__(self, exe, data_descs, label_descs, output_names):
        self.exe = exe
        self.data = [exe.arg_dict[d.name] for d in data_descs]
        self.shapes = [v.shape for v in self.data]
        labels = [d for d in label_descs or () if d.name in exe.arg_dict]
        self.label = [exe.arg_dict[d.name] for d in labels]
        self.label_names = [d.name for d in label_descs or ()]
        self.preds = dict(zip(output_names, exe.outputs))
        self.step = None
        self.fused = None
        self.grads = None
        self.fold = None  # runtime/deferred_step.py's FoldTarget (False: none), on first use


class Module(BaseModule):
    """A symbol bound to one executor, with MXNet Module's lifecycle (see module doc)."""

    def __init__(self, symbol, data_names=("data",), label_names=("softmax_label",),
                 logger=logging, context=None, work_load_list=None, fixed_param_names=None,
                 state_names=None, group2ctxs=None, compression_params=None):
        super().__init__(logger=logger)
        self._context = _contexts(context)
        self._work_load_list = work_load_list or [1] * len(self._context)
        self._symbol = symbol
        self._data_names = list(data_names or [])
        self._label_names = list(label_names or [])
        self._state_names = list(state_names or [])
        self._fixed_param_names = list(fixed_param_names or [])
        check_input_names(symbol, self._data_names, "data", True)
        check_input_names(symbol, self._label_names, "label", False)
        check_input_names(symbol, self._state_names, "state", True)
        check_input_names(symbol, self._fixed_param_names, "fixed_param", True)
        inputs = set(self._data_names + self._label_names + self._state_names)
        self._param_names = [n for n in symbol.list_arguments() if n not in inputs]
        self._aux_names = symbol.list_auxiliary_states()
        self._output_names = symbol.list_outputs()
        self._arg_params = None
        self._aux_params = None
        self._params_dirty = False
        self._reset_optimizer()
        self._preload_opt_states = None
        self._param_source = None  # where preset parameters came from (checked at bind)
        self._stash = None
        self._live_fused = None
        self._pending = None  # a deferred training step (runtime/deferred_step.py)
        self._counted = None  # (executor, its accuracy count) of the last native step
        self._reset_bind()  # (sets _views_out: get_outputs/get_input_grads handed out views)
        self._fast_step = all(getattr(type(self), m) is getattr(Module, m)
                              for m in ("forward_backward", "update", "update_metric"))
        # a subclass may read executor state in any override: it never defers
        self._may_defer = type(self) is Module

    def _reset_optimizer(self):
        self._optimizer = None
        self._kvstore = None
        self._dist = None
        self._update_on_kvstore = False
        self._updater = None
        self.optimizer_initialized = False

    def _reset_bind(self):
        """Forget executors; parameters are detached (copied) so a re-bind keeps them."""
        self._flush()
        if getattr(self, "binded", False) and self.params_initialized:
            self._arg_params = {n: a.copy() for n, a in self._arg_params.items()}
            self._aux_params = {n: a.copy() for n, a in self._aux_params.items()}
            self._stash_fused_states()
        self.binded = False
        self._exec_cache = {}
        self._native_steps = {}  # runtime/native_step.py's runners, per executor
        self._views_out = False  # views of the executors just forgotten are never written
        self._bound = None
        self._data_shapes = None
        self._label_shapes = None
        self._grad_reqs = None
        self._monitor = None

    # ---- names and shapes ------------------------------------------------------------------
    @property
    def data_names(self):
        return self._data_names

    @property
    def label_names(self):
        return self._label_names

    @property
    def output_names(self):
        return self._output_names

    @property
    def param_names(self):
        return self._param_names

    @property
    def aux_names(self):
        return self._aux_names

    @property
    def data_shapes(self):
        assert self.binded
        return self._data_shapes

    @property
    def label_shapes(self):
        assert self.binded
        return self._label_shapes

    @property
    def output_shapes(self):
        assert self.binded
        return [(n, o.shape) for n, o in zip(self._output_names, self._bound.exe.outputs)]

    # ---- bind ------------------------------------------------------------------------------
    def bind(self, data_shapes, label_shapes=None, for_training=True, inputs_need_grad=False,
             force_rebind=False, shared_module=None, grad_req="write"):
        """Compile (or fetch) the executor for these shapes; see mxnet_compat.md §5.2."""
        self._flush()
        if force_rebind:
            self._reset_bind()
        if self.binded:
            self.logger.warning("Already bound, ignoring bind()")
            return
        self.for_training = for_training
        self.inputs_need_grad = inputs_need_grad
        if not for_training:
            assert not inputs_need_grad
        data_descs, label_descs = parse_data_desc(self._data_names, self._label_names,
                                                  data_shapes, label_shapes)
        _checks.check_label_names(self._label_names, label_descs,
                                  self._symbol.list_arguments(), self._data_names)
        self._grad_reqs = self._make_grad_reqs(grad_req, data_descs)
        if shared_module is not None:
            self._borrow(shared_module)
        self._check_preset_params(list(data_descs) + list(label_descs or ()))
        self._activate(data_descs, label_descs)
        self._param_source = None
        self.binded = True

    def _check_preset_params(self, descs):
        """Parameters set before bind (Module.load, a re-bind, a shared module) must fit
        the shapes these inputs give, before anything is compiled."""
        if self._arg_params is None or not self.params_initialized:
            return
        if self._param_source == "shared module":
            expected = _checks.expected_param_shapes(self._symbol, descs)
            _checks.check_param_values(self._arg_params, expected, "parameter", "bind")
            _checks.check_param_values(self._aux_params, expected, "auxiliary state", "bind")
            return
        _checks.check_loaded_params(self._symbol, descs, self._arg_params, self._aux_params,
                                    self._param_names, self._aux_names,
                                    self._param_source or "bind")

    def _borrow(self, shared_module):
        """Take the shared module's parameter values and optimizer (values are copied:
        executors do not share arenas)."""
        assert shared_module.binded and shared_module.params_initialized
        self._arg_params, self._aux_params = shared_module.get_params()
        self._param_source = "shared module"
        self.params_initialized = True
        if shared_module.optimizer_initialized:
            self._optimizer = shared_module._optimizer
            self._updater = _opt.get_updater(self._optimizer)
            self.optimizer_initialized = True

    def _make_grad_reqs(self, grad_req, data_descs):
        """Params get grad_req (fixed ones 'null'); data only with inputs_need_grad."""
        arg_names = self._symbol.list_arguments()
        if not self.for_training:
            return dict.fromkeys(arg_names, "null")
        if isinstance(grad_req, (list, tuple)):
            assert len(grad_req) == len(arg_names)
            return dict(zip(arg_names, grad_req))
        default = grad_req if isinstance(grad_req, str) else "write"
        data_names = {d.name for d in data_descs}
        reqs = {}
        for name in arg_names:
            if name in self._param_names:
                reqs[name] = "null" if name in self._fixed_param_names else default
            elif name in data_names:
                reqs[name] = default if self.inputs_need_grad else "null"
            else:
                reqs[name] = "null"
        if isinstance(grad_req, dict):
            reqs.update(grad_req)
        return reqs

    def _bind_executor(self, descs):
        args = set(self._symbol.list_arguments())
        shapes = {d.name: tuple(d.shape) for d in descs if d.name in args}
        types = {d.name: np.dtype(d.dtype) for d in descs if d.name in args}
        shared = next(iter(self._exec_cache.values()), None)  # one set of parameters
        exe = self._device_group(shapes, types, shared and shared.exe)
        if exe is None:
            exe = self._symbol.simple_bind(self._context[0], grad_req=self._grad_reqs,
                                           type_dict=types,
                                           shared_exec=shared and shared.exe, **shapes)
        if self._monitor is not None:
            self._monitor.install(exe)
        return exe

    def _device_group(self, shapes, types, shared):
        """One executor per context on its slice of the batch, run at once (see
        runtime/device_group.py); None for one context or a batch that does not split."""
        if len(self._context) < 2 or not can_split(shapes, self._work_load_list):
            return None
        if shared is not None and not isinstance(shared, DeviceGroup):
            return None
        try:
            return DeviceGroup(self._symbol, self._context, self._grad_reqs,
                               {k: v.name for k, v in types.items()}, shapes,
                               self._work_load_list, shared)
        except NotSplittable as exc:
            self.logger.info("running the %d contexts as one executor: %s",
                             len(self._context), exc)
            return None

    def _activate(self, data_descs, label_descs):
        """Make the executor for these shapes the active one, carrying parameters over."""
        self._flush()
        descs = list(data_descs) + list(label_descs or ())
        key = _shape_key(descs)
        bound = self._exec_cache.get(key)
        if bound is None and self._bound is not None:
            _checks.check_reshape(self._symbol, self._bound_descs(), descs,
                                  {**self._arg_params, **self._aux_params})
        if bound is None:
            bound = _Bound(self._bind_executor(descs), data_descs, label_descs,
                           self._output_names)
            self._exec_cache[key] = bound
        if bound is not self._bound and self._arg_params is not None:
            _copy_into(bound.exe.arg_dict, self._arg_params)
            _copy_into(bound.exe.aux_dict, self._aux_params)
        self._bound = bound
        self._data_shapes, self._label_shapes = list(data_descs), label_descs
        self._arg_params = {n: bound.exe.arg_dict[n] for n in self._param_names}
        self._aux_params = {n: bound.exe.aux_dict[n] for n in self._aux_names}

    def check_data_fits(self, data_iter):
        """An evaluation set whose feature shape differs from the bound one raises before
        fit trains an epoch on it (only the batch size may change)."""
        descs = list(getattr(data_iter, "provide_data", None) or ())
        descs += list(getattr(data_iter, "provide_label", None) or ())
        if not descs or _shape_key(descs) in self._exec_cache:
            return
        _checks.check_reshape(self._symbol, self._bound_descs(), as_descs(descs),
                              {**self._arg_params, **self._aux_params})

    def _bound_descs(self):
        return list(self._data_shapes) + list(self._label_shapes or ())

    def reshape(self, data_shapes, label_shapes=None):
        """Switch to (binding if needed) the executor for new input shapes."""
        assert self.binded
        data_descs, label_descs = parse_data_desc(self._data_names, self._label_names,
                                                  data_shapes, label_shapes)
        self._activate(data_descs, label_descs)

    def _reshape_for(self, data_batch):
        """MXNet's auto-reshape: descriptors from the batch, else derived from its arrays."""
        if getattr(data_batch, "provide_data", None):
            data_descs = data_batch.provide_data
        else:
            data_descs = [DataDesc(d.name, a.shape, d.dtype, d.layout)
                          for d, a in zip(self._data_shapes, data_batch.data)]
        if getattr(data_batch, "provide_label", None):
            label_descs = data_batch.provide_label
        elif data_batch.label and self._label_shapes:
            label_descs = [DataDesc(d.name, a.shape, d.dtype, d.layout)
                           for d, a in zip(self._label_shapes, data_batch.label)]
        else:
            label_descs = None
        self.reshape(data_descs, label_descs)

    # ---- parameters ------------------------------------------------------------------------
    def init_params(self, initializer=DEFAULT_INITIALIZER, arg_params=None, aux_params=None,
                    allow_missing=False, force_init=False, allow_extra=False):
        """Initialize in sorted name order (fixes the RNG draw order, as MXNet)."""
        self._flush()
        if self.params_initialized and not force_init:
            warnings.warn("Parameters already initialized and force_init=False. "
                          "init_params call ignored.", stacklevel=2)
            return
        assert self.binded, "call bind before initializing the parameters"
        self._check_given(arg_params, aux_params, allow_extra, "init_params")
        attrs = self._symbol.attr_dict()
        for own, given in ((self._arg_params, arg_params), (self._aux_params, aux_params)):
            for name, arr in sorted(own.items()):
                desc = InitDesc(name, attrs.get(name, None))
                _init_one(desc, arr, given, initializer, allow_missing)
        self.params_initialized = True
        self._params_dirty = False

    def set_params(self, arg_params, aux_params, allow_missing=False, force_init=True,
                   allow_extra=False):
        """Copy given values in; with allow_missing the rest is left as it is."""
        self._flush()
        if self.binded:
            self._check_given(arg_params, aux_params, allow_extra, "set_params")
        if not allow_missing:
            self.init_params(initializer=None, arg_params=arg_params, aux_params=aux_params,
                             allow_missing=allow_missing, force_init=force_init,
                             allow_extra=allow_extra)
            return
        if self.params_initialized and not force_init:
            warnings.warn("Parameters already initialized and force_init=False. "
                          "set_params call ignored.", stacklevel=2)
            return
        self._bound.exe.copy_params_from(arg_params, aux_params,
                                         allow_extra_params=allow_extra)
        self._params_dirty = True
        self.params_initialized = True

    def _check_given(self, arg_params, aux_params, allow_extra, source):
        """Given values must be named like the symbol's and have its exact shapes."""
        if not allow_extra:
            _checks.check_extra(arg_params, self._arg_params, "arguments", source)
            _checks.check_extra(aux_params, self._aux_params, "auxiliary states", source)
        own = {n: a.shape for n, a in {**self._arg_params, **self._aux_params}.items()}
        _checks.check_param_values(arg_params, own, "parameter", source)
        _checks.check_param_values(aux_params, own, "auxiliary state", source)

    def get_params(self):
        """Copies of ``(arg_params, aux_params)`` as NDArrays: later steps don't change them."""
        assert self.binded and self.params_initialized
        self._flush()
        return ({n: NDArray(a.copy()) for n, a in self._arg_params.items()},
                {n: NDArray(a.copy()) for n, a in self._aux_params.items()})

    # ---- optimizer -------------------------------------------------------------------------
    def init_optimizer(self, kvstore="local", optimizer="sgd",
                       optimizer_params=(("learning_rate", 0.01),), force_init=False):
        """Create the optimizer with rescale_grad = 1/batch_size and bind its updater."""
        assert self.binded and self.params_initialized
        self._flush()
        if self.optimizer_initialized and not force_init:
            self.logger.warning("optimizer already initialized, ignoring...")
            return
        kvstore = _make_kvstore(kvstore)
        if getattr(optimizer, "distributed_kvstore", None) is not None:  # hvd's wrapper
            kvstore, optimizer = optimizer.distributed_kvstore, optimizer.optimizer
        self._start_data_parallel(kvstore)
        workers = self._dist.num_workers if self._dist is not None else 1
        rescale_grad = 1.0 / (self._batch_size() * workers)
        idx2name = dict(enumerate(self._param_names))
        if isinstance(optimizer, str):
            params = dict(optimizer_params)
            params.setdefault("rescale_grad", rescale_grad)
            optimizer = _opt.create(optimizer, sym=self._symbol, param_idx2name=idx2name,
                                    **params)
        else:
            assert isinstance(optimizer, _opt.Optimizer)
            if optimizer.rescale_grad != rescale_grad:
                warnings.warn("Optimizer created manually outside Module but rescale_grad is "
                              f"not normalized to 1.0/batch_size/num_workers "
                              f"({optimizer.rescale_grad} vs. {rescale_grad}). Is this intended?",
                              stacklevel=2)
            if not optimizer.idx2name:
                optimizer.idx2name = idx2name.copy()
        self._optimizer = optimizer
        self._kvstore = kvstore
        self._updater = _opt.get_updater(optimizer)
        self.optimizer_initialized = True
        self._forget_steps()
        if self._preload_opt_states is not None:
            fname, states = self._preload_opt_states
            self._set_optimizer_states(states, fname)
            self._preload_opt_states = None

    def _start_data_parallel(self, kvstore):
        """A distributed kvstore: same model on all ranks, rank 0's parameters everywhere,
        info logging on rank 0 only (MXNet: kvstore.init + pull at init_optimizer)."""
        from runtime.kvstore import is_distributed
        from runtime.kvstore.data_parallel import DataParallel, quiet_logger

        self._dist = None
        if not is_distributed(kvstore):
            return
        self._dist = DataParallel(kvstore)
        self._dist.start(self._symbol.tojson(), self._arg_params, self._aux_params)
        self.logger = quiet_logger(self.logger, self._dist.rank)

    def _reduce_grads(self, bound):
        """Sum this step's gradients over all workers, in place, before the update."""
        self._dist.reduce_grads(self._grad_list(bound), bound.exe.grad_bucket)

    def _grad_list(self, bound):
        if bound.grads is None:
            exe = bound.exe
            bound.grads = [exe.grad_dict[n] for n in self._param_names if n in exe.grad_dict]
        return bound.grads

    def _epoch_name_values(self, eval_metric):
        if self._dist is None:
            return eval_metric.get_global_name_value()
        return self._dist.reduce_name_value(eval_metric)

    def _batch_size(self):
        desc = self._data_shapes[0]
        axis = DataDesc.get_batch_axis(getattr(desc, "layout", None))
        return desc.shape[max(axis, 0)]

    def _forget_steps(self):
        """A new optimizer: per-executor update steps and fused states start over."""
        for bound in self._exec_cache.values():
            bound.step = bound.fused = None
        self._live_fused = None
        self._stash = None

    def _step_for(self, bound):
        """``bound``'s update step, built on first use. Fused states live in one updater
        at a time; they move (one copy) when updates switch to another executor."""
        if bound.step is None:
            bound.step = self._make_step(bound)
        if bound.fused is not self._live_fused or self._stash is not None:
            states = self._live_fused.states if self._live_fused is not None else self._stash
            if states and bound.fused is not None:
                bound.fused.load_states(states)
            self._live_fused, self._stash = bound.fused, None
        return bound.step

    def _make_step(self, bound):
        """One callable per executor: fused (one native call) or the per-parameter Updater."""
        exe = bound.exe
        names = [n for n in self._param_names if n in exe.grad_dict]
        fused_cls = _fused_updater_class(self._optimizer)
        # Indices are positions among all parameters, fixed ones included (as MXNet's).
        position = {n: i for i, n in enumerate(self._param_names)}
        indices = [position[n] for n in names]
        if fused_cls is not None and names:
            bound.fused = fused_cls(self._optimizer, {n: exe.arg_dict[n] for n in names},
                                    {n: exe.grad_dict[n] for n in names}, names, indices)
            return bound.fused.step
        grads = [exe.grad_dict[n] for n in names]
        weights = [exe.arg_dict[n] for n in names]
        updater = self._updater

        def step():
            updater(indices, grads, weights)
        return step

    def _current_states(self):
        """The optimizer states ({index: state}) wherever they live right now."""
        if self._live_fused is not None:
            return self._live_fused.states
        if self._stash is not None:
            return self._stash
        return self._updater.states

    def _stash_fused_states(self):
        """Keep fused optimizer states across a re-bind (the executors go away)."""
        if self._live_fused is not None:
            self._stash = {k: _copy_state(v) for k, v in self._live_fused.states.items()}
            self._live_fused = None

    def borrow_optimizer(self, shared_module):
        """Use another module's optimizer (its updater states stay its own)."""
        assert shared_module.optimizer_initialized
        self._flush()
        self._optimizer = shared_module._optimizer
        self._kvstore = shared_module._kvstore
        self._dist = shared_module._dist
        self._updater = _opt.get_updater(self._optimizer)
        self.optimizer_initialized = True
        self._forget_steps()

    # ---- computation -----------------------------------------------------------------------
    def _flush(self):
        """Run a deferred step's pending work now (runtime/deferred_step.py); forget the
        accuracy counted ahead (the outputs may change after this)."""
        if self._pending is not None:
            _deferred.flush(self)
        self._counted = None

    def _defers(self, bound) -> bool:
        """Whether a training forward on ``bound`` may wait for ``update`` (the one native
        step of runtime/native_step.py runs it then)."""
        return (self._may_defer and _native_step.ENABLED and not self._views_out
                and self.optimizer_initialized and self._monitor is None
                and self._dist is None and type(bound.exe) is Executor
                and not bound.exe._needs_head_grads and bool(bound.exe.grad_dict)
                and (bound.step is None or bound.fused is not None))

    def _load(self, data_batch):
        """Copy a batch into the active executor, switching executors for new shapes."""
        if self._pending is not None:
            _deferred.flush(self)
        self._counted = None
        bound = self._bound
        data = data_batch.data
        if [a.shape for a in data] != bound.shapes:
            self._reshape_for(data_batch)
            bound = self._bound
        for dst, src in zip(bound.data, data):
            np.copyto(dst, src, casting="unsafe")
        label = data_batch.label
        if label and bound.label:
            for dst, src in zip(bound.label, label):
                np.copyto(dst, src, casting="unsafe")
        return bound

    def forward(self, data_batch, is_train=None):
        """Forward on a DataBatch; is_train defaults to ``for_training``."""
        assert self.binded and self.params_initialized
        bound = self._load(data_batch)
        if is_train is None:
            is_train = self.for_training
        if is_train and self._defers(bound):
            self._pending = _deferred.Pending(bound, one_call=False)
            return
        bound.exe.forward(is_train)

    def backward(self, out_grads=None):
        """Gradients of the last training forward (head grads only for non-loss outputs)."""
        assert self.binded and self.params_initialized
        pending = self._pending
        if pending is not None and not pending.backward and out_grads is None:
            pending.backward = True
            return
        self._flush()  # (also forgets the count ahead: backward may reuse output memory)
        self._bound.exe.backward(out_grads)

    def forward_backward(self, data_batch):
        """Training forward + backward as one native call (two when a monitor is installed);
        deferred to ``update`` when it can run there as one native step."""
        assert self.binded and self.params_initialized
        bound = self._load(data_batch)
        if self._defers(bound):
            self._pending = _deferred.Pending(bound, one_call=True)
            return
        if self._monitor is not None:
            bound.exe.forward(True)
            bound.exe.backward()
        else:
            bound.exe.forward_backward()

    def update(self):
        """Apply the optimizer to every parameter that has a gradient."""
        assert self.binded and self.params_initialized and self.optimizer_initialized
        if self._pending is not None and self._run_pending():
            return
        self._params_dirty = True
        if self._dist is not None:
            self._reduce_grads(self._bound)
        self._step_for(self._bound)()

    def _run_pending(self) -> bool:
        """The deferred forward, backward, update (and folded accuracy) as one native
        call; False (the pending work flushed) when it cannot run so."""
        pending = self._pending
        bound = pending.bound
        runner = None
        if pending.backward and bound is self._bound and _native_step.ENABLED:
            runner = self._native_steps.get(id(bound))
            if runner is not None and runner.bound is bound and bound.step is not None \
                    and runner.fused is bound.fused:
                self._step_for(bound)  # (the one a step-by-step update makes)
            else:
                runner = _native_step.NativeStep.of(self, bound)
        if runner is None:
            _deferred.flush(self)
            return False
        self._pending = None
        metric = pending.metric
        if metric is not None:
            _deferred.release(metric)
            runner.user_step(metric, pending.labels)
            return True
        if bound.fold is None:
            bound.fold = _deferred.FoldTarget.of(bound) or False
        self._counted = (bound, runner.user_step(None, bound.fold))
        return True

    def _train_step(self, data_batch, eval_metric):
        """fit's inner step with every lookup hoisted (per-batch Python budget ~20 µs)."""
        if not self._fast_step or self._monitor is not None:
            BaseModule._train_step(self, data_batch, eval_metric)
            return
        bound = self._load(data_batch)
        if _native_step.train_step(self, bound, data_batch, eval_metric):
            return
        if self._dist is not None:  # the allreduce overlaps backward (runtime/overlap.py)
            self._dist.forward_backward_reduced(bound.exe, lambda: self._grad_list(bound))
        else:
            bound.exe.forward_backward()
        self._params_dirty = True
        self._step_for(bound)()
        labels = data_batch.label
        if labels is None:
            labels = ()
        eval_metric.update_dict(dict(zip(bound.label_names, labels)), bound.preds)

    def _fit_epoch(self, train_data, eval_metric, epoch, batch_end_callback, monitor,
                   sparse_row_id_fn):
        """In-memory data: the epoch's batches run in native code (runtime/compiled_epoch.py),
        else BaseModule's loop."""
        self._flush()
        result = _compiled_epoch.run_epoch(self, train_data, eval_metric, epoch,
                                           batch_end_callback, monitor)
        if result is not None:
            return result
        return BaseModule._fit_epoch(self, train_data, eval_metric, epoch, batch_end_callback,
                                     monitor, sparse_row_id_fn)

    def score(self, eval_data, eval_metric, num_batch=None, batch_end_callback=None,
              score_end_callback=None, reset=True, epoch=0, sparse_row_id_fn=None):
        """In-memory data: runs of native inference forwards (runtime/compiled_epoch.py),
        else BaseModule's loop."""
        self._flush()
        result = _compiled_epoch.run_score(self, eval_data, eval_metric, num_batch,
                                           batch_end_callback, score_end_callback, reset,
                                           epoch)
        if result is not None:
            return result
        return BaseModule.score(self, eval_data, eval_metric, num_batch, batch_end_callback,
                                score_end_callback, reset, epoch, sparse_row_id_fn)

    def update_metric(self, eval_metric, labels, pre_sliced=False):
        """``eval_metric.update_dict({label name: label}, {output name: output})``."""
        if pre_sliced:
            labels = labels[0]
        if labels is None:
            labels = ()
        bound = self._bound
        if self._pending is not None:
            if self._fold_metric(eval_metric, labels):
                return
            _deferred.flush(self)
        elif self._counted is not None and self._add_counted(eval_metric, labels):
            return
        eval_metric.update_dict(dict(zip(bound.label_names, labels)), bound.preds)

    def _fold_metric(self, eval_metric, labels) -> bool:
        """Count a plain Accuracy in the deferred step's native call (its labels copied
        now, the metric guarded until then); False when it must be updated now."""
        pending = self._pending
        bound = pending.bound
        if bound.fold is None:
            bound.fold = _deferred.FoldTarget.of(bound) or False
        fold = bound.fold
        if pending.metric is not None or not fold or not fold.accepts(eval_metric, labels):
            return False
        np.copyto(fold.labels, labels[0])
        pending.labels = fold
        pending.metric, pending.metric_late = eval_metric, pending.backward
        _deferred.guard(eval_metric, self)
        return True

    def _add_counted(self, eval_metric, labels) -> bool:
        """update_metric right after a native step, with the batch's own labels: add the
        count the step made ahead on the executor's copy of them (the outputs have not
        changed since: every call that could change them forgets the count)."""
        bound, correct = self._counted
        self._counted = None
        fold = bound.fold
        if correct is None or bound is not self._bound or not fold \
                or not fold.accepts(eval_metric, labels) \
                or labels[0].tobytes() != bound.label[0].tobytes():  # (fast, and exact)
            return False
        eval_metric.sum_metric += correct
        eval_metric.global_sum_metric += correct
        eval_metric.num_inst += fold.rows
        eval_metric.global_num_inst += fold.rows
        return True

    def get_outputs(self, merge_multi_context=True):
        """The executor's outputs (views, overwritten by the next forward, as in MXNet).
        Views can be read at any time, so this module no longer defers steps."""
        assert self.binded and self.params_initialized
        self._flush()
        self._views_out = True
        outputs = [NDArray(o) for o in self._bound.exe.outputs]  # zero-copy views
        return outputs if merge_multi_context else [[o] for o in outputs]

    def _peek_outputs(self):
        if type(self).get_outputs is not Module.get_outputs:
            return self.get_outputs()
        self._flush()
        return [NDArray(o) for o in self._bound.exe.outputs]

    def get_input_grads(self, merge_multi_context=True):
        """Gradients w.r.t. the data inputs (bind with inputs_need_grad=True)."""
        assert self.binded and self.params_initialized and self.inputs_need_grad
        self._flush()
        self._views_out = True
        grads = [NDArray(self._bound.exe.grad_dict[d.name]) for d in self._data_shapes]
        return grads if merge_multi_context else [[g] for g in grads]

    def install_monitor(self, mon):
        """Install ``mon`` on every executor, present and future."""
        assert self.binded
        self._flush()
        self._monitor = mon
        for bound in self._exec_cache.values():
            mon.install(bound.exe)

    # ---- files -----------------------------------------------------------------------------
    def save_params(self, fname, token=0):
        """``arg:``/``aux:`` keyed NDArray-list file (MXNet's .params format)."""
        from runtime import ndarray_io

        arg_params, aux_params = self.get_params()
        save_dict = {f"arg:{k}": v for k, v in arg_params.items()}
        save_dict.update({f"aux:{k}": v for k, v in aux_params.items()})
        ndarray_io.save(fname, save_dict, token=token)

    def load_params(self, fname):
        """Load a .params file; keys other than ``arg:``/``aux:`` raise ValueError."""
        from runtime import ndarray_io

        arg_params, aux_params = {}, {}
        content = ndarray_io.load(fname)
        if not isinstance(content, dict):
            raise SerializationError(f"Invalid param file {fname}: arrays without names")
        for key, value in content.items():
            kind, _, name = key.partition(":")
            if kind == "arg":
                arg_params[name] = value
            elif kind == "aux":
                aux_params[name] = value
            else:
                raise SerializationError(f"Invalid param file {fname}: key {key!r} is neither "
                                         "'arg:...' nor 'aux:...'")
        self.set_params(arg_params, aux_params)

    def save_optimizer_states(self, fname, token=0):
        """Updater states ({index: state}) in symgraph's pickle-free format."""
        assert self.optimizer_initialized
        self._flush()
        opt = self._optimizer
        save_states(fname, self._current_states(),
                    extra={"optimizer": type(opt).__name__.lower(),
                           "num_update": int(opt.num_update)}, token=token)

    def load_optimizer_states(self, fname):
        """Restore states written by :meth:`save_optimizer_states`, checked against this
        module's parameters and optimizer before anything is replaced."""
        assert self.optimizer_initialized
        self._flush()
        states, _ = load_states(fname)
        self._set_optimizer_states(states, fname)

    def _set_optimizer_states(self, states, fname):
        check_states(states, self._state_templates(), fname)
        try:
            if self._live_fused is not None:
                self._live_fused.load_states(states)
            else:
                self._stash = dict(states)
        except SymgraphError as exc:
            raise SerializationError(f"optimizer states '{fname}': {exc}") from None
        self._updater.states = dict(states)
        self._updater.states_synced = dict.fromkeys(states, False)

    def _state_templates(self) -> dict:
        """index -> (name, the state ``create_state`` makes for that parameter now)."""
        params = self._arg_params or {}
        return {i: (n, self._optimizer.create_state_multi_precision(i, params[n]))
                for i, n in enumerate(self._param_names) if params.get(n) is not None}

    def save_checkpoint(self, prefix, epoch, save_optimizer_states=False,
                        remove_amp_cast=True):
        """``prefix-symbol.json``, optionally ``.states``, then ``prefix-%04d.params``.

        States go first and params last, both carrying one fresh token, so that a kill in
        between, or a later save of the params alone, is detected by ``Module.load``.
        In distributed training only rank 0 writes."""
        self._flush()
        if self._dist is not None and self._dist.rank != 0:
            return
        self._symbol.save(f"{prefix}-symbol.json", remove_amp_cast=remove_amp_cast)
        token = new_token()
        if save_optimizer_states:
            state_name = f"{prefix}-{epoch:04d}.states"
            self.save_optimizer_states(state_name, token=token)
            logging.info('Saved optimizer state to "%s"', state_name)
        param_name = f"{prefix}-{epoch:04d}.params"
        self.save_params(param_name, token=token)
        logging.info('Saved checkpoint to "%s"', param_name)

    @staticmethod
    def load(prefix, epoch, load_optimizer_states=False, **kwargs):
        """A Module with the checkpoint's symbol and parameters preset (bind it next)."""
        sym, args, auxs = load_checkpoint(prefix, epoch)
        mod = Module(symbol=sym, **kwargs)
        mod._arg_params = args
        mod._aux_params = auxs
        mod._param_source = f"checkpoint {prefix}-{epoch:04d}.params"
        mod.params_initialized = True
        if load_optimizer_states:
            # read once: the pairing is checked on the very states init_optimizer applies
            states_name = f"{prefix}-{epoch:04d}.states"
            states, _, token = read_states(states_name)
            check_pair(f"{prefix}-{epoch:04d}.params", states_name, token)
            mod._preload_opt_states = (states_name, states)
        return mod


# ---- helpers --------------------------------------------------------------------------------
def _copy_into(target: dict, source: dict):
    """Copy values into executor views; names or shapes it doesn't have are skipped."""
    for name, value in (source or {}).items():
        dst = target.get(name)
        if dst is not None and dst is not value and np.shape(value) == dst.shape:
            np.copyto(dst, value, casting="unsafe")


def _init_one(desc, arr, given, initializer, allow_missing):
    """MXNet's init_params ``_impl``: copy, or initialize, or complain."""
    if given is None:
        initializer(desc, arr)
        return
    if desc in given:
        value = given[desc]
        if value is not arr:
            np.copyto(arr, np.asarray(value), casting="unsafe")
        return
    if not allow_missing:
        raise RuntimeError(f"{desc} is not presented")
    if initializer is not None:
        initializer(desc, arr)


def _make_kvstore(kvstore):
    """MXNet's ``_create_kvstore``: a name becomes a kvstore (distributed ones need MPI);
    None and objects pass through."""
    if isinstance(kvstore, str):
        from runtime import kvstore as _kv

        return _kv.create(kvstore)
    return kvstore


def _copy_state(state):
    if state is None:
        return None
    if isinstance(state, (list, tuple)):
        return type(state)(_copy_state(s) for s in state)
    return np.array(state, copy=True)
