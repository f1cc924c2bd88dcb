"""The executor: MXNet's Executor API over one compiled program and one arena.

``arg_dict``, ``grad_dict``, ``aux_dict`` and ``outputs`` are numpy views on the arena, so
``exe.arg_dict['data'][:] = x`` feeds the next forward and gradients appear in
``grad_dict`` after backward, as in MXNet. Every input is checked (name, shape, dtype) in
numpy before the single native call of a phase runs.
"""

from __future__ import annotations

import numpy as np

from codegen import limits
from codegen.compile_cache import compile_cached
from runtime.context import cpu
from symgraph.errors import ExecutorError, ParameterError, ShapeError, format_shape
from symgraph.infer import given_shape
from symgraph.symbol import set_binder

GRAD_REQS = ("null", "write", "add", "inplace")


def _arena(nbytes: int) -> np.ndarray:
    """A zero-filled byte array aligned to 64 bytes (what the kernels assume)."""
    raw = np.zeros(nbytes + 64, dtype=np.uint8)
    start = (-raw.ctypes.data) % 64
    return raw[start:start + nbytes]


def _view(arena, slot) -> np.ndarray:
    dtype = np.dtype(slot.dtype)
    count = int(np.prod(slot.shape, dtype=np.int64))
    flat = arena[slot.offset:slot.offset + count * dtype.itemsize].view(dtype)
    return flat.reshape(slot.shape)


