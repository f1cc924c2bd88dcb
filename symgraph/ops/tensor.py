"""Tensor ops the gradients are built from: dot, reductions, reshapes, add_n, zeros_like."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError, format_shape
from .params import param
from .registry import OpDef, merge_shape, register

INT64 = np.iinfo(np.int64)


def float_to_index(values) -> np.ndarray:
    """int64 indices as native code converts floats (LLVM's fptosi.sat): the integer part,
    NaN as 0, infinities and huge values saturated at int64's own bounds (exactly, so that
    ``mode='wrap'`` wraps them as native code does). numpy's own cast of NaN and inf is
    undefined, so the oracle must not use it."""
    values = np.asarray(values)
    if values.dtype.kind in "iub":
        return values.astype(np.int64)
    wide = np.nan_to_num(np.trunc(values.astype(np.float64)), nan=0.0, posinf=2.0 ** 63,
                         neginf=-(2.0 ** 63))
    fits = (wide >= -(2.0 ** 63)) & (wide < 2.0 ** 63)
    out = np.where(fits, wide, 0.0).astype(np.int64)
    return np.where(fits, out, np.where(wide > 0, INT64.max, INT64.min))


def norm_axes(axes, ndim, what="axis"):
    result = []
    for axis in axes:
        if not -ndim <= axis < ndim:
            raise ShapeError(f"{what} {axis} is out of range for {ndim} dimensions")
        result.append(axis % ndim)
    return tuple(sorted(set(result)))


@register
class AddN(OpDef):
    """Sum of any number of same-shape inputs (``ElementWiseSum``); fan-in of gradients."""

    name = "add_n"
    aliases = ("ElementWiseSum", "_sum_grads")
    variadic = True
    is_elementwise = True
    params = (param("num_args", "int"),)

    def infer_shape(self, p, in_shapes):
        shape = None
        for i, given in enumerate(in_shapes):
            shape = merge_shape(f"input 'arg{i}'", given, shape)
        return [shape] * len(in_shapes), [shape]

    def infer_shape_backward(self, p, in_shapes, out_shapes):
        return [out_shapes[0] if s is None else s for s in in_shapes]

    def formula(self, m, p, *xs):
        total = xs[0]
        for x in xs[1:]:
            total = total + x
        return total

    def reference(self, p, inputs, ctx):
        return [sum(inputs[1:], inputs[0].copy())]

    def gradient(self, p, g):
        return [g.out_grads[0]] * len(g.inputs)

    def lower(self, p, ctx):
        ctx.elementwise(lambda m, *xs: self.formula(m, p, *xs))


class _Fill(OpDef):
    value = 0.0

    def infer_shape(self, p, in_shapes):
        return in_shapes, [in_shapes[0]]

    def reference(self, p, inputs, ctx):
        return [np.full_like(inputs[0], self.value)]

    def gradient(self, p, g):
        return [None]

    def lower(self, p, ctx):
        value = self.value
        ctx.elementwise(lambda m: m.const(value), inputs=())


@register
class ZerosLike(_Fill):
    name = "zeros_like"


@register
class OnesLike(_Fill):
    name = "ones_like"
    value = 1.0


@register
class ReshapeLike(OpDef):
    """``lhs`` reshaped to the shape of ``rhs`` (same size): shape-agnostic gradients."""

    name = "reshape_like"
    arguments = ("lhs", "rhs")

    def infer_shape(self, p, in_shapes):
        lhs, rhs = in_shapes
        if lhs is not None and rhs is not None and math.prod(lhs) != math.prod(rhs):
            raise ShapeError(f"cannot reshape {format_shape(lhs)} like {format_shape(rhs)}")
        return in_shapes, [rhs]

    def reference(self, p, inputs, ctx):
        return [inputs[0].reshape(inputs[1].shape)]

    def gradient(self, p, g):
        return [g.op("reshape_like", g.out_grads[0], g.inputs[0]), None]

    def lower(self, p, ctx):
        ctx.alias()


@register
class ReduceLike(OpDef):
    """Sum ``data`` down to the shape of ``like`` over broadcast axes (broadcast gradients)."""

    name = "_reduce_like"
    arguments = ("data", "like")

    def infer_shape(self, p, in_shapes):
        return in_shapes, [in_shapes[1]]

    @staticmethod
    def reduced_axes(shape, like):
        lead = len(shape) - len(like)
        axes = list(range(lead))
        axes += [lead + i for i, d in enumerate(like) if d == 1 and shape[lead + i] != 1]
        return tuple(axes)

    def reference(self, p, inputs, ctx):
        data, like = inputs
        axes = self.reduced_axes(data.shape, like.shape)
        return [data.sum(axis=axes).reshape(like.shape) if axes else data.copy()]

    def gradient(self, p, g):
        return [g.op("broadcast_like", g.out_grads[0], g.inputs[0]), None]

    def lower(self, p, ctx):
        axes = self.reduced_axes(ctx.in_shapes[0], ctx.in_shapes[1])
        if not axes:  # the operand was not broadcast: a fusable identity, not an opaque copy
            ctx.elementwise(lambda m, x: x, inputs=(0,))
            return
        ctx.reduce("sum", axes, input=0)


@register
class BroadcastLike(OpDef):
    """``lhs`` broadcast to the shape of ``rhs``."""

    name = "broadcast_like"
    arguments = ("lhs", "rhs")

    def infer_shape(self, p, in_shapes):
        return in_shapes, [in_shapes[1]]

    def reference(self, p, inputs, ctx):
        return [np.broadcast_to(inputs[0], inputs[1].shape).copy()]

    def gradient(self, p, g):
        return [g.op("_reduce_like", g.out_grads[0], g.inputs[0]), None]

    def lower(self, p, ctx):
        ctx.elementwise(lambda m, x: x + 0.0, inputs=(0,))


#: dot's and batch_dot's parameters (MXNet gives both the same)
PRODUCT_PARAMS = (param("transpose_a", "bool", False), param("transpose_b", "bool", False),
                  param("forward_stype", "str?", None))


def product_grads(op: str, p, g) -> list:
    """Both gradients of ``op(lhs, rhs)`` for ``dot`` and ``batch_dot``: each is that same
    product of the head gradient and the other operand, its transpose flags chosen so that
    no transpose is materialized."""
    dy, lhs, rhs = g.out_grads[0], g.inputs[0], g.inputs[1]
    ta, tb = p.transpose_a, p.transpose_b
    grads = [None, None]
    if g.needs[0]:
        grads[0] = (g.op(op, rhs, dy, transpose_a=tb, transpose_b=True) if ta
                    else g.op(op, dy, rhs, transpose_b=not tb))
    if g.needs[1]:
        grads[1] = (g.op(op, dy, lhs, transpose_a=True, transpose_b=ta) if tb
                    else g.op(op, lhs, dy, transpose_a=not ta))
    return grads


@register
class Dot(OpDef):
    """Matrix product; N-D contracts lhs's last axis with rhs's first (MXNet's ``dot``)."""

    name = "dot"
    arguments = ("lhs", "rhs")
    params = PRODUCT_PARAMS

    def infer_shape(self, p, in_shapes):
        lhs, rhs = in_shapes
        if lhs is None or rhs is None:
            return in_shapes, [None]
        a = (lhs[-1],) + tuple(lhs[:-1]) if p.transpose_a else tuple(lhs)
        b = tuple(rhs[1:]) + (rhs[0],) if p.transpose_b else tuple(rhs)
        if p.transpose_a and len(lhs) == 2:
            a = (lhs[1], lhs[0])
        if p.transpose_b and len(rhs) == 2:
            b = (rhs[1], rhs[0])
        if a[-1] != b[0]:
            raise ShapeError(f"dot: lhs {format_shape(lhs)} and rhs {format_shape(rhs)} do not "
                             f"align (transpose_a={p.transpose_a}, transpose_b={p.transpose_b}):"
                             f" {a[-1]} != {b[0]}")
        return in_shapes, [tuple(a[:-1]) + tuple(b[1:])]

    def reference(self, p, inputs, ctx):
        lhs, rhs = inputs
        a = lhs.T if p.transpose_a else lhs
        b = rhs.T if p.transpose_b else rhs
        a2 = a.reshape(-1, a.shape[-1])
        b2 = b.reshape(b.shape[0], -1)
        return [(a2 @ b2).reshape(a.shape[:-1] + b.shape[1:])]

    def gradient(self, p, g):
        return product_grads("dot", p, g)

    def lower(self, p, ctx):
        ctx.matmul(a=0, b=1, trans_a=p.transpose_a, trans_b=p.transpose_b)


REDUCERS = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "prod": np.prod}


