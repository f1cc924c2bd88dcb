"""Gathers and selections: take, pick, where (MXNet 1.x), and their private gradients.

Indices arrive as floats (MXNet's default dtype) and are truncated toward zero, then
made safe before any load: ``mode='clip'`` clamps into the axis, ``mode='wrap'`` wraps
around it (negative indices count from the end). Native code never reads outside a
buffer whatever the index values are. Indices get no gradient.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError, format_shape
from .array_ops import axis_view, fill, kernel_of, norm_axis
from .composite import CompositeOp
from .elementwise_base import ElementwiseOp
from .params import param
from .registry import OpDef, ShapedLikeGrad, merge_shape, register, require_attr
from .tensor import float_to_index

MODES = ("clip", "wrap", "raise")


def check_mode(op: str, node: str, mode: str) -> None:
    require_attr(op, node, mode != "raise", "mode='raise' is not supported; use 'clip' or "
                 "'wrap'")


def safe_index_ref(index: np.ndarray, n: int, mode: str) -> np.ndarray:
    i = float_to_index(index)
    return np.mod(i, n) if mode == "wrap" else np.clip(i, 0, n - 1)


def safe_index(L, value, n: int, mode: str):
    """Loop-IR int64 index in [0, n) from a float index value."""
    i = L.Cast(value, L.INT)
    if mode == "wrap":
        size = L.Const(n, L.INT)
        return ((i % size) + size) % size
    return L.Bin("min", L.Bin("max", i, L.Const(0, L.INT)), L.Const(n - 1, L.INT))


def index_dtype_rule(in_types, data: int, index: int):
    """Data and output share a dtype; the index keeps its own (float by default)."""
    dtype = in_types[data]
    types = list(in_types)
    types[index] = types[index] or dtype
    return types, [dtype]


def index_grad_dtype_rule(in_types):
    """(dy, index, data) of a gather's gradient: dy, data and the result share a dtype."""
    dtype = in_types[0] or in_types[2]
    return [dtype, in_types[1] or dtype, dtype], [dtype]


# ---- take ------------------------------------------------------------------------------------
class _TakeBase(OpDef):
    params = (param("axis", "int", 0), param("mode", "str", "clip", choices=MODES))

    def parse(self, attrs, node_name):
        parsed = super().parse(attrs, node_name)
        check_mode(self.name, node_name, parsed.mode)
        return parsed

    def view(self, p, a_shape, idx_shape):
        axis = norm_axis(p.axis, len(a_shape), "take axis")
        outer, n, inner = axis_view(a_shape, axis)
        return axis, outer, n, inner, math.prod(idx_shape)


@register
class Take(_TakeBase):
    """``a`` indexed along ``axis`` by every entry of ``indices``:
    ``a.shape[:axis] + indices.shape + a.shape[axis+1:]``."""

    name = "take"
    arguments = ("a", "indices")

    def infer_shape(self, p, in_shapes):
        a, idx = in_shapes
        if a is None or idx is None:
            return in_shapes, [None]
        axis = norm_axis(p.axis, len(a), "take axis")
        return in_shapes, [tuple(a[:axis]) + tuple(idx) + tuple(a[axis + 1:])]

    def infer_type(self, p, in_types):
        return index_dtype_rule(in_types, 0, 1)

    def reference(self, p, inputs, ctx):
        a, idx = inputs
        axis = norm_axis(p.axis, a.ndim)
        return [np.take(a, safe_index_ref(idx, a.shape[axis], p.mode), axis=axis)]

    def gradient(self, p, g):
        if not g.needs[0]:
            return [None, None]
        return [g.op("_take_grad", g.out_grads[0], g.inputs[1], g.inputs[0], axis=p.axis,
                     mode=p.mode), None]

    def lower(self, p, ctx):
        _, outer, n, inner, count = self.view(p, ctx.in_shapes[0], ctx.in_shapes[1])

        def stmts(L, inputs, outputs):
            a, idx = inputs
            o, i, r, row = L.Var("o"), L.Var("i"), L.Var("r"), L.Var("row")
            copy = L.Store(outputs[0], (o * count + i) * inner + r,
                           L.Load(a, (o * n + row) * inner + r))
            body = L.Let(row, safe_index(L, L.Load(idx, i), n, p.mode), L.For(r, inner, copy))
            return L.For(o, outer, L.For(i, count, body))

        ctx.kernel(kernel_of(stmts))