class Executor:
    """A bound, compiled graph (MXNet's ``mx.executor.Executor``)."""

    def __init__(self, symbol, compiled, grad_req: dict, ctx=None):
        self._symbol = symbol
        self._compiled = compiled
        self._grad_req = grad_req
        self._ctx = ctx or cpu()
        limits.check_bytes(limits.program_bytes(compiled.program.program),
                           f"the executor of '{symbol.name or 'graph'}'")
        self._arena = _arena(compiled.arena_bytes)
        self._address = self._arena.ctypes.data
        self._run = compiled.program.run
        self._forward_backward = compiled.program.function("forward_backward")
        self.arg_dict = {n: _view(self._arena, s) for n, s in compiled.args.items()}
        self.grad_dict = {n: _view(self._arena, s) for n, s in compiled.grads.items()}
        self.aux_dict = {n: _view(self._arena, s) for n, s in compiled.aux.items()}
        self.outputs = [_view(self._arena, s) for s in compiled.outputs]
        self._head_grads = [None if s is None else _view(self._arena, s)
                            for s in compiled.head_grads]
        self._needs_head_grads = any(g is not None for g in self._head_grads)
        self._seed = None if compiled.seed is None else _view(self._arena, compiled.seed)
        self._forwarded = False
        self._monitor = None

    # ---- MXNet attributes -------------------------------------------------------------
    @property
    def arg_arrays(self):
        return [self.arg_dict[n] for n in self._symbol.list_arguments()]

    @property
    def grad_arrays(self):
        return [self.grad_dict.get(n) for n in self._symbol.list_arguments()]

    @property
    def aux_arrays(self):
        return [self.aux_dict[n] for n in self._symbol.list_auxiliary_states()]

    @property
    def output_dict(self):
        return dict(zip(self._symbol.list_outputs(), self.outputs))

    @property
    def symbol(self):
        return self._symbol

    @property
    def compiled(self):
        """The compiled program, memory plan and graph dump (for viz and inspection)."""
        return self._compiled

    # ---- running ----------------------------------------------------------------------
    def forward(self, is_train=False, **kwargs):
        for name, value in kwargs.items():
            self._set_input(name, value)
        self._run("forward" if is_train else "predict", self._address)
        self._forwarded = "train" if is_train else "predict"
        if is_train and self._seed is not None:
            self._seed[0] += 1
        self._call_monitor()
        return self.outputs

    def backward(self, out_grads=None, is_train=True):
        if not self._forwarded:
            raise ExecutorError("backward() called before forward()")
        if not self.grad_dict:
            raise ExecutorError("this executor was bound without gradients (grad_req='null')")
        self._set_head_grads(out_grads)
        # predict has its own memory plan; its backward reads the values where it left them
        phase = "backward" if self._forwarded == "train" else "predict_backward"
        self._run(phase, self._address)

    def forward_backward(self, out_grads=None, **kwargs):
        """forward(is_train=True) and backward() in one native call (what Module uses)."""
        if kwargs:  # the common call passes none; skipping the loop is measurable at 5 us/step
            for name, value in kwargs.items():
                self._set_input(name, value)
        if self._needs_head_grads:
            self._set_head_grads(out_grads)
        self._forward_backward(self._address)
        self._forwarded = "train"
        if self._seed is not None:
            self._seed[0] += 1
        return self.outputs

    def _set_input(self, name, value):
        target = self.arg_dict.get(name)
        if target is None:
            raise ExecutorError(f"forward: unknown input '{name}'; arguments are "
                                f"{', '.join(self.arg_dict)}")
        value = np.asarray(value)
        if value.shape != target.shape:
            raise ExecutorError(f"forward: input '{name}' has shape {format_shape(value.shape)},"
                                f" the executor was bound with {format_shape(target.shape)}")
        if value.dtype.kind not in "fiub":
            raise ExecutorError(f"forward: input '{name}' has dtype {value.dtype}, expected a "
                                f"numeric array ({target.dtype})")
        np.copyto(target, value, casting="unsafe")

    def _set_head_grads(self, out_grads):
        needed = [i for i, g in enumerate(self._head_grads) if g is not None]
        if not needed:
            return
        if out_grads is None:
            names = [self._symbol.list_outputs()[i] for i in needed]
            raise ExecutorError(f"backward: head gradient is required for outputs {names}; "
                                "pass out_grads, or end the graph in a loss op (make_loss)")
        grads = self._normalize_out_grads(out_grads)
        for index in needed:
            value = np.asarray(grads[index])
            target = self._head_grads[index]
            if value.shape != target.shape:
                raise ExecutorError(f"backward: out_grads[{index}] has shape "
                                    f"{format_shape(value.shape)}, expected "
                                    f"{format_shape(target.shape)}")
            np.copyto(target, value, casting="unsafe")

    def _normalize_out_grads(self, out_grads):
        names = self._symbol.list_outputs()
        if isinstance(out_grads, dict):
            return [out_grads.get(n) for n in names]
        if isinstance(out_grads, np.ndarray):
            return [out_grads]
        return list(out_grads)

    # ---- parameters -------------------------------------------------------------------
    def copy_params_from(self, arg_params, aux_params=None, allow_extra_params=False):
        for name, value in (arg_params or {}).items():
            self._copy_param(self.arg_dict, name, value, allow_extra_params, "argument")
        for name, value in (aux_params or {}).items():
            self._copy_param(self.aux_dict, name, value, allow_extra_params, "aux state")

    @staticmethod
    def _copy_param(target, name, value, allow_extra, what):
        if name not in target:
            if allow_extra:
                return
            raise ParameterError(f"Find name \"{name}\" that is not in the {what}s")
        value = np.asarray(value)
        if value.shape != target[name].shape:
            raise ExecutorError(f"copy_params_from: '{name}' has shape "
                                f"{format_shape(value.shape)}, expected "
                                f"{format_shape(target[name].shape)}")
        np.copyto(target[name], value, casting="unsafe")

    def reshape(self, partial_shaping=False, allow_up_sizing=False, **kwargs):
        """A new executor for new input shapes, with this one's parameters copied in."""
        for name in kwargs:
            if name not in self.arg_dict:
                raise ExecutorError(f"reshape: unknown argument '{name}'")
        fixed = {k: given_shape(k, v) for k, v in kwargs.items()}
        if not partial_shaping:
            self._check_unspecified_shapes(fixed)
        new = BINDER.simple_bind(self._symbol, self._ctx, grad_req=self._grad_req,
                                 type_dict={n: a.dtype for n, a in self.arg_dict.items()},
                                 **fixed)
        params = {n: a for n, a in self.arg_dict.items()
                  if n in new.arg_dict and new.arg_dict[n].shape == a.shape}
        new.copy_params_from(params, self.aux_dict)
        return new

    def _check_unspecified_shapes(self, fixed):
        """MXNet's rule: an argument not named in reshape() keeps its shape (else its
        values could not carry over), unless partial_shaping=True."""
        arg_shapes, _, _ = self._symbol.infer_shape_partial(**fixed)
        for name, shape in zip(self._symbol.list_arguments(), arg_shapes):
            old = self.arg_dict[name].shape
            if name not in fixed and shape and tuple(shape) != old:
                raise ShapeError(f"reshape: shape of unspecified argument '{name}' changed "
                                 f"from {format_shape(old)} to {format_shape(tuple(shape))}; "
                                 "its values cannot carry over (pass partial_shaping=True if "
                                 "this is intended)")

    def set_monitor_callback(self, callback, monitor_all=False):
        self._monitor = callback

    def _call_monitor(self):
        if self._monitor is not None:
            for name, array in self.output_dict.items():
                self._monitor(name, array)

    def debug_str(self) -> str:
        plan = self._compiled.plan
        return (f"{self._compiled.graph_text}\n\nArena: {self._compiled.arena_bytes} bytes "
                f"({plan.persistent_bytes} persistent), tensors total "
                f"{plan.total_tensor_bytes} bytes")


