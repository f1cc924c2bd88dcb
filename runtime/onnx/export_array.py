"""Export entries for layout and indexing ops: reshapes, transposes, concatenation and
splitting, slicing, broadcasting, gathers (Embedding, take, pick), Pad, Cast, where, tile,
repeat, stack. Reshape-like ops write symgraph's inferred output shape (its dynamic dim as
-1), so MXNet's special reshape codes never need re-deriving."""

from __future__ import annotations

import numpy as np

from runtime.onnx.emit import INT64_MAX
from runtime.onnx.table import exporter


@exporter("Flatten")
def flatten(ctx, n):
    ctx.op("Flatten", [n.x], n.out, axis=1)


@exporter("Reshape", "squeeze")
def reshape(ctx, n):
    ctx.reshape(n.x, n.out_shapes[0], n.out_dyn[0], n.out)


@exporter("reshape_like")
def reshape_like(ctx, n):
    ctx.op("Reshape", [n.inputs[0], ctx.op("Shape", [n.inputs[1]])], n.out)


@exporter("expand_dims")
def expand_dims(ctx, n):
    ctx.unsqueeze(n.x, [n.axis(n.p.axis, n.rank + 1)], n.out)


@exporter("transpose")
def transpose(ctx, n):
    perm = [n.axis(a) for a in n.p.axes] if n.p.axes else list(reversed(range(n.rank)))
    ctx.op("Transpose", [n.x], n.out, perm=perm)


@exporter("SwapAxis")
def swap_axis(ctx, n):
    perm = list(range(n.rank))
    a, b = n.axis(n.p.dim1), n.axis(n.p.dim2)
    perm[a], perm[b] = perm[b], perm[a]
    ctx.op("Transpose", [n.x], n.out, perm=perm)


@exporter("Concat")
def concat(ctx, n):
    ctx.op("Concat", n.inputs, n.out, axis=n.axis(n.p.dim))


@exporter("stack")
def stack(ctx, n):
    axis = n.axis(n.p.axis, n.rank + 1)
    parts = [ctx.unsqueeze(x, [axis]) for x in n.inputs]
    ctx.op("Concat", parts, n.out, axis=axis)


@exporter("SliceChannel")
def slice_channel(ctx, n):
    axis = n.axis(n.p.axis)
    size = n.in_shapes[0][axis] // n.p.num_outputs
    sizes = ctx.ints([size] * n.p.num_outputs, "split")
    if not n.p.squeeze_axis:
        ctx.op("Split", [n.x, sizes], n.outputs, axis=axis)
        return
    parts = ctx.op("Split", [n.x, sizes], n_out=n.p.num_outputs, axis=axis)
    parts = [parts] if isinstance(parts, str) else parts
    for part, out, shape, dyn in zip(parts, n.outputs, n.out_shapes, n.out_dyn):
        ctx.reshape(part, shape, dyn, out)


@exporter("slice_axis")
def slice_axis(ctx, n):
    end = INT64_MAX if n.p.end is None else n.p.end
    ctx.op("Slice", [n.x, ctx.ints([n.p.begin]), ctx.ints([end]), ctx.ints([n.axis(n.p.axis)])],
           n.out)


@exporter("slice", "crop")
def slice_(ctx, n):
    begin, end = list(n.p.begin), list(n.p.end)
    step = list(getattr(n.p, "step", ()) or ()) or [1] * len(begin)
    starts, ends = [], []
    for b, e, s in zip(begin, end, step):
        s = 1 if s is None else s
        starts.append((0 if s > 0 else INT64_MAX) if b is None else b)
        ends.append((INT64_MAX if s > 0 else -INT64_MAX) if e is None else e)
    step = [1 if s is None else s for s in step]
    ctx.op("Slice", [n.x, ctx.ints(starts), ctx.ints(ends), ctx.ints(range(len(starts))),
                     ctx.ints(step)], n.out)


@exporter("broadcast_to")
def broadcast_to(ctx, n):
    """ONNX Expand broadcasts both ways, so MXNet's 0 ("keep this dim") is a 1."""
    target = [1 if d == 0 else d for d in n.p.shape]
    ctx.op("Expand", [n.x, ctx.ints(target, "shape")], n.out)


@exporter("broadcast_axis")
def broadcast_axis(ctx, n):
    target = [1] * n.rank
    for axis, size in zip(n.p.axis, n.p.size):
        target[n.axis(axis)] = size
    ctx.op("Expand", [n.x, ctx.ints(target, "shape")], n.out)


@exporter("broadcast_like")
def broadcast_like(ctx, n):
    ctx.op("Expand", [n.inputs[0], ctx.op("Shape", [n.inputs[1]])], n.out)


