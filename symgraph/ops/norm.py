"""Normalization layers: LayerNorm, InstanceNorm, L2Normalization and LRN (MXNet 1.x).

All four are composite: each decomposes into reductions and broadcast elementwise ops,
so fusion treats them like any other chain and their gradients come from the
decomposition. Two small primitives make that possible without knowing shapes when
decomposing: ``_axis_view`` (a per-channel vector viewed so it broadcasts along one
axis) and ``_channel_window_sum`` (LRN's sum over neighbouring channels).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError, format_shape
from .array_ops import fill, kernel_of, norm_axis
from .composite import CompositeOp
from .params import param
from .registry import OpDef, merge_shape, register, require_attr


def vector_along(data_shape, axis: int, what: str, given):
    """The (C,) shape of a per-channel input for ``data``, merged with what is known."""
    axis = norm_axis(axis, len(data_shape), "axis")
    return merge_shape(f"input '{what}'", given, (data_shape[axis],))


def axis_shape(ndim: int, axis: int, size: int) -> tuple:
    shape = [1] * ndim
    shape[axis] = size
    return tuple(shape)


def window_sum_ref(data, before: int, after: int):
    channels = data.shape[1]
    out = np.zeros_like(data)
    for c in range(channels):
        lo, hi = max(0, c - before), min(channels, c + after + 1)
        out[:, c] = data[:, lo:hi].sum(axis=1)
    return out


# ---- primitives ------------------------------------------------------------------------------
@register
class AxisView(OpDef):
    """``vec`` (C,) viewed as (1, .., C, .., 1) with C at ``axis`` of ``like``: a pure view."""

    name = "_axis_view"
    arguments = ("vec", "like")
    params = (param("axis", "int"),)

    def infer_shape(self, p, in_shapes):
        vec, like = in_shapes
        if like is None:
            return in_shapes, [None]
        axis = norm_axis(p.axis, len(like), "axis")
        in_shapes[0] = merge_shape("input 'vec'", vec, (like[axis],))
        return in_shapes, [axis_shape(len(like), axis, like[axis])]

    def reference(self, p, inputs, ctx):
        vec, like = inputs
        axis = norm_axis(p.axis, like.ndim)
        return [vec.reshape(axis_shape(like.ndim, axis, vec.size))]

    def gradient(self, p, g):
        return [g.op("reshape_like", g.out_grads[0], g.inputs[0]), None]

    def lower(self, p, ctx):
        ctx.alias()


@register
class ChannelWindowSum(OpDef):
    """``out[n, c, ...] = sum of data[n, j, ...] for j in [c - before, c + after]`` (clipped
    to the channels); its adjoint is the same sum with ``before`` and ``after`` swapped."""

    name = "_channel_window_sum"
    params = (param("before", "int"), param("after", "int"))

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        if data is not None and len(data) < 2:
            raise ShapeError(f"input 'data' {format_shape(data)} needs a channel axis (>= 2-D)")
        return in_shapes, [data]

    def reference(self, p, inputs, ctx):
        return [window_sum_ref(inputs[0], p.before, p.after)]

    def gradient(self, p, g):
        return [g.op("_channel_window_sum", g.out_grads[0], before=p.after, after=p.before)]

    def lower(self, p, ctx):
        shape = ctx.in_shapes[0]
        batch, channels, inner = shape[0], shape[1], math.prod(shape[2:])

        def stmts(L, inputs, outputs):
            src, out = inputs[0], outputs[0]
            n, c, r = L.Var("n"), L.Var("c"), L.Var("r")
            nests = [fill(L, out, 0.0)]
            for shift in range(-p.before, p.after + 1):
                lo, hi = max(0, -shift), min(channels, channels - shift)
                if lo >= hi:
                    continue
                cc = c + lo
                dst = (n * channels + cc) * inner + r
                read = (n * channels + cc + shift) * inner + r
                add = L.Store(out, dst, L.Load(out, dst) + L.Load(src, read))
                nests.append(L.For(n, batch, L.For(c, hi - lo, L.For(r, inner, add))))
            return L.Block(tuple(nests))

        ctx.kernel(kernel_of(stmts))


# ---- shared decomposition pieces -------------------------------------------------------------
def normalize(b, x, axes: dict, eps: float):
    """(x - mean) / sqrt(var + eps) over ``axes`` (reduction attrs): returns (y, mean, var,
    std), the statistics with kept dims."""
    mean = b.op("mean", x, keepdims=True, **axes)
    centered = b.op("broadcast_sub", x, mean)
    var = b.op("mean", b.op("square", centered), keepdims=True, **axes)
    std = b.op("sqrt", b.op("_plus_scalar", var, scalar=eps))
    return b.op("broadcast_div", centered, std), mean, var, std


def scale_shift(b, y, gamma, beta, like, axis: int):
    g = b.op("_axis_view", gamma, like, axis=axis)
    s = b.op("_axis_view", beta, like, axis=axis)
    return b.op("broadcast_add", b.op("broadcast_mul", y, g), s)


def normalize_ref(x, axes: tuple, eps: float):
    mean = x.mean(axis=axes, keepdims=True)
    var = np.square(x - mean).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps), mean, var


# ---- LayerNorm ---------------------------------------------------------------------------------
@register
class LayerNorm(CompositeOp):
    """Normalize over ``axis`` per position, then scale and shift by gamma/beta (C,).

    Outputs output, mean and std (= sqrt(var + eps)), the statistics with ``axis`` kept
    as 1; mean and std are visible only with ``output_mean_var``.
    """

    name = "LayerNorm"
    hint = "layernorm"
    arguments = ("data", "gamma", "beta")
    params = (param("axis", "int", -1), param("eps", "float", 1e-5),
              param("output_mean_var", "bool", False))
    hidden_outputs = ("mean", "std")

    def num_visible_outputs(self, p):
        return 3 if p.output_mean_var else 1

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        if data is None:
            return in_shapes, [None] * 3
        in_shapes[1] = vector_along(data, p.axis, "gamma", in_shapes[1])
        in_shapes[2] = vector_along(data, p.axis, "beta", in_shapes[2])
        axis = norm_axis(p.axis, len(data))
        stat = tuple(1 if i == axis else d for i, d in enumerate(data))
        return in_shapes, [tuple(data), stat, stat]

    def reference(self, p, inputs, ctx):
        x, gamma, beta = inputs
        axis = norm_axis(p.axis, x.ndim)
        y, mean, var = normalize_ref(x, (axis,), p.eps)
        shape = axis_shape(x.ndim, axis, x.shape[axis])
        out = y * gamma.reshape(shape) + beta.reshape(shape)
        return [a.astype(x.dtype) for a in (out, mean, np.sqrt(var + p.eps))]

    def decompose(self, p, b):
        x, gamma, beta = b.inputs
        y, mean, _, std = normalize(b, x, {"axis": (p.axis,)}, p.eps)
        return [scale_shift(b, y, gamma, beta, x, p.axis), mean, std]


# ---- InstanceNorm ------------------------------------------------------------------------------
@register
class InstanceNorm(CompositeOp):
    """Normalize each (sample, channel) over the spatial axes, scale/shift per channel.

    Hidden outputs mean and var have shape (N, C).
    """

    name = "InstanceNorm"
    hint = "instancenorm"
    arguments = ("data", "gamma", "beta")
    params = (param("eps", "float", 1e-3),)
    hidden_outputs = ("mean", "var")

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        if data is None:
            return in_shapes, [None] * 3
        if len(data) < 3:
            raise ShapeError(f"input 'data' {format_shape(data)} must be at least 3-D "
                             "(batch, channel, spatial...)")
        in_shapes[1] = vector_along(data, 1, "gamma", in_shapes[1])
        in_shapes[2] = vector_along(data, 1, "beta", in_shapes[2])
        return in_shapes, [tuple(data), tuple(data[:2]), tuple(data[:2])]

    def reference(self, p, inputs, ctx):
        x, gamma, beta = inputs
        axes = tuple(range(2, x.ndim))
        y, mean, var = normalize_ref(x, axes, p.eps)
        shape = axis_shape(x.ndim, 1, x.shape[1])
        out = y * gamma.reshape(shape) + beta.reshape(shape)
        return [a.astype(x.dtype) for a in (out, mean.reshape(x.shape[:2]),
                                            var.reshape(x.shape[:2]))]

    def decompose(self, p, b):
        x, gamma, beta = b.inputs
        spatial = {"axis": (0, 1), "exclude": True}
        y, _, _, _ = normalize(b, x, spatial, p.eps)
        mean = b.op("mean", x, **spatial)
        centered = b.op("broadcast_sub", x, b.op("mean", x, keepdims=True, **spatial))
        var = b.op("mean", b.op("square", centered), **spatial)
        return [scale_shift(b, y, gamma, beta, x, 1), mean, var]


# ---- L2Normalization ---------------------------------------------------------------------------
L2_MODES = ("instance", "channel", "spatial")


def l2_axes(mode: str) -> dict:
    """Reduction attrs of each mode: all but the batch axis, the channel axis, or the
    spatial axes (all but batch and channel)."""
    return {"instance": {"axis": (0,), "exclude": True}, "channel": {"axis": (1,)},
            "spatial": {"axis": (0, 1), "exclude": True}}[mode]


def l2_norm_shape(mode: str, data) -> tuple:
    """MXNet's hidden ``norm`` output: (N,), data with axis 1 set to 1, or (N, C)."""
    if mode == "instance":
        return (data[0],)
    if mode == "channel":
        return (data[0], 1) + tuple(data[2:])
    return tuple(data[:2])


