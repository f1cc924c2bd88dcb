"""Row-wise (log-)softmax for short rows, each row held in a few ``<W x T>`` registers.

The loop-IR kernel vectorizes only inner loops of at least W elements, so rows of 10 or
26 classes ran scalar, with one scalar exp per element per pass.  Here a row is loaded
once (the last vector masked, its dead lanes -inf so they never win the max), reduced
with shuffle trees, exponentiated with the vector exp of :mod:`codegen.emit.vecmath` once, and
stored with the same masks.  Several rows per loop iteration give the out-of-order core
independent dependency chains (each row is a serial max -> exp -> sum -> scale chain),
and share one vector log or reciprocal instead of a scalar one per row.

Rows of fewer than 2W columns (10 or 26 classes in 16 lanes) waste lanes that way, and
spend their time in per-row shuffle trees; W of them are instead transposed in registers
so a lane holds a row and a vector a column (see :meth:`SoftmaxEmitter.lane_block`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llvmlite import ir

from codegen import loop_ir as L
from codegen.emit import vecmath
from codegen.emit.emit_values import ir_type
from codegen.emit.llvm_emit import EmittedKernel, KernelEmitter

I64 = ir.IntType(64)
MAX_COLS = 64  # longer rows: the loop-IR kernel's vectorized inner loops are as good
ROW_VECTORS = 8  # row vectors per loop step: enough independent chains, few spills
MIN_LANE_ROWS = 4  # fewer rows do not pay for the two in-register transposes


@dataclass(frozen=True, eq=False)
class SoftmaxKernel(EmittedKernel):
    """Softmax over ``rows`` contiguous rows of ``cols``; params are (input, output)."""

    name: str
    rows: int
    cols: int
    dtype: str
    log: bool
    params: tuple
    noalias: bool = False
    fastmath: bool = False
    lane_rows: bool = True  # rows of < 2W columns: W rows at a time, one row per lane

    def canonical(self) -> str:
        params = ", ".join(p.dump() for p in self.params)
        return (f"softmax_rows({params}) rows={self.rows} cols={self.cols} log={self.log}"
                f"{'' if self.lane_rows else ' lane_rows=False'}")

    def emitter(self):
        return SoftmaxEmitter


def short_softmax_kernel(rows: int, cols: int, inp: L.BufferParam, out: L.BufferParam,
                         log: bool = False, lane_rows: bool = True) -> SoftmaxKernel:
    fields = dict(rows=rows, cols=cols, dtype=inp.dtype, log=log, params=(inp, out),
                  lane_rows=lane_rows)
    return SoftmaxKernel.named(**fields)


class SoftmaxEmitter(KernelEmitter):
    def __init__(self, fn, k: SoftmaxKernel, w: int):
        super().__init__(fn, k, lambda dt: w)
        self.k, self.w = k, w
        self.ty = ir_type(k.dtype)
        self.vty = ir.VectorType(self.ty, w)
        self.nvec = -(-k.cols // w)
        tail = k.cols - (self.nvec - 1) * w
        self.tail = None if tail == w else ir.Constant(
            ir.VectorType(ir.IntType(1), w), [int(t < tail) for t in range(w)])
        self.src, self.dst = fn.args

    def run(self):
        k = self.k
        done = 0
        # measured: from 2W columns on, full row vectors beat the transposes
        if k.lane_rows and k.cols < 2 * self.w and k.rows >= MIN_LANE_ROWS:
            done = k.rows // self.w * self.w
            self.loop(0, done, self.w, lambda i: self.lane_block(i, self.w))
            if done < k.rows:
                self.lane_block(_i(done), k.rows - done)
            done = k.rows
        step = min(max(1, ROW_VECTORS // self.nvec), k.rows - done)
        full = done + (k.rows - done) // step * step if step else done
        self.loop(done, full, step,
                  lambda i: self.rows([self.b.add(i, _i(r)) for r in range(step)]))
        if full < k.rows:
            self.rows([_i(r) for r in range(full, k.rows)])
        self.b.ret_void()
        self.alloca_builder.branch(self.start)

    def lane_block(self, i0, nrows):
        """W rows transposed in registers, W columns at a time, so that lane l holds
        row l and a vector holds a column.

        Max, exp and sum then work on whole column vectors: no horizontal reduction per
        row, one vector exp per column for W rows instead of one per row vector with
        dead lanes.  The max and sum trees combine columns in the order the per-row
        fold and shuffle tree combine lanes (absent columns count as the identity), so
        the results are those of :meth:`rows`, bit for bit.
        """
        b, w, cols, nvec = self.b, self.w, self.k.cols, self.nvec
        base = b.mul(i0, _i(cols))
        absent = ir.Constant(self.vty, None)  # rows past the end of a last, short block
        rows = [[self.vload(b.add(base, _i(r * cols)), v) if r < nrows else absent
                 for v in range(nvec)] for r in range(w)]
        for r, row in enumerate(lane_softmax(b, rows, cols, self.k.log)[:nrows]):
            for v, value in enumerate(row):
                self.vstore(value, b.add(base, _i(r * cols)), v)

    def rows(self, starts):
        """A few rows at once; their log / reciprocal share one vector call.

        All loads of a row happen before its stores, so in-place (in == out) is safe.
        """
        b = self.b
        bases = [b.mul(i, _i(self.k.cols)) for i in starts]
        parts = [self.reduce_row(base) for base in bases]
        totals = self.pack([total for _, _, total in parts])
        if self.k.log:
            scale = vecmath.call(b, "log", totals)
        else:
            ones = ir.Constant(totals.type, [1.0] * len(parts))
            scale = b.fdiv(ones, totals)
        for r, (base, (shifted, exps, _)) in enumerate(zip(bases, parts)):
            s = self.splat(b.extract_element(scale, ir.Constant(ir.IntType(32), r)), self.w)
            if self.k.log:
                outs = [b.fsub(d, s) for d in shifted]
            else:
                outs = [b.fmul(e, s) for e in exps]
            for v, value in enumerate(outs):
                self.vstore(value, base, v)

    def reduce_row(self, base):
        """Row max, x - max, exp(x - max) and their sum (dead tail lanes count zero)."""
        return reduce_row(self, [self.vload(base, v) for v in range(self.nvec)], self.tail)

    def pack(self, scalars):
        vec = ir.Constant(ir.VectorType(self.ty, len(scalars)), None)
        for r, x in enumerate(scalars):
            vec = self.b.insert_element(vec, x, ir.Constant(ir.IntType(32), r))
        return vec

    def combine(self, op, acc, v):
        return _combine(self.b, op, acc, v)

    def _ptr(self, arg, base, v):
        idx = self.b.add(base, _i(v * self.w))
        return self.b.gep(arg, [idx], inbounds=True, source_etype=self.ty)

    def vload(self, base, v):
        ptr, align = self._ptr(self.src, base, v), L.itemsize(self.k.dtype)
        if v < self.nvec - 1 or self.tail is None:
            return self.b.load(ptr, typ=self.vty, align=align)
        ninf = ir.Constant(self.vty, [-math.inf] * self.w)
        return vecmath.masked_load(self.b, self.vty, ptr, self.tail, ninf, align)

    def vstore(self, value, base, v):
        ptr, align = self._ptr(self.dst, base, v), L.itemsize(self.k.dtype)
        if v < self.nvec - 1 or self.tail is None:
            self.b.store(value, ptr, align=align)
        else:
            vecmath.masked_store(self.b, value, ptr, self.tail, align)


def lane_softmax(b, rows, cols, log=False):
    """(log-)softmax of W rows of ``cols`` columns, each row as its vectors, transposed
    so that lane l holds row l and a vector holds a column; returns the rows' vectors."""
    w, nvec = len(rows), len(rows[0])
    xs = [c for v in range(nvec) for c in vecmath.transpose(b, [row[v] for row in rows])]
    outs = column_softmax(b, xs[:cols], nvec, log)
    outs += [ir.Constant(outs[0].type, None)] * (nvec * w - cols)
    per_vector = [vecmath.transpose(b, outs[v * w:(v + 1) * w]) for v in range(nvec)]
    return [[per_vector[v][r] for v in range(nvec)] for r in range(w)]