@register
class TakeGrad(ShapedLikeGrad, _TakeBase):
    """Inputs (dy, indices, a): zeros of a's shape with dy's rows added where they came from."""

    name = "_take_grad"
    arguments = ("dy", "indices", "a")
    shaped_like = "a"

    def infer_type(self, p, in_types):
        return index_grad_dtype_rule(in_types)

    def reference(self, p, inputs, ctx):
        dy, idx, a = inputs
        axis, outer, n, inner, count = self.view(p, a.shape, idx.shape)
        rows = safe_index_ref(idx, n, p.mode).reshape(-1)
        out = np.zeros((outer, n, inner), dtype=dy.dtype)
        np.add.at(out, (slice(None), rows), dy.reshape(outer, count, inner))
        return [out.reshape(a.shape)]

    def lower(self, p, ctx):
        _, outer, n, inner, count = self.view(p, ctx.in_shapes[2], ctx.in_shapes[1])

        def stmts(L, inputs, outputs):
            dy, idx, _ = inputs
            out = outputs[0]
            o, i, r, row = L.Var("o"), L.Var("i"), L.Var("r"), L.Var("row")
            at = (o * n + row) * inner + r
            add = L.Store(out, at, L.Load(out, at) + L.Load(dy, (o * count + i) * inner + r))
            body = L.Let(row, safe_index(L, L.Load(idx, i), n, p.mode),
                         L.For(r, inner, add, vectorize=False))
            return L.Block((fill(L, out, 0.0), L.For(o, outer, L.For(i, count, body))))

        ctx.kernel(kernel_of(stmts))


# ---- pick ------------------------------------------------------------------------------------
class _PickBase(OpDef):
    params = (param("axis", "int?", -1), param("keepdims", "bool", False),
              param("mode", "str", "clip", choices=MODES))

    def parse(self, attrs, node_name):
        parsed = super().parse(attrs, node_name)
        check_mode(self.name, node_name, parsed.mode)
        require_attr(self.name, node_name, parsed.axis is not None,
                     "axis=None (pick from the flattened input) is not supported")
        return parsed

    def index_shape(self, p, data):
        axis = norm_axis(p.axis, len(data), f"{self.name} axis")
        if p.keepdims:
            return tuple(data[:axis]) + (1,) + tuple(data[axis + 1:])
        return tuple(data[:axis]) + tuple(data[axis + 1:]) or (1,)


@register
class Pick(_PickBase):
    """One element per position along ``axis``: ``out[..] = data[.., index[..], ..]``."""

    name = "pick"
    arguments = ("data", "index")

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        if data is None:
            return in_shapes, [None]
        shape = self.index_shape(p, data)
        in_shapes[1] = merge_shape("input 'index'", in_shapes[1], shape)
        return in_shapes, [shape]

    def infer_type(self, p, in_types):
        return index_dtype_rule(in_types, 0, 1)

    def reference(self, p, inputs, ctx):
        data, index = inputs
        axis = norm_axis(p.axis, data.ndim)
        outer, n, inner = axis_view(data.shape, axis)
        rows = safe_index_ref(index, n, p.mode).reshape(outer, 1, inner)
        picked = np.take_along_axis(data.reshape(outer, n, inner), rows, axis=1)
        return [picked.reshape(self.index_shape(p, data.shape))]

    def gradient(self, p, g):
        if not g.needs[0]:
            return [None, None]
        return [g.op("_pick_grad", g.out_grads[0], g.inputs[1], g.inputs[0], axis=p.axis,
                     keepdims=p.keepdims, mode=p.mode), None]

    def lower(self, p, ctx):
        axis = norm_axis(p.axis, len(ctx.in_shapes[0]))
        outer, n, inner = axis_view(ctx.in_shapes[0], axis)

        def stmts(L, inputs, outputs):
            data, index = inputs
            o, r = L.Var("o"), L.Var("r")
            row = safe_index(L, L.Load(index, o * inner + r), n, p.mode)
            load = L.Load(data, (o * n + row) * inner + r)
            return L.For(o, outer, L.For(r, inner, L.Store(outputs[0], o * inner + r, load)))

        ctx.kernel(kernel_of(stmts))


