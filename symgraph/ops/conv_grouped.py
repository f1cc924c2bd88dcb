"""The two gradients of a Convolution; grouped (or depthwise), each is one kernel over the
groups, ungrouped a batched matmul per image (``codegen/kernels/conv_gemm.py``).

A grouped convolution's gradient built from per-group slices, dots and concatenations
costs a handful of kernels per group (32 groups gave 205 kernels and a 9 s compile); these
ops loop over the groups inside one kernel instead, so the kernel count does not depend
on ``num_group``.  The convolution is bilinear, so the three ops close under
differentiation: with ``conv(x, w)``, ``D(dy, w)`` (data gradient) and ``Wg(dy, x)``
(weight gradient), ``<a, D(dy, w)> = <conv(a, w), dy> = <Wg(dy, a), w>``.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError, format_shape
from .conv import (
    WINDOW_PARAMS,
    col2im_ref,
    conv_gemm_of,
    conv_out_dims,
    grouped_conv_of,
    im2col_ref,
    parse_window,
    require_nchw,
    window_of,
)
from .params import param
from .registry import OpDef, merge_shape, register


def grouped_attrs(p) -> dict:
    """The attrs the gradient ops of a grouped Convolution node carry."""
    return dict(window_of(p).attrs(), num_group=p.num_group, num_filter=p.num_filter)


def _conv_attrs(p) -> dict:
    return dict(grouped_attrs(p), no_bias=True)


# ---- numpy references (through im2col, per group) --------------------------------------------
def _dy2(dy, groups):
    """(G, F/G, N*OH*OW): dy filter-major, split by group."""
    return dy.transpose(1, 0, 2, 3).reshape(groups, dy.shape[1] // groups, -1)


def data_grad_ref(dy, weight, data_shape, win, groups):
    w2 = weight.reshape(groups, weight.shape[0] // groups, -1)
    dcols = np.concatenate([w2[k].T @ d for k, d in enumerate(_dy2(dy, groups))], axis=0)
    return col2im_ref(dcols, data_shape, win)


def weight_grad_ref(dy, x, win, groups, kernel):
    cols = im2col_ref(x, win).reshape(groups, -1, dy.shape[0] * dy.shape[2] * dy.shape[3])
    dw = np.concatenate([d @ cols[k].T for k, d in enumerate(_dy2(dy, groups))], axis=0)
    return dw.reshape((dy.shape[1], x.shape[1] // groups) + tuple(kernel))


class _GroupedGrad(OpDef):
    params = WINDOW_PARAMS + (param("num_group", "int"), param("num_filter", "int"))

    def parse(self, attrs, node_name):
        parsed = super().parse(attrs, node_name)
        parse_window(parsed, self.name, node_name)
        return parsed

    def check(self, p, dy, data):
        """``dy`` must be the output shape of the convolution over ``data``."""
        require_nchw("data", data)
        require_nchw("dy", dy)
        win = window_of(p)
        expected = (data[0], p.num_filter) + conv_out_dims(win, data)
        if tuple(dy) != expected or data[1] % p.num_group or p.num_filter % p.num_group:
            raise ShapeError(f"input 'dy' {format_shape(dy)} is not the output of a "
                             f"{p.num_group}-group convolution over {format_shape(data)}; "
                             f"expected {format_shape(expected)} with channel counts "
                             f"divisible by num_group")


@register
class GroupedConvDataGrad(_GroupedGrad):
    """``dx`` of a grouped convolution from ``dy`` and the weights (``like``: the data)."""

    name = "_grouped_conv_data_grad"
    arguments = ("dy", "weight", "like")

    def infer_shape(self, p, in_shapes):
        dy, weight, like = in_shapes
        if dy is None or like is None:
            return in_shapes, [None if like is None else tuple(like)]
        self.check(p, dy, like)
        expected = (p.num_filter, like[1] // p.num_group) + window_of(p).kernel
        in_shapes[1] = merge_shape("input 'weight'", weight, expected)
        return in_shapes, [tuple(like)]

    def reference(self, p, inputs, ctx):
        dy, weight, like = inputs
        return [data_grad_ref(dy, weight, like.shape, window_of(p), p.num_group)]

    def gradient(self, p, g):
        (dx_bar,), (dy, weight, _) = g.out_grads, g.inputs
        return [g.op("Convolution", dx_bar, weight, **_conv_attrs(p)),
                g.op("_grouped_conv_weight_grad", dy, dx_bar, **grouped_attrs(p)), None]

    def lower(self, p, ctx):
        from codegen.kernels.conv_kernels import grouped_conv_data_grad_kernel

        if p.num_group == 1:
            from codegen.kernels.conv_gemm import lower_data_grad

            lower_data_grad(ctx, conv_gemm_of(p, ctx.in_shapes[2]))
            return
        conv = grouped_conv_of(p, ctx.in_shapes[2])
        ctx.emit(grouped_conv_data_grad_kernel(conv, ctx.in_buf(0), ctx.in_buf(1),
                                               ctx.out_buf(0)))


@register
class GroupedConvWeightGrad(_GroupedGrad):
    """``dw`` of a grouped convolution from ``dy`` and the data."""

    name = "_grouped_conv_weight_grad"
    arguments = ("dy", "data")

    def infer_shape(self, p, in_shapes):
        dy, data = in_shapes
        if dy is None or data is None:
            return in_shapes, [None]
        self.check(p, dy, data)
        return in_shapes, [(p.num_filter, data[1] // p.num_group) + window_of(p).kernel]

    def reference(self, p, inputs, ctx):
        dy, x = inputs
        return [weight_grad_ref(dy, x, window_of(p), p.num_group, window_of(p).kernel)]

    def gradient(self, p, g):
        (dw_bar,), (dy, data) = g.out_grads, g.inputs
        return [g.op("Convolution", data, dw_bar, **_conv_attrs(p)),
                g.op("_grouped_conv_data_grad", dy, dw_bar, data, **grouped_attrs(p))]

    def lower(self, p, ctx):
        from codegen.kernels.conv_kernels import grouped_conv_weight_grad_kernel

        if p.num_group == 1:
            from codegen.kernels.conv_gemm import lower_weight_grad

            lower_weight_grad(ctx, conv_gemm_of(p, ctx.in_shapes[1]))
            return
        conv = grouped_conv_of(p, ctx.in_shapes[1])
        ctx.emit(grouped_conv_weight_grad_kernel(conv, ctx.in_buf(0), ctx.in_buf(1),
                                                 ctx.out_buf(0)))