def column_softmax(b, xs, nvec, log=False):
    """(log-)softmax across the column vectors ``xs`` (lane l holds row l's columns).

    The max and sum trees combine columns in the order :func:`reduce_row` combines a
    row's ``nvec`` vectors and lanes (absent columns count as the identity): the same
    bits as the row-wise kernels.
    """
    w = xs[0].type.count
    mx = _lane_tree(b, "max", _lane_fold(b, "max", xs, w, nvec))
    shifted = [b.fsub(x, mx) for x in xs]
    exps = [vecmath.call(b, "exp", d) for d in shifted]
    total = _lane_tree(b, "sum", _lane_fold(b, "sum", exps, w, nvec))
    if log:
        scale = vecmath.call(b, "log", total)
        return [b.fsub(d, scale) for d in shifted]
    scale = b.fdiv(ir.Constant(total.type, [1.0] * w), total)
    return [b.fmul(e, scale) for e in exps]


def _lane_fold(b, op, cols, w, nvec):
    """Per lane position t, combine columns t, t + W, ... like a row's vectors are
    combined pairwise; None where a position has no column."""
    out = []
    for t in range(w):
        vals = [cols[v * w + t] if v * w + t < len(cols) else None for v in range(nvec)]
        out.append(_pairwise(lambda a, c: _combine(b, op, a, c), vals))
    return out