@register
class PickGrad(ShapedLikeGrad, _PickBase):
    """Inputs (dy, index, data): zeros of data's shape, dy written at the picked places."""

    name = "_pick_grad"
    arguments = ("dy", "index", "data")

    def infer_type(self, p, in_types):
        return index_grad_dtype_rule(in_types)

    def reference(self, p, inputs, ctx):
        dy, index, data = inputs
        axis = norm_axis(p.axis, data.ndim)
        outer, n, inner = axis_view(data.shape, axis)
        rows = safe_index_ref(index, n, p.mode).reshape(outer, 1, inner)
        out = np.zeros((outer, n, inner), dtype=dy.dtype)
        np.put_along_axis(out, rows, dy.reshape(outer, 1, inner), axis=1)
        return [out.reshape(data.shape)]

    def lower(self, p, ctx):
        axis = norm_axis(p.axis, len(ctx.in_shapes[2]))
        outer, n, inner = axis_view(ctx.in_shapes[2], axis)

        def stmts(L, inputs, outputs):
            dy, index, _ = inputs
            out = outputs[0]
            o, r = L.Var("o"), L.Var("r")
            row = safe_index(L, L.Load(index, o * inner + r), n, p.mode)
            put = L.Store(out, (o * n + row) * inner + r, L.Load(dy, o * inner + r))
            scatter = L.For(o, outer, L.For(r, inner, put, vectorize=False))
            return L.Block((fill(L, out, 0.0), scatter))

        ctx.kernel(kernel_of(stmts))


# ---- where -----------------------------------------------------------------------------------
def where_cond_shape(cond, x):
    """The condition as it broadcasts against x: x's shape, or (N,) selecting rows."""
    if tuple(cond) == tuple(x):
        return tuple(cond)
    if len(cond) == 1 and len(x) >= 1 and cond[0] == x[0]:
        return (cond[0],) + (1,) * (len(x) - 1)
    raise ShapeError(f"input 'condition' {format_shape(cond)} must have the shape of 'x' "
                     f"{format_shape(x)} or be 1-D of size {x[0] if x else '?'}")


@register
class Where(CompositeOp):
    """``x`` where ``condition`` is non-zero, else ``y``; a 1-D condition picks whole rows.
    x and y get the head gradient where they were chosen; the condition gets none."""

    name = "where"
    arguments = ("condition", "x", "y")

    def infer_shape(self, p, in_shapes):
        cond, x, y = in_shapes
        shape = merge_shape("input 'y'", y, x)
        in_shapes[1] = in_shapes[2] = shape
        if cond is not None and shape is not None:
            where_cond_shape(cond, shape)
        if cond is None and shape is not None:
            in_shapes[0] = shape
        return in_shapes, [shape]

    def infer_type(self, p, in_types):
        cond, x, y = in_types
        dtype = x or y
        return [cond or dtype, dtype, dtype], [dtype]

    def reference(self, p, inputs, ctx):
        cond, x, y = inputs
        mask = cond.reshape(where_cond_shape(cond.shape, x.shape)) != 0
        return [np.where(mask, x, y).astype(x.dtype)]

    def decompose(self, p, b):
        cond, x, y = b.inputs
        return [b.op("_select", b.op("_where_cond", cond, x), x, y)]


@register
class WhereCond(OpDef):
    """The condition viewed so it broadcasts against x (a pure view)."""

    name = "_where_cond"
    arguments = ("condition", "x")

    def infer_shape(self, p, in_shapes):
        cond, x = in_shapes
        if cond is None or x is None:
            return in_shapes, [None]
        return in_shapes, [where_cond_shape(cond, x)]

    def infer_type(self, p, in_types):
        return in_types, [in_types[0]]

    def reference(self, p, inputs, ctx):
        return [inputs[0].reshape(where_cond_shape(inputs[0].shape, inputs[1].shape))]

    def gradient(self, p, g):
        return [g.op("reshape_like", g.out_grads[0], g.inputs[0]), None]

    def lower(self, p, ctx):
        ctx.alias()


@register
class Select(ElementwiseOp):
    """``select(condition != 0, x, y)`` with numpy broadcasting (where's primitive)."""

    name = "_select"
    arguments = ("condition", "x", "y")
    broadcast = True

    def infer_type(self, p, in_types):
        return Where.infer_type(self, p, in_types)

    def formula(self, m, p, cond, x, y):
        return m.select(m.ne(cond, 0.0), x, y)

    def derivatives(self, m, p, xs, y, dy):
        chosen = m.ne(xs[0], 0.0)
        zero = m.const(0.0)
        return [dy * zero, m.select(chosen, dy, zero), m.select(chosen, zero, dy)]