def _indices(ctx, x, count, mode, dtype):
    """Float indices to int64 as MXNet reads them: clipped into [0, count) or wrapped."""
    if mode == "wrap":
        size = ctx.scalar_like(count, dtype)
        x = ctx.op("Sub", [x, ctx.op("Mul", [ctx.op("Floor", [ctx.op("Div", [x, size])]),
                                             size])])
    else:
        x = ctx.op("Clip", [x, ctx.scalar_like(0, dtype), ctx.scalar_like(count - 1, dtype)])
    return ctx.cast(x, np.int64)


@exporter("Embedding")
def embedding(ctx, n):
    rows = _indices(ctx, n.inputs[0], n.p.input_dim, "clip", n.in_dtypes[0])
    ctx.op("Gather", [n.inputs[1], rows], n.out, axis=0)


@exporter("take")
def take(ctx, n):
    axis = n.axis(n.p.axis)
    mode = getattr(n.p, "mode", "clip")
    rows = _indices(ctx, n.inputs[1], n.in_shapes[0][axis], mode, n.in_dtypes[1])
    ctx.op("Gather", [n.inputs[0], rows], n.out, axis=axis)


@exporter("pick")
def pick(ctx, n):
    n.require(n.p.axis is not None, "axis", "pick over the flattened input is not exported")
    axis = n.axis(n.p.axis)
    index = _indices(ctx, n.inputs[1], n.in_shapes[0][axis], getattr(n.p, "mode", "clip"),
                     n.in_dtypes[1])
    if len(n.in_shapes[1]) < n.rank:
        index = ctx.unsqueeze(index, [axis])
    picked = ctx.op("GatherElements", [n.x, index], axis=axis)
    if n.p.keepdims:
        ctx.op("Identity", [picked], n.out)
    else:
        ctx.reshape(picked, n.out_shapes[0], n.out_dyn[0], n.out)


PAD_MODES = ("constant", "edge", "reflect")


@exporter("Pad", "pad")
def pad(ctx, n):
    """MXNet's pad_width is (before0, after0, before1, after1, ...); ONNX wants all befores
    then all afters."""
    n.require(n.p.mode in PAD_MODES, "mode", f"ONNX Pad has {', '.join(PAD_MODES)}")
    width = list(n.p.pad_width)
    pads = width[0::2] + width[1::2]
    inputs = [n.x, ctx.ints(pads, "pads")]
    if n.p.mode == "constant":
        inputs.append(ctx.scalar_like(n.p.constant_value, n.dtype))
    ctx.op("Pad", inputs, n.out, mode=n.p.mode)


@exporter("Cast", "cast")
def cast(ctx, n):
    ctx.cast(n.x, n.p.dtype, n.out)


@exporter("where")
def where(ctx, n):
    cond, x, y = n.inputs
    flag = ctx.cast(cond, np.bool_)
    extra = len(n.in_shapes[1]) - len(n.in_shapes[0])
    if extra > 0:  # a 1-D condition selects whole rows
        flag = ctx.unsqueeze(flag, list(range(1, 1 + extra)))
    ctx.op("Where", [flag, x, y], n.out)


@exporter("tile")
def tile(ctx, n):
    reps = list(n.p.reps)
    x = n.x
    if len(reps) > n.rank:
        lead = len(reps) - n.rank
        x = ctx.reshape(x, (1,) * lead + tuple(n.in_shapes[0]), (False,) * lead +
                        tuple(n.in_dyn[0]))
    reps = [1] * (n.rank - len(reps)) + reps
    ctx.op("Tile", [x, ctx.ints(reps, "reps")], n.out)


@exporter("repeat")
def repeat(ctx, n):
    count = n.p.repeats
    if n.p.axis is None:
        column = ctx.reshape(n.x, (-1, 1))
        tiled = ctx.op("Tile", [column, ctx.ints([1, count], "reps")])
        ctx.reshape(tiled, (-1,), outputs=n.out)
        return
    axis = n.axis(n.p.axis)
    spread = ctx.unsqueeze(n.x, [axis + 1])
    reps = [1] * (n.rank + 1)
    reps[axis + 1] = count
    tiled = ctx.op("Tile", [spread, ctx.ints(reps, "reps")])
    ctx.reshape(tiled, n.out_shapes[0], n.out_dyn[0], n.out)


@exporter("slice_like")
def slice_like(ctx, n):
    """From 0 to the output's (inferred) sizes; a dynamic dim that keeps data's size
    slices to the end."""
    ends = []
    for out, data, flag in zip(n.out_shapes[0], n.in_shapes[0], n.out_dyn[0] or
                               (False,) * n.rank):
        if flag:
            n.require(out == data, "axes", "a dynamic dim cut to another input's size")
            ends.append(INT64_MAX)
        else:
            ends.append(out)
    ctx.op("Slice", [n.x, ctx.ints([0] * n.rank), ctx.ints(ends), ctx.ints(range(n.rank))],
           n.out)