def _lane_tree(b, op, cols):
    """Combine column vectors like :func:`_horizontal` combines the lanes of a row."""
    n = len(cols)
    vals = list(cols)
    while n > 1:
        n //= 2
        vals = [_either(lambda a, c: _combine(b, op, a, c), a, c)
                for a, c in zip(vals[:n], vals[n:2 * n])]
    return vals[0]


def reduce_row(em, xs, tail):
    """Row max, x - max, exp(x - max) and the sum of the exps of a row held in the
    vectors ``xs`` (lanes off ``tail`` of the last one are dead and must hold -inf).

    Shared by :class:`SoftmaxEmitter` and the matmul softmax epilogue so that both give
    the same bits: the same pairwise folds, shuffle trees and NaN-skipping max.
    """
    b = em.b
    mx = _horizontal(b, "max", _pairwise(lambda a, c: _combine(b, "max", a, c), xs))
    shifted = [b.fsub(x, em.splat(mx, em.w)) for x in xs]
    exps = [vecmath.call(b, "exp", d) for d in shifted]
    if tail is not None:  # dead lanes hold exp(-inf); make them exact zeros
        exps[-1] = b.select(tail, exps[-1], ir.Constant(exps[-1].type, None))
    total = _horizontal(b, "sum", _pairwise(lambda a, c: _combine(b, "sum", a, c), exps))
    return shifted, exps, total


def row_probabilities(em, xs, tail):
    """softmax of one row already in registers (the matmul epilogue): dead lanes of the
    last vector are set to -inf here, and come out as zeros."""
    b = em.b
    if tail is not None:
        ninf = ir.Constant(xs[-1].type, [-math.inf] * em.w)
        xs = xs[:-1] + [b.select(tail, xs[-1], ninf)]
    _, exps, total = reduce_row(em, xs, tail)
    scale = em.splat(b.fdiv(ir.Constant(total.type, 1.0), total), em.w)
    return [b.fmul(e, scale) for e in exps]


def _combine(b, op, acc, v):
    """Max as compare+select (one vmaxps): a NaN may be skipped by the max, but it
    still reaches exp(x - max), so the sum and every output of its row are NaN."""
    if op == "max":
        return b.select(b.fcmp_ordered(">", acc, v), acc, v)
    return b.fadd(acc, v)


def _horizontal(b, op, v):
    """Shuffle-tree reduction of a vector to a scalar (the order of
    ``KernelEmitter.horizontal``)."""
    n = v.type.count
    while n > 1:
        n //= 2
        lo = b.shuffle_vector(v, v, _lanes(range(n)))
        hi = b.shuffle_vector(v, v, _lanes(range(n, 2 * n)))
        v = _combine(b, op, lo, hi)
    return b.extract_element(v, ir.Constant(ir.IntType(32), 0))


def _lanes(idx):
    idx = list(idx)
    return ir.Constant(ir.VectorType(ir.IntType(32), len(idx)), idx)


def _i(v):
    return ir.Constant(I64, v)


def _pairwise(combine, vals):
    """Combine neighbours level by level (an odd one out moves on to the end); None is
    the identity."""
    vals = list(vals)
    while len(vals) > 1:
        pairs = [_either(combine, a, c) for a, c in zip(vals[::2], vals[1::2])]
        vals = pairs + vals[len(pairs) * 2:]
    return vals[0]


def _either(combine, a, c):
    return c if a is None else a if c is None else combine(a, c)
