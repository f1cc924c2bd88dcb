"""Fused optimizer update: every parameter's update rule in one native call per step.

``FusedUpdater(optimizer, weights, grads, param_names)`` compiles, for each parameter, the
optimizer's scalar formula (``optimizer.rule().formula`` through ``IRMath``) into one
elementwise kernel that reads weight, grad, states and run-time scalars and writes weight
and states in place. One LLVM function ``update`` calls those kernels in order; ``step()``
fills the scalar table and makes one ctypes call. The numpy reference is ``Updater``.

Design: a pointer table, not arena offsets
------------------------------------------
``codegen.program`` phases take one arena base and GEP *compile-time* byte offsets. Here the
weights and grads live in the executor's arena (or anywhere: they are just numpy arrays)
and the optimizer states in a block this class owns, so offsets between them are heap
address differences. Baking those into the code would (1) make the LLVM IR different in
every process, so the disk compile cache never hits and grows by one object per run,
(2) rely on ``inbounds`` GEPs between separate allocations, which LLVM defines as poison,
and (3) need negative offsets, which ``program.validate`` rightly rejects.

So the phase function is ``void update(i8** table)``: ``table`` (in the owned block) holds
one pointer per kernel buffer, written once at construction; the phase loads each pointer
(a handful of loads per parameter) and calls the kernel. The IR only depends on shapes,
dtypes and the formula, so a warm start is a cache hit; weights are never copied; the
owned block (pointer table, scalar tables, states) and every user array are referenced by
the updater so they outlive the compiled code's use of them. Kernels are built with the
codegen loop IR and emitter; nothing in codegen is extended. (The kernel binds every
element with ``Let`` before storing: ``builders.elementwise_kernel`` re-reads buffers per
output, so an in-place multi-output formula would see its own new weight.)

Scalars
-------
One float64 row of scalars per parameter (``rule().scalar_names`` order) is computed each
step and cast into per-dtype tables (as ``apply_rule`` casts to the weight dtype). For the
built-in optimizers whose ``step_scalars`` is a pure function of (lr/wd multipliers, update
count), parameters sharing multipliers are grouped and ``step_scalars`` runs once per group
(the others' counts are advanced exactly as ``_update_count`` would); any other optimizer
(Nadam's shared ``m_schedule``, user subclasses) or unequal update counts take the exact
per-parameter path. Either way the optimizer's counters end up as with ``Updater``.
"""

from __future__ import annotations

import ctypes

import numpy as np
from llvmlite import ir

from codegen import jit
from codegen import loop_ir as L
from codegen.emit.llvm_emit import emit_kernel
from codegen.emit.scalar_ir import IRMath
from runtime import optim as O
from symgraph.errors import ExecutorError

__all__ = ["FusedUpdater"]

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_ALIGN = 64
# Built-in optimizers whose step_scalars(i) depends only on i's multipliers and count.
_GROUPABLE = (O.SGD, O.NAG, O.Adam, O.AdaGrad, O.RMSProp, O.AdaDelta, O.Signum, O.Ftrl,
              O.Adamax)