class Binder:
    """Implements Symbol.bind/simple_bind (registered with the symbolic core)."""

    def simple_bind(self, symbol, ctx=None, grad_req="write", type_dict=None,
                    shared_exec=None, **shapes):
        arg_names = symbol.list_arguments()
        reqs = normalize_grad_req(grad_req, arg_names)
        dtypes = {k: np.dtype(v).name for k, v in (type_dict or {}).items()}
        shapes = {k: given_shape(k, v) for k, v in shapes.items()}
        compiled = compile_cached(symbol, shapes, dtypes, reqs)
        return Executor(symbol, compiled, reqs, ctx)

    def bind(self, symbol, ctx, args, args_grad=None, grad_req="write", aux_states=None,
             shared_exec=None):
        arg_names = symbol.list_arguments()
        args = _as_dict(args, arg_names, "args")
        missing = [n for n in arg_names if n not in args]
        if missing:
            raise ExecutorError(f"bind: no array for arguments {missing}")
        aux = _as_dict(aux_states or {}, symbol.list_auxiliary_states(), "aux_states")
        reqs = _bind_reqs(grad_req, arg_names, args_grad)
        shapes = {n: np.asarray(a).shape for n, a in args.items()}
        dtypes = {n: np.asarray(a).dtype.name for n, a in args.items()}
        exe = Executor(symbol, compile_cached(symbol, shapes, dtypes, reqs), reqs, ctx)
        exe.copy_params_from(args, aux)
        return exe


def _as_dict(values, names, what):
    if isinstance(values, dict):
        return dict(values)
    values = list(values)
    if len(values) != len(names):
        raise ExecutorError(f"bind: {what} has {len(values)} arrays for {len(names)} names")
    return dict(zip(names, values))


def _bind_reqs(grad_req, arg_names, args_grad):
    if args_grad is None:
        return {n: "null" for n in arg_names}
    grads = _as_dict(args_grad, arg_names, "args_grad") if not isinstance(
        args_grad, dict) else args_grad
    reqs = normalize_grad_req(grad_req, arg_names)
    return {n: (reqs[n] if n in grads else "null") for n in arg_names}


def normalize_grad_req(grad_req, arg_names) -> dict:
    """A str applies to all; a list is positional; a dict leaves the rest 'null'."""
    if isinstance(grad_req, str):
        reqs = {n: grad_req for n in arg_names}
    elif isinstance(grad_req, dict):
        reqs = {n: grad_req.get(n, "null") for n in arg_names}
    else:
        reqs = dict(zip(arg_names, grad_req))
    for name, req in reqs.items():
        if req not in GRAD_REQS:
            raise ExecutorError(f"grad_req for '{name}' is {req!r}; expected one of {GRAD_REQS}")
    return {n: ("write" if r == "inplace" else r) for n, r in reqs.items()}


BINDER = Binder()
set_binder(BINDER)