def l2_reduced(mode: str, ndim: int) -> tuple:
    return {"instance": tuple(range(1, ndim)), "channel": (1,),
            "spatial": tuple(range(2, ndim))}[mode]


@register
class L2Normalization(CompositeOp):
    """``x / sqrt(sum(x^2) + eps)`` per sample (instance), per position across channels
    (channel) or per (sample, channel) over space (spatial); channel and spatial need 3-D
    data or more. Hidden output: the norm."""

    name = "L2Normalization"
    hint = "l2normalization"
    params = (param("eps", "float", 1e-10), param("mode", "str", "instance", choices=L2_MODES))
    hidden_outputs = ("norm",)

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        if data is None:
            return in_shapes, [None, None]
        least = 2 if p.mode == "instance" else 3
        if len(data) < least:
            raise ShapeError(f"input 'data' {format_shape(data)} must be at least {least}-D "
                             f"for mode={p.mode}")
        return in_shapes, [tuple(data), l2_norm_shape(p.mode, tuple(data))]

    def reference(self, p, inputs, ctx):
        x = inputs[0]
        axes = l2_reduced(p.mode, x.ndim)
        norm = np.sqrt(np.square(x).sum(axis=axes, keepdims=True) + p.eps)
        return [(x / norm).astype(x.dtype),
                norm.reshape(l2_norm_shape(p.mode, x.shape)).astype(x.dtype)]

    def decompose(self, p, b):
        x = b.inputs[0]
        axes = l2_axes(p.mode)
        squares = b.op("square", x)
        total = b.op("sum", squares, keepdims=True, **axes)
        norm = b.op("sqrt", b.op("_plus_scalar", total, scalar=p.eps))
        if p.mode == "channel":  # MXNet's norm keeps the channel axis as 1
            return [b.op("broadcast_div", x, norm), norm]
        flat = b.op("sqrt", b.op("_plus_scalar", b.op("sum", squares, **axes), scalar=p.eps))
        return [b.op("broadcast_div", x, norm), flat]


