"""SoftmaxOutput's gradient for short rows (one label per row), a row per few vectors.

The loop-IR kernel vectorizes its class loop only with at least W classes, so the usual
10- or 26-class classifier ran one scalar compare/select/sub/mul chain per element.  Here
a row is one or a few ``<W x T>`` vectors (the last one masked): the one-hot row is a
compare of the truncated label against the constant vector ``0, 1, ..., W-1``, and the
whole row is ``(prob - onehot) * keep * scale`` -- the same operations in the same order
as the loop kernel, so the results are identical, NaN/inf included.  Each row is loaded
before it is stored, so ``out`` may alias ``prob``.
"""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from codegen import loop_ir as L
from codegen.emit import vecmath
from codegen.emit.emit_values import ir_type
from codegen.emit.llvm_emit import EmittedKernel, KernelEmitter

I64 = ir.IntType(64)
MAX_CLASSES = 64  # longer rows vectorize well in the loop-IR kernel
ROW_VECTORS = 8  # row vectors per loop step: independent chains without spills


@dataclass(frozen=True, eq=False)
class SoftmaxGradKernel(EmittedKernel):
    """``out = (prob - onehot(label)) * keep * scale``; params are (prob, label, out).

    ``scale`` None means ``grad_scale / max(1, count(label != ignore_label))``;
    ``on``/``off`` are the one-hot values (label smoothing changes them); ``keep`` zeroes
    rows whose label is ``ignore_label`` when ``use_ignore``.
    """

    name: str
    rows: int
    classes: int
    dtype: str
    grad_scale: float
    scale: float | None
    on: float
    off: float
    use_ignore: bool
    ignore_label: float
    params: tuple
    noalias: bool = False
    fastmath: bool = False

    def canonical(self) -> str:
        params = ", ".join(p.dump() for p in self.params)
        return (f"softmax_output_grad_rows({params}) rows={self.rows} classes={self.classes} "
                f"grad_scale={self.grad_scale!r} scale={self.scale!r} on={self.on!r} "
                f"off={self.off!r} use_ignore={self.use_ignore} ignore={self.ignore_label!r}")

    def emitter(self):
        return SoftmaxGradEmitter


def short_softmax_grad_kernel(rows, classes, prob, label, out, *, grad_scale, scale, on, off,
                              use_ignore, ignore_label) -> SoftmaxGradKernel:
    fields = (rows, classes, prob.dtype, float(grad_scale),
              None if scale is None else float(scale), float(on), float(off),
              bool(use_ignore), float(ignore_label), (prob, label, out))
    return SoftmaxGradKernel.named(*fields)


class SoftmaxGradEmitter(KernelEmitter):
    def __init__(self, fn, k: SoftmaxGradKernel, w: int):
        super().__init__(fn, k, lambda dt: w)
        self.k, self.w = k, w
        self.ty = ir_type(k.dtype)
        self.vty = ir.VectorType(self.ty, w)
        self.nvec = -(-k.classes // w)
        self.prob, self.label, self.out = fn.args

    def run(self):
        k = self.k
        self.scale = self.splat(self.scale_value(), self.w)
        step = min(max(1, ROW_VECTORS // self.nvec), k.rows)
        full = k.rows // step * step
        self.loop(0, full, step, lambda i: self.rows(i, step))
        self.rows(_i(full), k.rows - full)
        self.b.ret_void()
        self.alloca_builder.branch(self.start)

    def scale_value(self):
        """The constant factor, or grad_scale over the count of labels != ignore_label
        (counted in T like the loop kernel, whatever ``use_ignore`` says)."""
        k, b = self.k, self.b
        if k.scale is not None:
            return ir.Constant(self.ty, k.scale)
        full = k.rows // self.w * self.w
        zero, one = ir.Constant(self.vty, None), ir.Constant(self.vty, [1.0] * self.w)
        total = self.alloca(self.vty, zero)

        def count(start, mask):
            ptr = self._ptr(self.label, start)
            labels = self.vload(ptr, mask, ir.Constant(self.vty, [k.ignore_label] * self.w))
            valid = b.select(self.is_kept(labels), one, zero)
            b.store(b.fadd(b.load(total), valid), total)

        self.loop(0, full, self.w, lambda i: count(i, None))
        if full < k.rows:
            count(_i(full), self.mask(k.rows - full))
        n = self.horizontal("sum", b.load(total))
        n = b.select(b.fcmp_ordered(">", n, ir.Constant(self.ty, 1.0)), n,
                     ir.Constant(self.ty, 1.0))
        return b.fdiv(ir.Constant(self.ty, k.grad_scale), n)

    def is_kept(self, labels):
        """``label != ignore_label`` as the loop kernel's unordered compare (NaN kept)."""
        ignore = ir.Constant(labels.type, _fill(labels.type, self.k.ignore_label))
        return self.b.fcmp_unordered("!=", labels, ignore)

    def rows(self, first, count):
        """A few rows per loop step: independent chains for the out-of-order core."""
        for r in range(count):
            self.row(self.b.add(first, _i(r)))

    def row(self, i):
        """One row: the label's integer part selects the ``on`` lane of each vector."""
        k, b, w = self.k, self.b, self.w
        lab = b.load(self._ptr(self.label, i), typ=self.ty)
        hot = self.splat(self.call_intrinsic("trunc", lab), w)
        keep = None
        if k.use_ignore:
            kept = b.select(self.is_kept(lab), ir.Constant(self.ty, 1.0),
                            ir.Constant(self.ty, 0.0))
            keep = self.splat(kept, w)
        base = b.mul(i, _i(k.classes))
        on, off = (ir.Constant(self.vty, [v] * w) for v in (k.on, k.off))
        masks = [self.mask(k.classes - v * w) for v in range(self.nvec)]
        xs = [self.vload(self._ptr(self.prob, b.add(base, _i(v * w))), masks[v],
                         ir.Constant(self.vty, None)) for v in range(self.nvec)]
        for v, x in enumerate(xs):
            cls = ir.Constant(self.vty, [float(v * w + t) for t in range(w)])
            grad = b.fsub(x, b.select(b.fcmp_ordered("==", cls, hot), on, off))
            if keep is not None:
                grad = b.fmul(grad, keep)
            ptr = self._ptr(self.out, b.add(base, _i(v * w)))
            self.vstore(b.fmul(grad, self.scale), ptr, masks[v])

    def mask(self, valid):
        return None if valid >= self.w else ir.Constant(
            ir.VectorType(ir.IntType(1), self.w), [int(t < valid) for t in range(self.w)])

    def _ptr(self, arg, idx):
        return self.b.gep(arg, [idx], inbounds=True, source_etype=self.ty)

    def vload(self, ptr, mask, passthru):
        align = L.itemsize(self.k.dtype)
        if mask is None:
            return self.b.load(ptr, typ=self.vty, align=align)
        return vecmath.masked_load(self.b, self.vty, ptr, mask, passthru, align)

    def vstore(self, value, ptr, mask):
        align = L.itemsize(self.k.dtype)
        if mask is None:
            self.b.store(value, ptr, align=align)
        else:
            vecmath.masked_store(self.b, value, ptr, mask, align)


def _fill(ty, value):
    if isinstance(ty, ir.VectorType):
        return [value] * ty.count
    return value


def _i(v):
    return ir.Constant(I64, v)
