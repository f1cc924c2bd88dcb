"""Ops that copy data into a bigger tensor: tile, repeat and stack (MXNet 1.x, numpy's
rules). The gradients sum the copies back (tile, repeat) or split them (stack)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError, format_shape
from .array_ops import axis_view, concat_stmts, fill, kernel_of, norm_axis
from .params import param
from .registry import OpDef, ShapedLikeGrad, merge_shape, register, require_attr


# ---- tile ----------------------------------------------------------------------------------------
def tile_geometry(shape, reps) -> tuple[tuple, tuple]:
    """(data shape padded with leading 1s, reps padded with leading 1s), numpy's rule."""
    ndim = max(len(shape), len(reps))
    return ((1,) * (ndim - len(shape)) + tuple(shape), (1,) * (ndim - len(reps)) + tuple(reps))


def tile_stmts(shape, reps, gather: bool):
    """Loops over (rep, dim) pairs per axis: out[.., r*d + i, ..] <-> in[.., i, ..]."""

    def stmts(L, inputs, outputs):
        from codegen.kernels.builders import strides

        src, dst = inputs[0], outputs[0]
        big = strides(tuple(r * d for r, d in zip(reps, shape)))
        small = strides(shape)
        rv = [L.Var(f"r{k}") for k in range(len(shape))]
        iv = [L.Var(f"i{k}") for k in range(len(shape))]
        tiled = L.Const(0, L.INT)
        plain = L.Const(0, L.INT)
        for k, (d, st_big, st_small) in enumerate(zip(shape, big, small)):
            tiled = tiled + (rv[k] * d + iv[k]) * st_big
            plain = plain + iv[k] * st_small
        if gather:
            body = L.Store(dst, tiled, L.Load(src, plain))
        else:
            body = L.Store(dst, plain, L.Load(dst, plain) + L.Load(src, tiled))
        for k in reversed(range(len(shape))):
            body = L.For(iv[k], shape[k], body)
        for k in reversed(range(len(shape))):
            body = L.For(rv[k], reps[k], body)
        if gather:
            return body
        return L.Block((fill(L, dst, 0.0), body))

    return stmts


class _TileBase(OpDef):
    params = (param("reps", "shape"),)

    def parse(self, attrs, node_name):
        parsed = super().parse(attrs, node_name)
        require_attr(self.name, node_name, len(parsed.reps) >= 1 and min(parsed.reps) >= 1,
                     f"reps={parsed.reps} must be a non-empty tuple of positive integers")
        return parsed


@register
class Tile(_TileBase):
    """``data`` repeated ``reps[k]`` times along each axis (numpy.tile)."""

    name = "tile"

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        if data is None:
            return in_shapes, [None]
        shape, reps = tile_geometry(data, p.reps)
        return in_shapes, [tuple(d * r for d, r in zip(shape, reps))]

    def reference(self, p, inputs, ctx):
        return [np.tile(inputs[0], p.reps)]

    def gradient(self, p, g):
        return [g.op("_tile_grad", g.out_grads[0], g.inputs[0], reps=p.reps)]

    def lower(self, p, ctx):
        shape, reps = tile_geometry(ctx.in_shapes[0], p.reps)
        ctx.kernel(kernel_of(tile_stmts(shape, reps, True)))


@register
class TileGrad(ShapedLikeGrad, _TileBase):
    """Inputs (dy, data): the sum of dy's tiles, shaped like data."""

    name = "_tile_grad"

    def reference(self, p, inputs, ctx):
        dy, data = inputs
        shape, reps = tile_geometry(data.shape, p.reps)
        split = dy.reshape([v for pair in zip(reps, shape) for v in pair])
        summed = split.sum(axis=tuple(range(0, 2 * len(shape), 2)))
        return [summed.reshape(data.shape)]

    def lower(self, p, ctx):
        shape, reps = tile_geometry(ctx.in_shapes[1], p.reps)

        def stmts(L, inputs, outputs):
            return tile_stmts(shape, reps, False)(L, inputs[:1], outputs)

        ctx.kernel(kernel_of(stmts))


# ---- repeat ------------------------------------------------------------------------------------
class _RepeatBase(OpDef):
    params = (param("repeats", "int"), param("axis", "int?", None))

    def parse(self, attrs, node_name):
        parsed = super().parse(attrs, node_name)
        require_attr(self.name, node_name, parsed.repeats >= 1,
                     f"repeats={parsed.repeats} must be >= 1")
        return parsed

    def view(self, p, shape):
        """(outer, n, inner) around the repeated axis (the flattened input for axis=None)."""
        if p.axis is None:
            return 1, math.prod(shape), 1
        return axis_view(shape, norm_axis(p.axis, len(shape), "repeat axis"))