class _Reduce(OpDef):
    """MXNet reductions: axis=None reduces all (result shape (1,)), exclude inverts axes."""

    params = (param("axis", "shape?", None), param("keepdims", "bool", False),
              param("exclude", "bool", False))

    def axes(self, p, ndim):
        if p.axis is None or p.axis == ():
            return tuple(range(ndim))
        axes = norm_axes(p.axis, ndim)
        if p.exclude:
            axes = tuple(i for i in range(ndim) if i not in axes)
        return axes

    def out_shape(self, p, shape):
        axes = self.axes(p, len(shape))
        if p.keepdims:
            return tuple(1 if i in axes else d for i, d in enumerate(shape))
        kept = tuple(d for i, d in enumerate(shape) if i not in axes)
        return kept or (1,)

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        return in_shapes, [None if data is None else self.out_shape(p, data)]

    def reference(self, p, inputs, ctx):
        data = inputs[0]
        axes = self.axes(p, data.ndim)
        out = REDUCERS[self.name](data, axis=axes)
        return [np.asarray(out, dtype=data.dtype).reshape(self.out_shape(p, data.shape))]

    def lower(self, p, ctx):
        ctx.reduce(self.name, self.axes(p, len(ctx.in_shapes[0])), input=0)

    def gradient(self, p, g):
        return [g.op("_reduce_grad", g.out_grads[0], g.inputs[0], g.outputs[0], kind=self.name,
                     **_reduce_attrs(p))]


