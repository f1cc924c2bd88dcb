"""Slices: ``slice`` (begin/end/step per axis, MXNet's rules) and ``slice_like``.

Both are strided windows of the input, so their kernels are one affine loop nest (a
negative step is a negative stride); the gradients write the head gradient back into a
zero tensor of the input's shape through the same index map.
"""

from __future__ import annotations

import ast

import numpy as np

from ..errors import OpAttributeError, ShapeError, format_shape
from .array_ops import fill, kernel_of, norm_axis
from .params import Params, param
from .registry import OpDef, ShapedLikeGrad, register


def parse_index_tuple(text: str, op: str, node: str, what: str) -> tuple:
    """MXNet's Tuple<optional<int>>: ``(0, None, -1)``, ``[1,2]``, ``None`` entries."""
    try:
        value = ast.literal_eval(str(text).strip() or "()")
    except (ValueError, SyntaxError):
        raise OpAttributeError(f"{op} node '{node}': attribute {what}={text!r} is not a tuple "
                               "of integers or None") from None
    if value is None or isinstance(value, int):
        value = (value,)
    if not isinstance(value, (tuple, list)) or any(
            v is not None and not isinstance(v, int) for v in value):
        raise OpAttributeError(f"{op} node '{node}': attribute {what}={text!r} is not a tuple "
                               "of integers or None")
    return tuple(value)


def slice_ranges(p, shape) -> list[range]:
    """One ``range`` of source indices per axis, by MXNet's rules (axes past ``begin`` are
    taken whole): a negative begin/end counts from the end, defaults depend on the step's
    sign, and anything out of range or empty is an error (MXNet does not clamp)."""
    what = (f"slice begin={p.begin}, end={p.end}, step={p.step} of input 'data' "
            f"{format_shape(shape)}")
    if len(p.begin) > len(shape):
        raise ShapeError(f"{what}: more entries than the input has axes")
    ranges = [range(n) for n in shape]
    for axis in range(len(p.begin)):
        n = shape[axis]
        step = p.step[axis] if p.step and p.step[axis] is not None else 1
        b = p.begin[axis] if p.begin[axis] is not None else (n - 1 if step < 0 else 0)
        e = p.end[axis] if p.end[axis] is not None else (-1 if step < 0 else n)
        b = b + n if b < 0 else b
        e = e + n if e < 0 and p.end[axis] is not None else e
        if not (0 <= b < n and -1 <= e <= n) or (b >= e if step > 0 else e >= b):
            raise ShapeError(f"{what}: axis {axis} of size {n} gives begin {b}, end {e}, "
                             f"step {step}, which is out of range or empty")
        ranges[axis] = range(b, e, step)
    return ranges


def window_stmts(out_shape, in_shape, starts, steps, to_window: bool):
    """Copy between a full tensor and its strided window (either direction)."""

    def stmts(L, inputs, outputs):
        from codegen.kernels.builders import affine, loop_vars, nest, strides

        src, dst = inputs[0], outputs[0]
        vars_ = loop_vars(len(out_shape))
        full = strides(in_shape)
        offset = sum(s * st for s, st in zip(starts, full))
        window_index = affine(vars_, [st * k for st, k in zip(full, steps)], offset)
        dense_index = affine(vars_, strides(out_shape))
        if to_window:
            return nest(vars_, out_shape, L.Store(dst, dense_index, L.Load(src, window_index)))
        scatter = nest(vars_, out_shape, L.Store(dst, window_index, L.Load(src, dense_index)))
        return L.Block((fill(L, dst, 0.0), scatter))

    return stmts


# ---- slice -------------------------------------------------------------------------------------
class _SliceBase(OpDef):
    params = (param("begin", "str"), param("end", "str"), param("step", "str", "()"))

    def parse(self, attrs, node_name):
        raw = super().parse(attrs, node_name)
        values = {k: parse_index_tuple(v, self.name, node_name, k) for k, v in raw.values}
        if any(s == 0 for s in values["step"]):
            raise OpAttributeError(f"{self.name} node '{node_name}': step={values['step']} "
                                   "has a zero entry")
        lengths = {len(values["begin"]), len(values["end"])} | (
            {len(values["step"])} if values["step"] else set())
        if len(lengths) != 1:
            raise OpAttributeError(f"{self.name} node '{node_name}': begin={values['begin']}, "
                                   f"end={values['end']} and step={values['step']} must have "
                                   "the same length")
        return Params(tuple(values.items()))

    def geometry(self, p, shape):
        ranges = slice_ranges(p, shape)
        return (tuple(len(r) for r in ranges), tuple(r.start for r in ranges),
                tuple(r.step for r in ranges))


