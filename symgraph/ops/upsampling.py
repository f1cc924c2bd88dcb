"""UpSampling (MXNet 1.x): nearest neighbour (any number of inputs, joined by channel
concat or sum) and bilinear (a depthwise Deconvolution with a learnable weight).

UpSampling is composite: bilinear decomposes into exactly the Deconvolution MXNet runs
(kernel ``2s - s % 2``, stride ``s``, pad ``ceil((s - 1) / 2)``, one group per channel,
no bias), nearest into one ``_upsample_nearest`` per input (each input grows to the
first input's size times ``scale``) followed by Concat or add_n.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError, format_shape
from .array_ops import kernel_of
from .composite import CompositeOp
from .conv import Window2D, require_nchw
from .deconv import deconv_ref
from .params import param
from .registry import OpDef, ShapedLikeGrad, merge_shape, register, require_attr


def scale_hw(scale: tuple) -> tuple[int, int]:
    """MXNet's scale: one int for both axes, (h, w), or an NCHW 4-tuple."""
    if len(scale) == 1:
        return (scale[0], scale[0])
    return tuple(scale[-2:])


def bilinear_window(scale: int) -> Window2D:
    kernel = 2 * scale - scale % 2
    pad = math.ceil((scale - 1) / 2)
    return Window2D((kernel, kernel), (scale, scale), (pad, pad), (1, 1))


