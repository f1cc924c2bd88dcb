"""Export entries for reductions, index-producing ops and products: sum/mean/max/min/prod,
argmax/argmin (float indices, as MXNet), dot, batch_dot, one_hot, zeros_like/ones_like."""

from __future__ import annotations

import numpy as np

from runtime.onnx.table import exporter
from symgraph.ops.registry import get_op

REDUCE = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax", "min": "ReduceMin",
          "prod": "ReduceProd", "nansum": None, "nanprod": None}


@exporter(*[op for op, onnx_type in REDUCE.items() if onnx_type])
def reduce(ctx, n):
    """The axes come from the op's own rule (axis=None, exclude); MXNet's full reduction
    without keepdims has shape (1,), ONNX's has (): a reshape restores MXNet's."""
    axes = get_op(n.op).axes(n.p, n.rank)
    if n.p.keepdims or len(axes) < n.rank:
        ctx.reduce(REDUCE[n.op], n.x, axes, bool(n.p.keepdims), n.out)
        return
    ctx.reshape(ctx.reduce(REDUCE[n.op], n.x, axes, False), (1,), outputs=n.out)


@exporter("argmax", "argmin")
def arg_extremum(ctx, n):
    onnx_type = "ArgMax" if n.op == "argmax" else "ArgMin"
    if n.p.axis is None:
        flat = ctx.reshape(n.x, (-1,))
        index = ctx.op(onnx_type, [flat], axis=0, keepdims=1)
        if n.p.keepdims and n.rank > 1:
            index = ctx.reshape(index, (1,) * n.rank)
    else:
        keep = bool(n.p.keepdims) or n.rank == 1
        index = ctx.op(onnx_type, [n.x], axis=n.axis(n.p.axis), keepdims=int(keep))
    ctx.cast(index, n.dtype, n.out)


def _transposed(ctx, x, rank, swap_last_two=True):
    perm = list(range(rank))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    return ctx.op("Transpose", [x], perm=perm) if swap_last_two else x


@exporter("dot")
def dot(ctx, n):
    lhs, rhs = n.inputs
    ra, rb = len(n.in_shapes[0]), len(n.in_shapes[1])
    if ra == 2 and rb == 2:
        if n.p.transpose_b and not n.p.transpose_a:
            ctx.op("Gemm", [lhs, rhs], n.out, transB=1)
            return
        a = _transposed(ctx, lhs, 2, n.p.transpose_a)
        b = _transposed(ctx, rhs, 2, n.p.transpose_b)
        ctx.op("MatMul", [a, b], n.out)
        return
    n.require(not n.p.transpose_a and not n.p.transpose_b, "transpose_a",
              "N-D dot with transposes is not exported")
    k = n.in_shapes[0][-1]
    a = ctx.reshape(lhs, (-1, k)) if ra != 2 else lhs
    b = ctx.reshape(rhs, (k, -1)) if rb != 2 else rhs
    ctx.reshape(ctx.op("MatMul", [a, b]), n.out_shapes[0], n.out_dyn[0], n.out)


@exporter("batch_dot")
def batch_dot(ctx, n):
    lhs, rhs = n.inputs
    a = _transposed(ctx, lhs, len(n.in_shapes[0]), n.p.transpose_a)
    b = _transposed(ctx, rhs, len(n.in_shapes[1]), n.p.transpose_b)
    ctx.op("MatMul", [a, b], n.out)


@exporter("one_hot")
def one_hot(ctx, n):
    indices = ctx.cast(n.x, np.int64)
    values = ctx.const([n.p.off_value, n.p.on_value], n.dtype, "onoff")
    ctx.op("OneHot", [indices, ctx.ints([n.p.depth], "depth"), values], n.out, axis=-1)


@exporter("zeros_like", "ones_like")
def fill_like(ctx, n):
    value = 0.0 if n.op == "zeros_like" else 1.0
    fill = ctx.onnx.numpy_helper.from_array(np.asarray([value], dtype=np.dtype(n.dtype)))
    ctx.op("ConstantOfShape", [ctx.op("Shape", [n.x])], n.out, value=fill)