class FusedUpdater:
    """Apply ``optimizer`` to ``weights[n]`` with ``grads[n]`` for ``n in param_names``.

    The index of a parameter is its position in ``param_names`` (MXNet, one device), or
    ``indices[k]`` when given: a Module with fixed parameters updates only some of its
    parameters but keeps every parameter's MXNet index.
    """

    def __init__(self, optimizer, weights: dict, grads: dict, param_names: list,
                 indices=None):
        if not self.supports(optimizer):
            raise ExecutorError(f"{type(optimizer).__name__} has no update rule(); "
                                "use runtime.optim.Updater")
        self.optimizer = optimizer
        self.param_names = list(param_names)
        self.indices = _check_indices(indices, self.param_names)
        self._rule = optimizer.rule()
        self._weights, self._grads = _check_params(weights, grads, self.param_names)
        self._initial = [_initial_state(optimizer, i, w, self._rule)
                         for i, w in zip(self.indices, self._weights)]
        self._layout = _Layout(self._weights, self._initial, len(self._rule.scalar_names))
        self._states = [_rebuild(s, iter(v)) for s, v in
                        zip(self._initial, self._layout.state_views)]
        self.load_states({})
        self._scalars = _StepScalars(optimizer, self.indices, self._rule.scalar_names)
        self._checked = None  # optimizer attributes when the rule was last checked
        self._fn, self._library = _compile(self._kernel_calls(), self._layout)
        self._table_address = self._layout.pointers.ctypes.data

    @staticmethod
    def supports(optimizer) -> bool:
        """True when the optimizer describes its update as a ``rule()`` formula."""
        try:
            rule = optimizer.rule()
        except (NotImplementedError, AttributeError):
            return False
        return callable(getattr(rule, "formula", None))

    # -- stepping -------------------------------------------------------------------------
    def step(self) -> None:
        """Advance every parameter by one update: fill the scalar table, one native call.

        The rule can only change with an optimizer attribute, so it is re-checked only then;
        the tables are rewritten only when the scalars changed.
        """
        self.fill_scalars()
        self._fn(self._table_address)

    def fill_scalars(self) -> None:
        """This step's scalar tables (the native step driver makes the call itself)."""
        attributes = self._scalars.attributes(self.optimizer)
        if attributes != self._checked:
            self._check_rule()
            self._checked = attributes
        values = self._scalars(self.optimizer, attributes)
        if values is not None:
            self._write_scalars(values)

    def _write_scalars(self, values) -> None:
        for table, rows in self._layout.scalar_tables:
            table[...] = values if rows is None or len(values) == 1 else values[rows]

    def _check_rule(self) -> None:
        """The compiled formula is fixed: toggling momentum/clipping needs a new updater."""
        rule = self.optimizer.rule()
        if rule.formula is not self._rule.formula or rule[1:] != self._rule[1:]:
            raise ExecutorError("the optimizer's update rule changed since this FusedUpdater "
                                f"was compiled ({self._rule.formula.__name__}"
                                f"{self._rule.scalar_names} -> {rule.formula.__name__}"
                                f"{rule.scalar_names}); build a new FusedUpdater")

    # -- states ---------------------------------------------------------------------------
    @property
    def states(self) -> dict:
        """{index: None | array | tuple/list of arrays} as ``Updater.states`` (live views)."""
        return dict(zip(self.indices, self._states))

    def load_states(self, states) -> None:
        """Copy ``{index: state}`` (or ``Updater.get_states()`` bytes) into the owned states.

        Indices not given restart from ``create_state`` values, as an ``Updater`` would
        create them on first use. Everything is validated before anything is written.
        """
        if isinstance(states, (bytes, bytearray)):
            states, opt_json = O.decode_states(bytes(states))
            if opt_json is not None:
                raise ExecutorError("these states carry an optimizer (dump_optimizer=True); "
                                    "restore it into an Updater and build a new FusedUpdater")
        if not isinstance(states, dict):
            raise ExecutorError("load_states expects {index: state} or Updater.get_states() "
                                f"bytes, got {type(states).__name__}")
        unknown = [k for k in states if k not in self.indices]
        if unknown:
            raise ExecutorError(f"load_states: unknown indices {unknown}; this updater has "
                                f"{self.indices}")
        sources = [_slots_like(i, states.get(i, init), init, name)
                   for i, init, name in zip(self.indices, self._initial, self.param_names)]
        for views, slots in zip(self._layout.state_views, sources):
            for view, src in zip(views, slots):
                np.copyto(view, src, casting="same_kind")

    # -- compilation ----------------------------------------------------------------------
    def _kernel_calls(self) -> list:
        """[(kernel, [buffer addresses in kernel param order])] for every non-empty param."""
        names = self._rule.scalar_names
        calls = []
        for i, (w, g) in enumerate(zip(self._weights, self._grads)):
            if w.size == 0:
                continue
            kernel = _update_kernel(self._rule, w.shape, w.dtype)
            addr = {"weight": w.ctypes.data, "grad": g.ctypes.data}
            addr.update({f"state{k}": v.ctypes.data
                         for k, v in enumerate(self._layout.state_views[i])})
            addr.update({n: a for n, a in zip(names, self._layout.scalar_addresses(i))})
            calls.append((kernel, [addr[p.name] for p in kernel.params]))
        return calls


# ---------------------------------------------------------------------------- validation
def _check_indices(indices, names) -> list:
    """The optimizer index of each name: positions by default, else distinct ints."""
    if indices is None:
        return list(range(len(names)))
    indices = [int(i) for i in indices]
    if len(indices) != len(names) or len(set(indices)) != len(indices):
        raise ExecutorError(f"indices {indices} must be distinct, one per parameter {names}")
    return indices


