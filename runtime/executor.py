"""The executor: MXNet's Executor API over one compiled program, one arena and the
arrays its pointer table names.

Memory model (docs/architecture.md, "Executor memory"): the arena holds outputs, head
gradients, the Dropout seed and every temporary and scratch buffer, so it is private to
this executor and two executors of one compiled library can run in two threads.
Arguments, gradients and aux states live outside it in numpy arrays reached through the
phase's pointer table: the executor's own (arguments and aux states in one block, all
gradients in one contiguous bucket, ``grad_bucket``) or the caller's, shared without a
copy (``bind(args, args_grad, aux_states)``, ``simple_bind(shared_exec=...)``, or the
``args``/``grads``/``aux`` keywords of the constructor). ``arg_dict``, ``grad_dict``,
``aux_dict`` and ``outputs`` are those arrays, so ``exe.arg_dict['data'][:] = x`` feeds
the next forward and gradients appear in ``grad_dict`` after backward, as in MXNet. Every
input is checked (name, shape, dtype) in numpy before the single native call of a phase.
"""

from __future__ import annotations

import ctypes
import math

import numpy as np

from codegen.compile_cache import compile_cached
from codegen.program import pointer_table
from runtime import random as _random
from runtime.context import cpu
from symgraph.errors import ExecutorError, ParameterError, ShapeError, format_shape
from symgraph.infer import given_shape
from symgraph.symbol import set_binder

GRAD_REQS = ("null", "write", "add", "inplace")
ALIGN = 64
_ROLE = {"arg": "args", "grad": "args_grad", "aux": "aux_states"}


def _arena(nbytes: int) -> np.ndarray:
    """A zero-filled byte array aligned to 64 bytes (what the kernels assume)."""
    raw = np.zeros(nbytes + ALIGN, dtype=np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start:start + nbytes]


def _count(shape) -> int:
    return math.prod(int(d) for d in shape)  # np.prod costs ~10 us a slot at bind time


def _view(arena, slot, offset=None) -> np.ndarray:
    dtype = np.dtype(slot.dtype)
    start = slot.offset if offset is None else offset
    flat = arena[start:start + _count(slot.shape) * dtype.itemsize].view(dtype)
    return flat.reshape(slot.shape)


class _Home:
    """The executor's own memory as one 64-byte aligned allocation: the arena first, then
    the blocks of arrays it owns, carved off in order (``take``), so its arguments,
    gradients and temporaries stay as close together as when they all were arena slots.
    Sized up front from the compiled graph (an upper bound: shared arrays take nothing)."""

    def __init__(self, compiled):
        slots = [*compiled.args.values(), *compiled.aux.values(), *compiled.grads.values()]
        self.memory = _arena(_aligned(compiled.arena_bytes) + sum(_slot_bytes(s) for s in slots))
        self.cursor = _aligned(compiled.arena_bytes)
        self.arena = self.memory[:compiled.arena_bytes]

    def take(self, slots) -> tuple[np.ndarray, dict]:
        """The next block, holding ``slots`` each 64-byte aligned: (block, name -> view).
        Gaps between slots stay zero (no kernel writes them)."""
        offsets, start = {}, self.cursor
        for slot in slots:
            offsets[slot.name] = self.cursor - start
            self.cursor += _slot_bytes(slot)
        block = self.memory[start:self.cursor]
        return block, {s.name: _view(block, s, offsets[s.name]) for s in slots}