@register
class Repeat(_RepeatBase):
    """Each element repeated ``repeats`` times along ``axis`` (numpy.repeat); axis=None
    repeats the flattened input."""

    name = "repeat"

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        if data is None:
            return in_shapes, [None]
        if p.axis is None:
            return in_shapes, [(math.prod(data) * p.repeats,)]
        axis = norm_axis(p.axis, len(data), "repeat axis")
        return in_shapes, [data[:axis] + (data[axis] * p.repeats,) + data[axis + 1:]]

    def reference(self, p, inputs, ctx):
        return [np.repeat(inputs[0], p.repeats, axis=p.axis)]

    def gradient(self, p, g):
        return [g.op("_repeat_grad", g.out_grads[0], g.inputs[0], repeats=p.repeats,
                     axis=p.axis)]

    def lower(self, p, ctx):
        outer, n, inner = self.view(p, ctx.in_shapes[0])
        rep = p.repeats

        def stmts(L, inputs, outputs):
            o, j, t, r = L.Var("o"), L.Var("j"), L.Var("t"), L.Var("r")
            dst = ((o * n + j) * rep + t) * inner + r
            copy = L.Store(outputs[0], dst, L.Load(inputs[0], (o * n + j) * inner + r))
            return L.For(o, outer, L.For(j, n, L.For(t, rep, L.For(r, inner, copy))))

        ctx.kernel(kernel_of(stmts))


@register
class RepeatGrad(ShapedLikeGrad, _RepeatBase):
    """Inputs (dy, data): each element's ``repeats`` copies in dy summed, shaped like data."""

    name = "_repeat_grad"

    def reference(self, p, inputs, ctx):
        dy, data = inputs
        outer, n, inner = self.view(p, data.shape)
        return [dy.reshape(outer, n, p.repeats, inner).sum(axis=2).reshape(data.shape)]

    def lower(self, p, ctx):
        outer, n, inner = self.view(p, ctx.in_shapes[1])
        rep = p.repeats

        def stmts(L, inputs, outputs):
            o, j, t, r = L.Var("o"), L.Var("j"), L.Var("t"), L.Var("r")
            acc = L.Var("acc", outputs[0].dtype)
            read = L.Load(inputs[0], ((o * n + j) * rep + t) * inner + r)
            total = L.Reduce(acc, "sum", t, rep, read,
                             L.Store(outputs[0], (o * n + j) * inner + r, acc))
            return L.For(o, outer, L.For(j, n, L.For(r, inner, total)))

        ctx.kernel(kernel_of(stmts))


# ---- stack -------------------------------------------------------------------------------------
def stack_shape(shapes, axis: int, names) -> tuple | None:
    if any(s is None for s in shapes):
        return None
    first = tuple(shapes[0])
    for name, shape in zip(names, shapes):
        if tuple(shape) != first:
            raise ShapeError(f"input '{name}' has shape {format_shape(shape)}, expected "
                             f"{format_shape(first)} (stack needs equal shapes)")
    axis = norm_axis(axis, len(first) + 1, "stack axis")
    return first[:axis] + (len(shapes),) + first[axis:]


@register
class Stack(OpDef):
    """Join equal-shape inputs along a new ``axis``; the gradient splits the head gradient
    (SliceChannel with squeeze_axis)."""

    name = "stack"
    variadic = True
    params = (param("num_args", "int"), param("axis", "int", 0))

    def parse(self, attrs, node_name):
        parsed = super().parse(attrs, node_name)
        require_attr(self.name, node_name, parsed.num_args >= 1,
                     f"num_args must be >= 1, got {parsed.num_args}")
        return parsed

    def infer_shape(self, p, in_shapes):
        out = stack_shape(in_shapes, p.axis, self.input_names(p))
        if out is not None:
            return in_shapes, [out]
        known = next((s for s in in_shapes if s is not None), None)
        names = self.input_names(p)
        shapes = [merge_shape(f"input '{n}'", s, known) for n, s in zip(names, in_shapes)]
        return shapes, [stack_shape(shapes, p.axis, names)]

    def reference(self, p, inputs, ctx):
        return [np.stack(inputs, axis=p.axis)]

    def gradient(self, p, g):
        parts = g.op_multi("SliceChannel", g.out_grads[0], num_outputs=len(g.inputs),
                           axis=p.axis, squeeze_axis=True)
        return [part if need else None for part, need in zip(parts, g.needs)]

    def lower(self, p, ctx):
        out = ctx.out_shapes[0]
        axis = norm_axis(p.axis, len(out))
        part = out[:axis] + (1,) + out[axis + 1:]
        ctx.kernel(kernel_of(concat_stmts([part] * len(ctx.in_shapes), out, axis, True)))