def _check_params(weights, grads, names) -> tuple:
    """Lists of weight/grad arrays in ``names`` order; raise before any native code runs."""
    if len(set(names)) != len(names):
        raise ExecutorError(f"param_names has duplicates: {names}")
    ws, gs = [], []
    for name in names:
        if name not in weights or name not in grads:
            raise ExecutorError(f"parameter '{name}' is missing from "
                                f"{'weights' if name not in weights else 'grads'}")
        w, g = weights[name], grads[name]
        _check_array(name, "weight", w, writeable=True)
        _check_array(name, "grad", g, writeable=False)
        if g.shape != w.shape or g.dtype != w.dtype:
            raise ExecutorError(f"parameter '{name}': grad {g.dtype}{list(g.shape)} does not "
                                f"match weight {w.dtype}{list(w.shape)}")
        ws.append(w)
        gs.append(g)
    _check_overlap(names, ws, gs)
    return ws, gs


def _check_array(name, role, a, writeable) -> None:
    if not isinstance(a, np.ndarray):
        raise ExecutorError(f"parameter '{name}': {role} is {type(a).__name__}, need a numpy "
                            "array (a view on the executor arena)")
    if a.dtype not in _DTYPES:
        raise ExecutorError(f"parameter '{name}': {role} dtype {a.dtype} is not supported "
                            "(float32 or float64)")
    if not (a.flags.c_contiguous and a.flags.aligned):
        raise ExecutorError(f"parameter '{name}': {role} must be C-contiguous and aligned "
                            "(the kernel addresses it as one flat buffer)")
    if writeable and not a.flags.writeable:
        raise ExecutorError(f"parameter '{name}': {role} is read-only")


def _check_overlap(names, ws, gs) -> None:
    """Weights are written through noalias pointers: no weight may overlap another array."""
    arrays = [(n, "weight", w) for n, w in zip(names, ws)] + \
             [(n, "grad", g) for n, g in zip(names, gs)]
    arrays = [a for a in arrays if a[2].size]
    if not arrays:
        return
    start = np.array([a[2].ctypes.data for a in arrays], dtype=np.int64)
    end = start + np.array([a[2].nbytes for a in arrays], dtype=np.int64)
    overlap = (start[:, None] < end[None, :]) & (start[None, :] < end[:, None])
    np.fill_diagonal(overlap, False)
    is_weight = np.array([a[1] == "weight" for a in arrays])
    overlap &= is_weight[:, None] | is_weight[None, :]
    if overlap.any():
        i, j = np.argwhere(overlap)[0]
        raise ExecutorError(f"{arrays[i][1]} of '{arrays[i][0]}' overlaps {arrays[j][1]} of "
                            f"'{arrays[j][0]}' in memory; weights must not alias")


# --------------------------------------------------------------------------------- states
def _initial_state(optimizer, index, weight, rule):
    """``create_state`` as Updater calls it; check it is slot arrays shaped like the weight."""
    state = optimizer.create_state_multi_precision(index, weight)
    slots = O._state_slots(state)
    if len(slots) != rule.state_slot_count or any(
            not isinstance(s, np.ndarray) or s.shape != weight.shape for s in slots):
        raise ExecutorError(f"{type(optimizer).__name__}.create_state({index}) is not "
                            f"{rule.state_slot_count} arrays shaped {list(weight.shape)}")
    return state


def _rebuild(template, views):
    """Same None/array/tuple/list structure as ``template`` with arrays from ``views``."""
    if template is None:
        return None
    if isinstance(template, (tuple, list)):
        return type(template)(_rebuild(t, views) for t in template)
    return next(views)


def _slots_like(index, state, template, name) -> list:
    """The arrays of ``state`` checked against ``template``'s slot count and shapes."""
    want = O._state_slots(template)
    got = O._state_slots(state)
    if len(got) != len(want):
        raise ExecutorError(f"load_states: state {index} ('{name}') has {len(got)} arrays, "
                            f"the optimizer needs {len(want)}")
    out = []
    for k, (src, ref) in zip(range(len(want)), zip(got, want)):
        src = np.asarray(src)
        if src.shape != ref.shape or src.dtype.kind != "f":
            raise ExecutorError(f"load_states: state {index} ('{name}') slot {k} is "
                                f"{src.dtype}{list(src.shape)}, expected "
                                f"{ref.dtype}{list(ref.shape)}")
        out.append(src)
    return out


