"""The training-step driver: many whole training steps in one native call.

Python's per-batch work (a ctypes call per phase, the optimizer's scalar fill, the
metric's numpy) costs more than the native step itself on small networks. The driver
is one generic LLVM function, ``void run_steps(i64* ctx)``, that for ``k`` in
``[0, n_steps)``:

1. copies batch ``k``'s rows into the executor's input arrays: one ``memcpy`` of a
   contiguous slice per input, or, when the iterator keeps its arrays in their first
   order and the epoch's order as row numbers (a shuffled ``NDArrayIter``), one per
   row, gathered by those numbers (so no reordered copy of the data set exists);
2. calls the compiled ``forward_backward`` phase ``phase(arena, ext)`` and advances the
   Dropout seed by one, as ``Executor.forward_backward`` does;
3. copies step ``k``'s optimizer scalars into the fused update's scalar tables when
   Python planned new values for that step (``step_row[k] >= 0``: a byte offset in the
   blob of planned tables), then calls the fused update ``update(table)``;
4. accumulates the training metric: the number of rows whose argmax (first maximum
   wins, a NaN is a maximum: numpy's ``argmax``) equals the label truncated to an
   integer (``Accuracy``), and/or the probability each row gives its label
   (``CrossEntropy``'s pick; Python takes the logs so they are numpy's).

Everything it calls arrives as addresses in ``ctx``, so the code depends on nothing
model-specific: it is compiled once (through the disk cache) and serves every model.
The caller (``runtime/native_step.py``) guarantees every address, size and label range.
"""

from __future__ import annotations

import ctypes
import functools

from llvmlite import ir

from codegen import jit

# ctx slots (int64 each)
PHASE, ARENA, EXT, UPDATE, UTABLE, NSTEPS, NCOPY, COPIES, SEED, NSCHED, SCHED, STEPROW, \
    BLOB, OUT, LABEL, ROWS, COLS, ACC_COUNT, PICK = range(19)
CTX_SLOTS = 19
#: int64s per COPIES entry: source address (row 0 of the run), bytes per batch,
#: destination address, row-number array (0: the batch's rows are contiguous), bytes per
#: row, rows per batch
COPY_FIELDS = 6

_I64 = ir.IntType(64)
_I32 = ir.IntType(32)
_F32 = ir.FloatType()
_PTR = ir.PointerType()
_VOID = ir.VoidType()
_PHASE_TYPE = ir.FunctionType(_VOID, [_PTR, _PTR])
_UPDATE_TYPE = ir.FunctionType(_VOID, [_PTR])


class _Callee:
    """A loaded function pointer with the type llvmlite's ``call`` needs to see."""

    def __init__(self, value, function_type):
        self.value, self.function_type, self.type = value, function_type, value.type

    def get_reference(self):
        return self.value.get_reference()


class _Emitter:
    def __init__(self, module, fn):
        self.fn = fn
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.memcpy = module.declare_intrinsic("llvm.memcpy", [_PTR, _PTR, _I64])
        self.best = self.b.alloca(_F32)  # argmax state, in the entry block (SROA'd away)
        self.index = self.b.alloca(_I64)

    def const(self, value, typ=_I64):
        return ir.Constant(typ, value)

    def load(self, base, index, typ=_I64, etype=None):
        cell = self.b.gep(base, [index if isinstance(index, ir.Value) else self.const(index)],
                          inbounds=True, source_etype=etype or typ)
        return self.b.load(cell, typ=typ)

    def ptr(self, value):
        return self.b.inttoptr(value, _PTR)

    def copy(self, dst, src, nbytes):
        self.b.call(self.memcpy, [dst, src, nbytes, ir.Constant(ir.IntType(1), 0)])

    def loop(self, count, body, name):
        """``for (i = 0; i < count; ++i) body(i)`` (count may be zero)."""
        b = self.b
        head = self.fn.append_basic_block(f"{name}.head")
        inner = self.fn.append_basic_block(f"{name}.body")
        done = self.fn.append_basic_block(f"{name}.done")
        before = b.block
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(_I64, name=f"{name}.i")
        i.add_incoming(self.const(0), before)
        b.cbranch(b.icmp_signed("<", i, count), inner, done)
        b.position_at_end(inner)
        body(i)
        nxt = b.add(i, self.const(1))
        i.add_incoming(nxt, b.block)
        b.branch(head)
        b.position_at_end(done)

    def when(self, cond, body, name):
        b = self.b
        then = self.fn.append_basic_block(f"{name}.then")
        done = self.fn.append_basic_block(f"{name}.done")
        b.cbranch(cond, then, done)
        b.position_at_end(then)
        body()
        b.branch(done)
        b.position_at_end(done)


def _build() -> str:
    module = ir.Module(name="symgraph_step_driver")
    module.triple = jit.host().triple
    fn = ir.Function(module, ir.FunctionType(_VOID, [_PTR]), name="run_steps")
    fn.attributes.add("nounwind")
    e = _Emitter(module, fn)
    b = e.b
    ctx = fn.args[0]
    slot = {k: e.load(ctx, k) for k in range(CTX_SLOTS)}
    phase = _Callee(e.ptr(slot[PHASE]), _PHASE_TYPE)
    update = _Callee(e.ptr(slot[UPDATE]), _UPDATE_TYPE)
    arena, ext = e.ptr(slot[ARENA]), e.ptr(slot[EXT])
    copies, sched = e.ptr(slot[COPIES]), e.ptr(slot[SCHED])
    zero = e.const(0)

    def step(k):
        e.loop(slot[NCOPY], lambda c: _copy_batch(e, copies, c, k), "copy")
        b.call(phase, [arena, ext])
        e.when(b.icmp_signed("!=", slot[SEED], zero), lambda: _bump_seed(e, slot[SEED]),
               "seed")
        e.when(b.icmp_signed("!=", slot[STEPROW], zero),
               lambda: _scalars(e, slot, sched, k), "scalars")
        e.when(b.icmp_signed("!=", slot[UPDATE], zero),
               lambda: b.call(update, [e.ptr(slot[UTABLE])]), "update")
        e.when(b.icmp_signed("!=", slot[ACC_COUNT], zero), lambda: _accuracy(e, slot), "acc")
        e.when(b.icmp_signed("!=", slot[PICK], zero), lambda: _pick(e, slot, k), "pick")

    e.loop(slot[NSTEPS], step, "step")
    b.ret_void()
    return str(module)