def _aligned(nbytes: int) -> int:
    return -(-nbytes // ALIGN) * ALIGN


def _slot_bytes(slot) -> int:
    return _aligned(max(_count(slot.shape) * np.dtype(slot.dtype).itemsize, 1))


def _shareable(kind, name, value, slot) -> np.ndarray:
    """``value`` if the executor can use its memory as ``slot``; else an ExecutorError
    that says how to make it so. Non-arrays (lists, scalars) are converted: they have no
    memory to share."""
    where = f"bind: {_ROLE[kind]}['{name}']"
    if not isinstance(value, np.ndarray):
        value = np.array(value, dtype=slot.dtype)
    if value.shape != tuple(slot.shape):
        raise ExecutorError(f"{where} has shape {format_shape(value.shape)}, the graph "
                            f"needs {format_shape(slot.shape)}")
    fix = (f"pass np.require(x, dtype=np.{slot.dtype}, requirements='CAW') and keep using "
           "that array (the executor reads and writes the caller's memory, no copy)")
    if value.dtype != np.dtype(slot.dtype):
        raise ExecutorError(f"{where} has dtype {value.dtype}, the graph computes it in "
                            f"{slot.dtype}; {fix}")
    if not value.flags.c_contiguous:
        raise ExecutorError(f"{where} is not C-contiguous (a transposed, sliced or strided "
                            f"view); {fix}")
    if not value.flags.aligned:
        raise ExecutorError(f"{where} is not aligned to its {value.itemsize}-byte "
                            f"elements; {fix}")
    if not value.flags.writeable:
        raise ExecutorError(f"{where} is read-only; {fix}")
    return value


def _check_disjoint(named_arrays) -> None:
    """Kernels may assume their buffers do not overlap: no two shared arrays may."""
    spans = sorted((a.ctypes.data, a.ctypes.data + a.nbytes, label)
                   for label, a in named_arrays if a.nbytes)
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        if start < end:
            raise ExecutorError(f"bind: {first} and {second} share memory; every argument, "
                                "gradient and aux state needs its own array")


class Executor:
    """A bound, compiled graph (MXNet's ``mx.executor.Executor``).

    ``args``, ``grads`` and ``aux`` ({name: numpy array}) are used in place of the
    executor's own memory for those names (checked: shape, dtype, C-contiguous, aligned,
    writeable, no overlaps). ``inputs`` names the data arguments (simple_bind's shape
    keywords): their gradients stay out of the bucket of parameter gradients.
    ``grad_bucket`` is the contiguous array the given parameter ``grads`` all lie in (an
    executor sharing another's gradients keeps its bucket).
    """

    def __init__(self, symbol, compiled, grad_req: dict, ctx=None, *, args=None, grads=None,
                 aux=None, grad_bucket=None, inputs=()):
        self._symbol = symbol
        self._compiled = compiled
        self._grad_req = grad_req
        self._ctx = ctx or cpu()
        self._home = _Home(compiled)
        self._arena = self._home.arena
        self._address = self._arena.ctypes.data
        self.arg_dict, self._arg_block = self._place("arg", compiled.args, args)
        self.aux_dict, self._aux_block = self._place("aux", compiled.aux, aux)
        self.grad_dict, self._grad_bucket = self._place_grads(compiled.grads, grads,
                                                              grad_bucket, set(inputs))
        self._ext_arrays, self._table = self._pointer_table()
        self._ext_address = ctypes.addressof(self._table)
        self._run = compiled.program.run
        self._forward_backward = compiled.program.function("forward_backward")
        self.outputs = [_view(self._arena, s) for s in compiled.outputs]
        self._head_grads = [None if s is None else _view(self._arena, s)
                            for s in compiled.head_grads]
        self._needs_head_grads = any(g is not None for g in self._head_grads)
        self._seed = None if compiled.seed is None else _view(self._arena, compiled.seed)
        if self._seed is not None:
            self._seed[0] = _random.executor_seed()
        self._forwarded = False
        self._monitor = None

    def _place(self, kind, slots, given):
        """name -> array for ``slots``: the given (shared) arrays, the rest in one block."""
        given = {n: v for n, v in (given or {}).items() if v is not None and n in slots}
        shared = {n: _shareable(kind, n, v, slots[n]) for n, v in given.items()}
        block, own = self._home.take([s for n, s in slots.items() if n not in shared])
        return {n: shared[n] if n in shared else own[n] for n in slots}, (block, own)

    def _place_grads(self, slots, given, bucket, inputs):
        """Gradients: shared ones, then the executor's own, parameters' in one bucket."""
        params = [n for n in slots if n not in inputs]
        grads, _ = self._place("grad", {n: slots[n] for n in slots if n in inputs}, given)
        param_grads, (block, own) = self._place("grad", {n: slots[n] for n in params}, given)
        grads.update(param_grads)
        return {n: grads[n] for n in slots}, _bucket(block, own, param_grads, bucket)

    def _pointer_table(self):
        """The arrays in pointer-table order and the ctypes table of their addresses."""
        compiled = self._compiled
        by_kind = {"arg": (compiled.args, self.arg_dict), "aux": (compiled.aux, self.aux_dict),
                   "grad": (compiled.grads, self.grad_dict)}
        arrays = [None] * len(compiled.externals)
        labels = []
        for kind, (slots, arrs) in by_kind.items():
            for name, slot in slots.items():
                arrays[slot.ext] = arrs[name]
                labels.append((f"{_ROLE[kind]}['{name}']", arrs[name]))
        _check_disjoint(labels)
        return arrays, pointer_table(compiled.externals, arrays)

    @property
    def random_seed(self):
        """The seed of the next training forward's Dropout masks (None without Dropout):
        drawn from ``sg.random`` at bind time, advanced by one per training forward."""
        return None if self._seed is None else int(self._seed[0])

    @random_seed.setter
    def random_seed(self, value):
        if self._seed is None:
            raise ExecutorError("this graph draws no random numbers (no Dropout)")
        self._seed[0] = int(value)

    @property
    def grad_bucket(self):
        """Every parameter gradient of this executor in one contiguous 1-D array
        (``grad_dict`` entries are views into it, 64-byte aligned in argument order; the
        gaps between them are zeros), ready for one allreduce. Gradients of the inputs
        named at simple_bind are not in it. Executors sharing parameters (Module's per
        batch size, ``reshape``, ``simple_bind(shared_exec=...)``) share the bucket. None
        when the gradients are the caller's own arrays (``bind(args_grad=...)``) or of
        several dtypes."""
        return self._grad_bucket

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
        self._run("forward" if is_train else "predict", self._address, self._ext_address)
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
        self._run(phase, self._address, self._ext_address)

    def forward_backward(self, out_grads=None, **kwargs):
        """forward(is_train=True) and backward() in one native call (what Module uses)."""
        if kwargs:  # the common call passes none; skipping the loop is measurable at 5 us/step
            for name, value in kwargs.items():
                self._set_input(name, value)
        if self._needs_head_grads:
            self._set_head_grads(out_grads)
        self._forward_backward(self._address, self._ext_address)
        self._forwarded = "train"
        if self._seed is not None:
            self._seed[0] += 1
        return self.outputs

    def forward_backward_parts(self, step, ready):
        """forward_backward() as the consecutive sub-phases of ``step`` (an
        ``OverlappedStep`` of this executor, runtime/overlap.py), calling ``ready(k)``
        after sub-phase k so the caller can start reducing the gradients it made final."""
        if self._needs_head_grads:
            self._set_head_grads(None)
        for k, function in enumerate(step.functions):
            function(self._address, self._ext_address)
            ready(k)
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
        grads = head_grad_list(self._symbol, out_grads)
        for index in needed:
            value = np.asarray(grads[index])
            target = self._head_grads[index]
            if value.shape != target.shape:
                raise ExecutorError(f"backward: out_grads[{index}] has shape "
                                    f"{format_shape(value.shape)}, expected "
                                    f"{format_shape(target.shape)}")
            np.copyto(target, value, casting="unsafe")

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
        if value is not target[name]:  # shared buffers need no copy
            np.copyto(target[name], value, casting="unsafe")

    def reshape(self, partial_shaping=False, allow_up_sizing=False, **kwargs):
        """A new executor for new input shapes sharing this one's parameter, aux and
        gradient arrays (as MXNet's reshape shares memory); other inputs are copied."""
        for name in kwargs:
            if name not in self.arg_dict:
                raise ExecutorError(f"reshape: unknown argument '{name}'")
        if not partial_shaping:  # shapes are checked (given_shape) by the inference
            self._check_unspecified_shapes(kwargs)
        new = BINDER.simple_bind(self._symbol, self._ctx, grad_req=self._grad_req,
                                 type_dict={n: a.dtype for n, a in self.arg_dict.items()},
                                 shared_exec=self, **kwargs)
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
        external = sum(e.nbytes for e in self._compiled.externals)
        return (f"{self._compiled.graph_text}\n\nArena: {self._compiled.arena_bytes} bytes "
                f"({plan.persistent_bytes} persistent), {external} bytes of arguments, "
                f"gradients and aux states outside it, tensors total "
                f"{plan.total_tensor_bytes} bytes")


class Binder:
    """Implements Symbol.bind/simple_bind (registered with the symbolic core)."""

    def simple_bind(self, symbol, ctx=None, grad_req="write", type_dict=None,
                    shared_exec=None, **shapes):
        """With ``shared_exec``, arguments not named in ``shapes``, aux states and (when
        the two executors have the same gradients) the gradient bucket are shared with
        it wherever shape and dtype agree: one set of parameters, no copies."""
        arg_names = symbol.list_arguments()
        reqs = normalize_grad_req(grad_req, arg_names)
        dtypes = {k: np.dtype(v).name for k, v in (type_dict or {}).items()}
        shapes = {k: given_shape(k, v) for k, v in shapes.items()}
        compiled = compile_cached(symbol, shapes, dtypes, reqs)
        shared = {} if shared_exec is None else _shared_with(shared_exec, compiled, shapes)
        return Executor(symbol, compiled, reqs, ctx, inputs=tuple(shapes), **shared)

    def bind(self, symbol, ctx, args, args_grad=None, grad_req="write", aux_states=None,
             shared_exec=None):
        """MXNet's bind: the executor works in the caller's ``args``, ``args_grad`` and
        ``aux_states`` arrays (no copies), so later writes to them are seen and gradients
        appear in them."""
        arg_names = symbol.list_arguments()
        args = _as_dict(args, arg_names, "args")
        missing = [n for n in arg_names if n not in args]
        if missing:
            raise ExecutorError(f"bind: no array for arguments {missing}")
        aux = _as_dict(aux_states or {}, symbol.list_auxiliary_states(), "aux_states")
        _check_names(args, arg_names, "args", "arguments")
        _check_names(aux, symbol.list_auxiliary_states(), "aux_states", "aux states")
        grads = {} if args_grad is None else {
            n: g for n, g in _as_dict(args_grad, arg_names, "args_grad").items()
            if g is not None}
        reqs = _bind_reqs(grad_req, arg_names, grads if args_grad is not None else None)
        shapes = {n: np.shape(a) for n, a in args.items()}
        dtypes = {n: np.asarray(a).dtype.name for n, a in args.items()}
        compiled = compile_cached(symbol, shapes, dtypes, reqs)
        grads = {n: g for n, g in grads.items() if reqs.get(n, "null") != "null"}
        return Executor(symbol, compiled, reqs, ctx, args=args, grads=grads, aux=aux)


def head_grad_list(symbol, out_grads) -> list:
    """``out_grads`` (one array, a list, or {output name: array}) as a list in output
    order, None where an output has none."""
    if isinstance(out_grads, dict):
        return [out_grads.get(n) for n in symbol.list_outputs()]
    if isinstance(out_grads, np.ndarray):
        return [out_grads]
    return list(out_grads)


def _shared_with(other, compiled, fixed) -> dict:
    """The arrays of executor ``other`` a new executor of ``compiled`` can share."""
    def same(slot, arr):
        return arr.shape == tuple(slot.shape) and arr.dtype.name == slot.dtype

    args = {n: other.arg_dict[n] for n, s in compiled.args.items()
            if n not in fixed and n in other.arg_dict and same(s, other.arg_dict[n])}
    aux = {n: other.aux_dict[n] for n, s in compiled.aux.items()
           if n in other.aux_dict and same(s, other.aux_dict[n])}
    grads = {n: other.grad_dict[n] for n, s in compiled.grads.items()
             if n not in fixed and n in other.grad_dict and same(s, other.grad_dict[n])}
    return {"args": args, "aux": aux, "grads": grads, "grad_bucket": other.grad_bucket}


def _bucket(block, own, grads, bucket):
    """The contiguous array the parameter gradients ``grads`` lie in, or None: the
    executor's own block when it owns them all, else ``bucket`` when they all lie in it
    (see Executor.grad_bucket)."""
    dtypes = {a.dtype for a in grads.values()}
    if not grads or len(dtypes) != 1:
        return None
    (dtype,) = dtypes
    if len(own) == len(grads):
        return block.view(dtype)
    if bucket is None or own or bucket.dtype != dtype:
        return None
    lo, hi = bucket.ctypes.data, bucket.ctypes.data + bucket.nbytes
    inside = all(lo <= a.ctypes.data and a.ctypes.data + a.nbytes <= hi
                 for a in grads.values())
    return bucket if inside else None


def _check_names(given, names, what, kind):
    extra = sorted(set(given) - set(names))
    if extra:
        raise ExecutorError(f"bind: {what} names {extra}, which are not among the {kind} "
                            f"{names}")


def _as_dict(values, names, what):
    if isinstance(values, dict):
        return dict(values)
    values = list(values)
    if len(values) != len(names):
        raise ExecutorError(f"bind: {what} has {len(values)} arrays for {len(names)} names")
    return dict(zip(names, values))


def _bind_reqs(grad_req, arg_names, grads):
    if grads is None:
        return {n: "null" for n in arg_names}
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
