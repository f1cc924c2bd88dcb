"""batch_dot: a matrix product per batch entry of two 3-D tensors (MXNet 1.x)."""

from __future__ import annotations

from ..errors import ShapeError, format_shape
from .array_ops import fill
from .registry import OpDef, register
from .tensor import PRODUCT_PARAMS, product_grads


def operand(shape, transpose: bool) -> tuple:
    """(batch, rows, cols) of the operand as multiplied."""
    return (shape[0], shape[2], shape[1]) if transpose else tuple(shape)


@register
class BatchDot(OpDef):
    """``out[b] = op(lhs[b]) @ op(rhs[b])``; op transposes when asked."""

    name = "batch_dot"
    arguments = ("lhs", "rhs")
    params = PRODUCT_PARAMS

    def infer_shape(self, p, in_shapes):
        lhs, rhs = in_shapes
        if lhs is None or rhs is None:
            return in_shapes, [None]
        if len(lhs) != 3 or len(rhs) != 3:
            raise ShapeError(f"batch_dot needs 3-D inputs, got lhs {format_shape(lhs)} and "
                             f"rhs {format_shape(rhs)}")
        a, b = operand(lhs, p.transpose_a), operand(rhs, p.transpose_b)
        if a[0] != b[0] or a[2] != b[1]:
            raise ShapeError(f"batch_dot: lhs {format_shape(lhs)} and rhs {format_shape(rhs)} "
                             f"do not align (transpose_a={p.transpose_a}, transpose_b="
                             f"{p.transpose_b})")
        return in_shapes, [(a[0], a[1], b[2])]

    def reference(self, p, inputs, ctx):
        lhs, rhs = inputs
        a = lhs.transpose(0, 2, 1) if p.transpose_a else lhs
        b = rhs.transpose(0, 2, 1) if p.transpose_b else rhs
        return [a @ b]

    def gradient(self, p, g):
        return product_grads("batch_dot", p, g)

    def lower(self, p, ctx):
        lhs, rhs = ctx.in_shapes
        batch, m, n = ctx.out_shapes[0]
        k = operand(lhs, p.transpose_a)[2]

        def a_index(bi, i, t):
            return (bi * lhs[1] + t) * lhs[2] + i if p.transpose_a else (
                bi * lhs[1] + i) * lhs[2] + t

        def b_index(bi, t, j):
            return (bi * rhs[1] + j) * rhs[2] + t if p.transpose_b else (
                bi * rhs[1] + t) * rhs[2] + j

        def build(inputs, outputs):
            from codegen import loop_ir as L

            a, b_buf = inputs
            out = outputs[0]
            bi, i, j, t = L.Var("b"), L.Var("i"), L.Var("j"), L.Var("t")
            value = L.Load(a, a_index(bi, i, t)) * L.Load(b_buf, b_index(bi, t, j))
            dst = (bi * m + i) * n + j
            if not p.transpose_b:  # rows of rhs are contiguous: accumulate along j (vectors)
                add = L.Store(out, dst, L.Load(out, dst) + value)
                body = L.For(bi, batch, L.For(i, m, L.For(t, k, L.For(j, n, add))))
                return L.make_kernel([a, b_buf, out], L.block(fill(L, out, 0.0), body))
            acc = L.Var("acc", out.dtype)  # rhs^T: the contraction is contiguous, reduce it
            reduce = L.Reduce(acc, "sum", t, k, value, L.Store(out, dst, acc))
            body = L.For(bi, batch, L.For(i, m, L.For(j, n, reduce)))
            return L.make_kernel([a, b_buf, out], body)

        ctx.kernel(build)
