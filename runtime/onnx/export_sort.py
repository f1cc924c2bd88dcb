"""Export entries for topk, sort and argsort: ONNX TopK (sorted; equal values keep the
lower index first, as symgraph's stable sort does), indices cast to MXNet's float dtype."""

from __future__ import annotations

import numpy as np

from runtime.onnx.table import exporter


def _axis_input(ctx, n):
    """The data and the axis TopK runs on (axis=None sorts the flattened input)."""
    if n.p.axis is None:
        return ctx.reshape(n.x, (-1,)), 0, int(np.prod(n.in_shapes[0]))
    axis = n.axis(n.p.axis)
    return n.x, axis, n.in_shapes[0][axis]


def _top(ctx, n, k=None):
    data, axis, size = _axis_input(ctx, n)
    k = size if k is None or k < 1 else k
    values, indices = ctx.op("TopK", [data, ctx.ints([k], "k")], n_out=2, axis=axis,
                             largest=int(not n.p.is_ascend), sorted=1)
    return values, indices, axis


@exporter("sort")
def sort(ctx, n):
    values, _, _ = _top(ctx, n)
    ctx.op("Identity", [values], n.out)


@exporter("argsort")
def argsort(ctx, n):
    _, indices, _ = _top(ctx, n)
    ctx.cast(indices, n.dtype, n.out)


@exporter("topk")
def topk(ctx, n):
    values, indices, axis = _top(ctx, n, n.p.k)
    kind = n.p.ret_typ
    if kind == "value":
        ctx.op("Identity", [values], n.out)
    elif kind == "indices":
        ctx.cast(indices, n.out_dtypes[0], n.out)
    elif kind == "both":
        ctx.op("Identity", [values], n.outputs[0])
        ctx.cast(indices, n.out_dtypes[1], n.outputs[1])
    else:  # mask: ones scattered at the chosen positions of a zero tensor like data
        n.require(n.p.axis is not None, "axis", "a flattened topk mask is not exported")
        zeros = _filled(ctx, n.x, 0.0, n.dtype)
        ones = _filled(ctx, values, 1.0, n.dtype)
        ctx.op("ScatterElements", [zeros, indices, ones], n.out, axis=axis)


def _filled(ctx, like, value, dtype):
    fill = ctx.onnx.numpy_helper.from_array(np.asarray([value], dtype=np.dtype(dtype)))
    return ctx.op("ConstantOfShape", [ctx.op("Shape", [like])], value=fill)