# --------------------------------------------------------------------------------- memory
class _Layout:
    """The owned block: pointer table, per-dtype scalar tables, state slots (64-aligned)."""

    def __init__(self, weights, initial, n_scalars):
        self.n_scalars = n_scalars
        n_slots = sum(2 + len(O._state_slots(s)) + n_scalars
                      for w, s in zip(weights, initial) if w.size)
        rows = {dt: [i for i, w in enumerate(weights) if w.dtype == dt] for dt in _DTYPES}
        pieces = [("ptr", np.dtype(np.uint64), (max(n_slots, 1),))]
        pieces += [(dt, dt, (len(r), n_scalars)) for dt, r in rows.items() if r]
        for i, (w, s) in enumerate(zip(weights, initial)):
            pieces += [((i, k), w.dtype, w.shape) for k in range(len(O._state_slots(s)))]
        views = _carve(pieces)
        self.pointers = views["ptr"]
        self.row_of = {}
        self.scalar_tables = []
        for dt, r in rows.items():
            if r:
                self.scalar_tables.append((views[dt], None if len(r) == len(weights) else
                                           np.array(r)))
                self.row_of.update({i: (views[dt], j) for j, i in enumerate(r)})
        self.state_views = [[views[(i, k)] for k in range(len(O._state_slots(s)))]
                            for i, s in enumerate(initial)]

    def scalar_addresses(self, index) -> list:
        table, row = self.row_of[index]
        return [table.ctypes.data + (row * self.n_scalars + k) * table.itemsize
                for k in range(self.n_scalars)]