# ---- LRN -----------------------------------------------------------------------------------------
@register
class LRN(CompositeOp):
    """Local response normalization across channels:
    ``x * (knorm + alpha / nsize * sum of x^2 over nsize channels) ^ -beta``.

    The window of channel c is ``[c - nsize//2, c + nsize//2]`` clipped to the channels
    (mshadow's channel pooling; MXNet accepts only odd nsize and 4-D data). Hidden output
    ``tmp_norm`` is the base of the power.
    """

    name = "LRN"
    hint = "lrn"
    params = (param("alpha", "float", 1e-4), param("beta", "float", 0.75),
              param("knorm", "float", 2.0), param("nsize", "int"))
    hidden_outputs = ("tmp_norm",)

    def parse(self, attrs, node_name):
        parsed = super().parse(attrs, node_name)
        require_attr(self.name, node_name, parsed.nsize >= 1 and parsed.nsize % 2 == 1,
                     f"nsize must be odd and >= 1 (as MXNet requires), got {parsed.nsize}")
        return parsed

    def window(self, p):
        before = p.nsize // 2
        return before, p.nsize - 1 - before

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        if data is not None and len(data) != 4:
            raise ShapeError(f"input 'data' {format_shape(data)} must be 4-D (batch, channel, "
                             "height, width)")
        return in_shapes, [data, data]

    def reference(self, p, inputs, ctx):
        x = inputs[0]
        before, after = self.window(p)
        sums = window_sum_ref(np.square(x), before, after)
        norm = p.knorm + p.alpha / p.nsize * sums
        return [(x * norm ** -p.beta).astype(x.dtype), norm.astype(x.dtype)]

    def decompose(self, p, b):
        x = b.inputs[0]
        before, after = self.window(p)
        sums = b.op("_channel_window_sum", b.op("square", x), before=before, after=after)
        norm = b.op("_plus_scalar", b.op("_mul_scalar", sums, scalar=p.alpha / p.nsize),
                    scalar=p.knorm)
        return [b.op("elemwise_mul", x, b.op("_power_scalar", norm, scalar=-p.beta)), norm]