def nearest_factors(data, target) -> tuple[int, int]:
    """Integer growth of data's (H, W) to target's (OH, OW), or a ShapeError."""
    require_nchw("data", data)
    factors = tuple(t // d for d, t in zip(data[2:], target))
    if any(t % d for d, t in zip(data[2:], target)) or min(factors) < 1:
        raise ShapeError(f"input {format_shape(data)} cannot be upsampled to {tuple(target)} "
                         "by an integer factor")
    return factors


def nearest_ref(x, factors):
    return np.repeat(np.repeat(x, factors[0], axis=2), factors[1], axis=3)


@register
class UpSampling(CompositeOp):
    name = "UpSampling"
    hint = "upsampling"
    params = (param("scale", "shape"), param("num_filter", "int", 0),
              param("sample_type", "str", choices=("nearest", "bilinear")),
              param("multi_input_mode", "str", "concat", choices=("concat", "sum")),
              param("num_args", "int", 1), param("workspace", "int", 512))

    def parse(self, attrs, node_name):
        parsed = super().parse(attrs, node_name)
        require_attr(self.name, node_name, len(parsed.scale) in (1, 2, 4) and min(
            parsed.scale) >= 1, f"scale={parsed.scale} must be a positive int, (h, w) or 4 ints")
        if parsed.sample_type == "nearest":
            require_attr(self.name, node_name, parsed.num_args >= 1,
                         f"num_args must be >= 1, got {parsed.num_args}")
        else:
            require_attr(self.name, node_name, parsed.num_filter >= 1,
                         "bilinear upsampling needs num_filter = the number of channels")
            sh, sw = scale_hw(parsed.scale)
            require_attr(self.name, node_name, sh == sw,
                         f"bilinear upsampling needs one scale for both axes, got {parsed.scale}")
        return parsed

    def input_var_attrs(self, p):
        """An auto-created bilinear weight starts as a bilinear kernel (MXNet does this)."""
        return {1: {"__init__": '["bilinear", {}]'}} if p.sample_type == "bilinear" else {}

    def input_names(self, p):
        if p.sample_type == "bilinear":
            return ["data", "weight"]
        return [f"arg{i}" for i in range(p.num_args)]

    def infer_shape(self, p, in_shapes):
        first = in_shapes[0]
        if first is None:
            return in_shapes, [None]
        require_nchw(self.input_names(p)[0], first)
        sh, sw = scale_hw(p.scale)
        target = (first[2] * sh, first[3] * sw)
        if p.sample_type == "bilinear":
            if first[1] != p.num_filter:
                raise ShapeError(f"input 'data' {format_shape(first)} has {first[1]} channels; "
                                 f"bilinear upsampling needs num_filter={p.num_filter} to match")
            kernel = bilinear_window(sh).kernel
            in_shapes[1] = merge_shape("input 'weight'", in_shapes[1], (first[1], 1) + kernel)
            return in_shapes, [(first[0], first[1]) + target]
        if any(s is None for s in in_shapes):
            return in_shapes, [None]
        channels = 0
        for name, shape in zip(self.input_names(p), in_shapes):
            nearest_factors(shape, target)
            if shape[0] != first[0]:
                raise ShapeError(f"input '{name}' {format_shape(shape)} has another batch size "
                                 f"than 'arg0' {format_shape(first)}")
            if p.multi_input_mode == "sum" and shape[1] != first[1]:
                raise ShapeError(f"input '{name}' {format_shape(shape)}: multi_input_mode=sum "
                                 f"needs {first[1]} channels like 'arg0'")
            channels += shape[1]
        if p.multi_input_mode == "sum":
            channels = first[1]
        return in_shapes, [(first[0], channels) + target]

    def reference(self, p, inputs, ctx):
        first = inputs[0]
        sh, sw = scale_hw(p.scale)
        target = (first.shape[2] * sh, first.shape[3] * sw)
        if p.sample_type == "bilinear":
            win = bilinear_window(sh)
            return [deconv_ref(first, inputs[1], None, win, target, p.num_filter)]
        parts = [nearest_ref(x, nearest_factors(x.shape, target)) for x in inputs]
        joined = sum(parts[1:], parts[0]) if p.multi_input_mode == "sum" else np.concatenate(
            parts, axis=1)
        return [np.ascontiguousarray(joined, dtype=first.dtype)]

    def decompose(self, p, b):
        if p.sample_type == "bilinear":
            win = bilinear_window(scale_hw(p.scale)[0])
            return [b.op("Deconvolution", *b.inputs, kernel=win.kernel, stride=win.stride,
                         pad=win.pad, num_filter=p.num_filter, num_group=p.num_filter,
                         no_bias=True)]
        first = b.inputs[0]
        parts = [b.op("_upsample_nearest", x, first, scale=p.scale) for x in b.inputs]
        if len(parts) == 1:
            return parts
        if p.multi_input_mode == "sum":
            return [b.op("add_n", *parts, num_args=len(parts))]
        return [b.op("Concat", *parts, num_args=len(parts), dim=1)]


class _NearestBase(OpDef):
    params = (param("scale", "shape"),)

    @staticmethod
    def geometry(data, like, scale):
        require_nchw("like", like)
        sh, sw = scale_hw(scale)
        target = (like[2] * sh, like[3] * sw)
        return nearest_factors(data, target), target


@register
class UpsampleNearest(_NearestBase):
    """``data`` repeated to (like's H, W) * scale: each pixel becomes an fh x fw block."""

    name = "_upsample_nearest"
    arguments = ("data", "like")

    def infer_shape(self, p, in_shapes):
        data, like = in_shapes
        if data is None or like is None:
            return in_shapes, [None]
        _, target = self.geometry(data, like, p.scale)
        return in_shapes, [tuple(data[:2]) + target]

    def reference(self, p, inputs, ctx):
        data, like = inputs
        factors, _ = self.geometry(data.shape, like.shape, p.scale)
        return [nearest_ref(data, factors)]

    def gradient(self, p, g):
        return [g.op("_upsample_nearest_grad", g.out_grads[0], g.inputs[0]), None]

    def lower(self, p, ctx):
        data = ctx.in_shapes[0]
        (fh, fw), _ = self.geometry(data, ctx.in_shapes[1], p.scale)
        planes, height, width = data[0] * data[1], data[2], data[3]

        def stmts(L, inputs, outputs):
            q, h, a, w, c = L.Var("q"), L.Var("h"), L.Var("a"), L.Var("w"), L.Var("c")
            dst = ((q * height + h) * fh + a) * (width * fw) + w * fw + c
            copy = L.Store(outputs[0], dst, L.Load(inputs[0], (q * height + h) * width + w))
            return L.For(q, planes, L.For(h, height, L.For(a, fh, L.For(w, width, L.For(
                c, fw, copy)))))

        ctx.kernel(kernel_of(stmts))


@register
class UpsampleNearestGrad(ShapedLikeGrad):
    """Inputs (dy, data): every fh x fw block of dy summed into its source pixel."""

    name = "_upsample_nearest_grad"

    def reference(self, p, inputs, ctx):
        dy, data = inputs
        n, c, h, w = data.shape
        fh, fw = dy.shape[2] // h, dy.shape[3] // w
        return [dy.reshape(n, c, h, fh, w, fw).sum(axis=(3, 5))]

    def lower(self, p, ctx):
        dy, data = ctx.in_shapes
        planes, height, width = data[0] * data[1], data[2], data[3]
        fh, fw = dy[2] // height, dy[3] // width

        def stmts(L, inputs, outputs):
            q, h, w, t = L.Var("q"), L.Var("h"), L.Var("w"), L.Var("t")
            acc = L.Var("acc", outputs[0].dtype)
            src = ((q * height + h) * fh + t // fw) * (width * fw) + w * fw + t % fw
            total = L.Reduce(acc, "sum", t, fh * fw, L.Load(inputs[0], src),
                             L.Store(outputs[0], (q * height + h) * width + w, acc))
            return L.For(q, planes, L.For(h, height, L.For(w, width, total)))

        ctx.kernel(kernel_of(stmts))