def _copy_batch(e, copies, c, k):
    """Copy entry ``c`` (:data:`COPY_FIELDS` int64s) for batch ``k``: ``order == 0``
    copies the batch's contiguous rows, else row ``r`` comes from source row
    ``order[k * rows + r]``."""
    b = e.b
    src, nbytes, dst, order, row_bytes, rows = (
        e.load(copies, b.add(b.mul(c, e.const(COPY_FIELDS)), e.const(f)))
        for f in range(COPY_FIELDS))
    e.when(b.icmp_signed("==", order, e.const(0)),
           lambda: e.copy(e.ptr(dst), e.ptr(b.add(src, b.mul(k, nbytes))), nbytes), "slice")

    def gather():
        first = b.mul(k, rows)

        def row(r):
            at = e.load(e.ptr(order), b.add(first, r))
            e.copy(e.ptr(b.add(dst, b.mul(r, row_bytes))),
                   e.ptr(b.add(src, b.mul(at, row_bytes))), row_bytes)
        e.loop(rows, row, "row")
    e.when(b.icmp_signed("!=", order, e.const(0)), gather, "gather")


def _bump_seed(e, address):
    seed = e.ptr(address)
    e.b.store(e.b.add(e.b.load(seed, typ=_I64), e.const(1)), seed)


def _scalars(e, slot, sched, k):
    b = e.b
    offset = e.load(e.ptr(slot[STEPROW]), k)

    def copy_all():
        def one(t):
            dst = e.load(sched, b.mul(t, e.const(3)))
            nbytes = e.load(sched, b.add(b.mul(t, e.const(3)), e.const(1)))
            start = e.load(sched, b.add(b.mul(t, e.const(3)), e.const(2)))
            src = b.add(slot[BLOB], b.add(offset, start))
            e.copy(e.ptr(dst), e.ptr(src), nbytes)
        e.loop(slot[NSCHED], one, "table")
    e.when(b.icmp_signed(">=", offset, e.const(0)), copy_all, "planned")


def _argmax(e, out, row, cols):
    """numpy's argmax of one float32 row: the first maximum, or the first NaN."""
    b = e.b
    base = b.mul(row, cols)
    first = e.load(out, base, _F32)
    best, index = e.best, e.index
    b.store(first, best)
    b.store(e.const(0), index)

    def scan(j):
        col = b.add(j, e.const(1))
        value = e.load(out, b.add(base, col), _F32)
        current = b.load(best, typ=_F32)
        ordered = b.fcmp_ordered("==", current, current)
        beats = b.not_(b.fcmp_ordered("<=", value, current))
        take = b.and_(ordered, beats)
        b.store(b.select(take, value, current), best)
        b.store(b.select(take, col, b.load(index, typ=_I64)), index)
    e.loop(b.sub(cols, e.const(1)), scan, "argmax")
    return b.load(index, typ=_I64)


def _label_index(e, label, cols):
    """(label truncated to an integer, whether that is a column): numpy's astype(int)
    on in-range values; out of range (or NaN) never matches a column."""
    b = e.b
    inside = b.and_(b.fcmp_ordered(">", label, ir.Constant(_F32, -1.0)),
                    b.fcmp_ordered("<", label, b.sitofp(cols, _F32)))
    safe = b.select(inside, label, ir.Constant(_F32, 0.0))
    return b.fptosi(safe, _I64), inside


def _accuracy(e, slot):
    b = e.b
    out, labels = e.ptr(slot[OUT]), e.ptr(slot[LABEL])
    count = e.ptr(slot[ACC_COUNT])

    def row(i):
        predicted = _argmax(e, out, i, slot[COLS])
        target, inside = _label_index(e, e.load(labels, i, _F32), slot[COLS])
        hit = b.and_(inside, b.icmp_signed("==", predicted, target))
        b.store(b.add(b.load(count, typ=_I64), b.zext(hit, _I64)), count)
    e.loop(slot[ROWS], row, "acc")


def _pick(e, slot, k):
    """pick[k*rows + i] = out[i, label[i]] (labels checked in range by the caller)."""
    b = e.b
    out, labels = e.ptr(slot[OUT]), e.ptr(slot[LABEL])
    pick = e.ptr(slot[PICK])
    rows, cols = slot[ROWS], slot[COLS]

    def row(i):
        target, _ = _label_index(e, e.load(labels, i, _F32), cols)
        value = e.load(out, b.add(b.mul(i, cols), target), _F32)
        cell = b.gep(pick, [b.add(b.mul(k, rows), i)], inbounds=True, source_etype=_F32)
        b.store(value, cell)
    e.loop(rows, row, "pick")


@functools.lru_cache(maxsize=1)
def driver():
    """``(run_steps, library)``: ``run_steps(ctx_address)`` runs the steps ``ctx`` names."""
    library = jit.compile_ir(_build, ["run_steps"], "step_driver",
                             description="step_driver v1 (see codegen/step_driver.py)")
    return ctypes.CFUNCTYPE(None, ctypes.c_void_p)(library.addresses["run_steps"]), library