def _slice_attrs(p) -> dict:
    return {"begin": str(p.begin), "end": str(p.end), "step": str(p.step)}


@register
class Slice(_SliceBase):
    """``data[begin[0]:end[0]:step[0], ...]``; None takes the default for the step's
    sign, and unlike numpy an out-of-range or empty slice is an error (as in MXNet)."""

    name = "slice"
    aliases = ("crop",)

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        return in_shapes, [None if data is None else self.geometry(p, data)[0]]

    def reference(self, p, inputs, ctx):
        data = inputs[0]
        index = tuple(slice(r.start, r.stop if r.stop >= 0 else None, r.step)
                      for r in slice_ranges(p, data.shape))
        return [np.ascontiguousarray(data[index])]

    def gradient(self, p, g):
        return [g.op("_slice_grad", g.out_grads[0], g.inputs[0], **_slice_attrs(p))]

    def lower(self, p, ctx):
        shape, starts, steps = self.geometry(p, ctx.in_shapes[0])
        ctx.kernel(kernel_of(window_stmts(shape, ctx.in_shapes[0], starts, steps, True)))


@register
class SliceGrad(ShapedLikeGrad, _SliceBase):
    """Inputs (dy, data): zeros shaped like data with dy written into the slice."""

    name = "_slice_grad"

    def reference(self, p, inputs, ctx):
        dy, data = inputs
        out = np.zeros(data.shape, dtype=dy.dtype)
        index = tuple(slice(r.start, r.stop if r.stop >= 0 else None, r.step)
                      for r in slice_ranges(p, data.shape))
        out[index] = dy
        return [out]

    def lower(self, p, ctx):
        data = ctx.in_shapes[1]
        shape, starts, steps = self.geometry(p, data)
        ctx.kernel(kernel_of(window_stmts(shape, data, starts, steps, False)))


# ---- slice_like --------------------------------------------------------------------------------
def slice_like_shape(p, data, like) -> tuple:
    """data cut down to like's sizes on ``axes`` (all axes when empty), from index 0."""
    if not p.axes:
        if len(like) != len(data):
            raise ShapeError(f"input 'shape_like' {format_shape(like)} must have as many axes "
                             f"as 'data' {format_shape(data)} when axes is empty")
        axes = range(len(data))
    else:
        axes = [norm_axis(a, len(data), "slice_like axis") for a in p.axes]
    out = list(data)
    for axis in axes:
        if axis >= len(like) or like[axis] > data[axis]:
            raise ShapeError(f"slice_like: axis {axis} of 'shape_like' {format_shape(like)} "
                             f"does not fit in 'data' {format_shape(data)}")
        out[axis] = like[axis]
    return tuple(out)


@register
class SliceLike(OpDef):
    """``data`` sliced from 0 to the sizes of ``shape_like`` on ``axes``."""

    name = "slice_like"
    arguments = ("data", "shape_like")
    params = (param("axes", "shape", ()),)

    def infer_shape(self, p, in_shapes):
        data, like = in_shapes
        if data is None or like is None:
            return in_shapes, [None]
        return in_shapes, [slice_like_shape(p, data, like)]

    def reference(self, p, inputs, ctx):
        data, like = inputs
        shape = slice_like_shape(p, data.shape, like.shape)
        return [np.ascontiguousarray(data[tuple(slice(0, d) for d in shape)])]

    def gradient(self, p, g):
        return [g.op("_slice_like_grad", g.out_grads[0], g.inputs[0]), None]

    def lower(self, p, ctx):
        data = ctx.in_shapes[0]
        shape = ctx.out_shapes[0]
        zeros, ones = (0,) * len(data), (1,) * len(data)
        ctx.kernel(kernel_of(window_stmts(shape, data, zeros, ones, True)))


@register
class SliceLikeGrad(ShapedLikeGrad):
    """Inputs (dy, data): zeros shaped like data with dy in the leading corner."""

    name = "_slice_like_grad"

    def reference(self, p, inputs, ctx):
        dy, data = inputs
        out = np.zeros(data.shape, dtype=dy.dtype)
        out[tuple(slice(0, d) for d in dy.shape)] = dy
        return [out]

    def lower(self, p, ctx):
        dy, data = ctx.in_shapes
        zeros, ones = (0,) * len(data), (1,) * len(data)
        ctx.kernel(kernel_of(window_stmts(dy, data, zeros, ones, False)))