def _carve(pieces) -> dict:
    """One zeroed 64-aligned byte block split into typed views, each 64-aligned."""
    offsets, total = [], 0
    for _, dt, shape in pieces:
        offsets.append(total)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        total += -(-nbytes // _ALIGN) * _ALIGN
    raw = np.zeros(total + _ALIGN, dtype=np.uint8)
    base = (-raw.ctypes.data) % _ALIGN
    views = {}
    for (key, dt, shape), off in zip(pieces, offsets):
        count = int(np.prod(shape, dtype=np.int64))
        views[key] = raw[base + off:base + off + count * dt.itemsize].view(dt).reshape(shape)
    return views


# -------------------------------------------------------------------------------- scalars
class _StepScalars:
    """This step's scalars as float64 rows (one per param, or one row for all): see module doc.

    The grouped path is exact for ``_GROUPABLE`` types when every index has the same update
    count: each index's scalars then depend only on its (lr_mult, wd_mult), t and
    num_update, all shared within a group. Non-representatives' counts are advanced as
    ``_update_count`` does; groups are cached while the multiplier dicts are unchanged.

    On the grouped path the rows are also memoized: when lr, the multipliers, the
    optimizer's scalar attributes and (for optimizers whose scalars use it) t are those of
    the previous step, ``__call__`` returns None and the tables already hold the values.
    That keeps a plain SGD step to a few dict updates instead of one ``step_scalars`` call
    per group.
    """

    def __init__(self, optimizer, indices, names):
        self.indices, self.names = list(indices), names
        self.n = len(self.indices)
        self.groupable = type(optimizer) in _GROUPABLE and self.n > 0
        self._snapshot = None
        self._attrs = [k for k, v in vars(optimizer).items()
                       if k not in _COUNTERS and isinstance(v, _PLAIN)]
        self._count = None  # every index's update count after our last grouped step
        self._seen_num_update = None
        self._memo = None

    def attributes(self, opt) -> tuple:
        """The optimizer's plain scalar attributes (hyper-parameters), to notice changes."""
        return tuple(map(vars(opt).get, self._attrs))

    def __call__(self, opt, attributes=None):
        if self.groupable and self._uniform_counts(opt):
            return self._grouped(opt, attributes)
        self._count = self._memo = None
        rows = [[s[k] for k in self.names] for s in map(opt.step_scalars, self.indices)]
        return np.array(rows, dtype=np.float64).reshape(self.n, len(self.names))

    def _uniform_counts(self, opt) -> bool:
        counts = opt._index_update_count
        if self._count is not None and opt.num_update == self._seen_num_update:
            ends = (counts.get(self.indices[0]), counts.get(self.indices[-1]))
            if ends == (self._count, self._count):
                return True
        begin = opt.begin_num_update
        values = [counts.get(i, begin) for i in self.indices]
        return values.count(values[0]) == self.n

    def _grouped(self, opt, attributes):
        counts = opt._index_update_count
        count = counts.get(self.indices[0], opt.begin_num_update) + 1
        counts.update(dict.fromkeys(self.indices, count))
        opt.num_update = max(count, opt.num_update)
        self._count, self._seen_num_update = count, opt.num_update
        lr = opt.lr_scheduler(opt.num_update) if opt.lr_scheduler is not None else opt.lr
        key = (lr, count if opt.scalars_depend_on_t else None,
               self.attributes(opt) if attributes is None else attributes)
        regrouped = self._refresh_groups(opt)
        if not regrouped and key == self._memo:
            return None
        self._memo = key
        rows = [[s[k] for k in self.names] for s in
                (opt.scalars_at(i, count) for i in self._reps)]
        rows = np.array(rows, dtype=np.float64)
        return rows if self._take is None else rows[self._take]

    def _refresh_groups(self, opt) -> bool:
        """Group indices by (lr_mult, wd_mult) unless the multiplier dicts are unchanged.

        True when it regrouped: the multipliers may have changed, so the memoized rows are
        stale. ``param_dict`` entries are mutable objects, so with them it always regroups.
        """
        current = (opt.lr_mult, opt.wd_mult, opt.idx2name)
        if current == self._snapshot and not opt.param_dict:
            return False
        self._snapshot = tuple(dict(d) for d in current)
        keys = [(opt._mult(i, opt.lr_mult, "lr_mult"), opt._mult(i, opt.wd_mult, "wd_mult"))
                for i in self.indices]
        first = {}
        group = [first.setdefault(k, len(first)) for k in keys]
        self._reps = [self.indices[keys.index(k)] for k in first]
        trivial = len(first) in (1, self.n)
        self._take = None if trivial else np.array(group, dtype=np.intp)
        return True


_COUNTERS = ("num_update", "begin_num_update")
_PLAIN = (int, float, bool, str, type(None))


# ------------------------------------------------------------------------------- codegen
def _update_kernel(rule, shape, dtype) -> L.Kernel:
    """One fused loop: (weight, grad, states, scalars) -> weight, states, all in place.

    ``builders.elementwise_kernel`` re-reads a buffer in each store's expression, so with
    in-place outputs the second store would see the first one's new weight. Here every
    element is loaded into a ``Let`` before any store (and scalars once, outside the loop).
    """
    dt = str(dtype)
    size = int(np.prod(shape, dtype=np.int64))
    arrays = [L.BufferParam(n, dt, size)
              for n in ["weight", "grad"] + [f"state{k}" for k in range(rule.state_slot_count)]]
    scalars = [L.BufferParam(name, dt, 1) for name in rule.scalar_names]
    i = L.Var("i0")
    ins = [L.Var(f"in_{b.name}", dt) for b in arrays]
    sc = [L.Var(f"sc_{b.name}", dt) for b in scalars]
    outs = rule.formula(IRMath(dt), *ins, **dict(zip(rule.scalar_names, sc)))
    if len(outs) != 1 + rule.state_slot_count:
        raise ExecutorError(f"{rule.formula.__name__} returned {len(outs)} values for "
                            f"{1 + rule.state_slot_count} outputs")
    out_vars = [L.Var(f"out{k}", dt) for k in range(len(outs))]
    body = L.block(*[L.Store(b, i, v) for b, v in zip(arrays[:1] + arrays[2:], out_vars)])
    for var, value in reversed(list(zip(out_vars, outs))):
        body = L.Let(var, _typed(value, dt), body)
    for var, buf in reversed(list(zip(ins, arrays))):
        body = L.Let(var, L.Load(buf, i), body)
    body = L.For(i, size, body)
    for var, buf in reversed(list(zip(sc, scalars))):
        body = L.Let(var, L.Load(buf, L.Const(0, L.INT)), body)
    return L.make_kernel(arrays + scalars, body, noalias=True)


def _typed(value, dtype) -> L.Expr:
    value = L.as_expr(value, dtype=dtype)
    return value if value.dtype == dtype else L.Cast(value, dtype)


def _compile(calls, layout):
    """Emit ``void update(i8** table)``, compile (disk-cached), fill the pointer table."""
    module = ir.Module(name="symgraph_fused_update")
    module.triple = jit.host().triple
    functions = {}
    for kernel, _ in calls:
        if kernel.name not in functions:
            functions[kernel.name] = emit_kernel(module, kernel, jit.host().lanes)
    ptr, i64 = ir.PointerType(), ir.IntType(64)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr]), name="update")
    fn.attributes.add("nounwind")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    slot, addresses = 0, []
    for kernel, addrs in calls:
        args = []
        for address in addrs:
            cell = b.gep(fn.args[0], [ir.Constant(i64, slot)], inbounds=True, source_etype=ptr)
            args.append(b.load(cell, typ=ptr, align=8))
            addresses.append(address)
            slot += 1
        b.call(functions[kernel.name], args)
    b.ret_void()
    layout.pointers[:len(addresses)] = addresses
    library = jit.compile_ir(str(module), ["update"], "fused_update")
    function = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(library.addresses["update"])
    return function, library