@register
class Sum(_Reduce):
    name = "sum"
    aliases = ("sum_axis",)


@register
class Mean(_Reduce):
    name = "mean"


@register
class Max(_Reduce):
    name = "max"
    aliases = ("max_axis",)


@register
class Min(_Reduce):
    name = "min"
    aliases = ("min_axis",)


def _reduce_attrs(p) -> dict:
    attrs = {"keepdims": p.keepdims, "exclude": p.exclude}
    if p.axis is not None:
        attrs["axis"] = p.axis
    return attrs


@register
class ReduceGrad(_Reduce):
    """Gradient of a reduction: dy broadcast back (divided by n for mean; routed to the
    extremum for max/min, split evenly between ties as MXNet's broadcast-equal mask does)."""

    name = "_reduce_grad"
    arguments = ("dy", "data", "out")
    differentiable = False
    params = _Reduce.params + (param("kind", "str", choices=("sum", "mean", "max", "min")),)

    def infer_shape(self, p, in_shapes):
        return in_shapes, [in_shapes[1]]

    def reference(self, p, inputs, ctx):
        dy, data, out = inputs
        axes = self.axes(p, data.ndim)
        kept = tuple(1 if i in axes else d for i, d in enumerate(data.shape))
        dyb = np.broadcast_to(dy.reshape(kept), data.shape)
        if p.kind == "sum":
            return [dyb.copy()]
        if p.kind == "mean":
            count = math.prod(data.shape[i] for i in axes)
            return [dyb / count]
        mask = (data == np.broadcast_to(out.reshape(kept), data.shape)).astype(data.dtype)
        return [dyb * mask]

    def lower(self, p, ctx):
        axes = self.axes(p, len(ctx.in_shapes[1]))
        ctx.reduce_grad(p.kind, axes)
