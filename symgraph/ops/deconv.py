"""Deconvolution (2-D transposed convolution, NCHW, MXNet 1.x) and its gradient ops.

Deconvolution is Convolution's data gradient: with weight (C, F/G, kh, kw) it maps
(N, C, H, W) to (N, F, OH, OW), ``OH = stride (H - 1) + dilate (kh - 1) + 1 - 2 pad + adj``.
``target_shape`` instead fixes (OH, OW) and derives pad and adj from it as MXNet does
(``total = stride (H - 1) + dilated kernel - target``, ``pad = ceil(total / 2)``,
``adj = total % 2``). Its gradients mirror that: the data gradient is a Convolution of the
head gradient with the same weight, the weight gradient is ``x @ im2col(dy)^T`` per group.
Those two need the effective pad, which depends on shapes when ``target_shape`` is set,
so they are private ops carrying Deconvolution's own attributes.
"""

from __future__ import annotations

import numpy as np

from ..errors import OpAttributeError, ShapeError, format_shape
from .conv import Window2D, col2im_ref, conv_ref, im2col_ref, parse_window, require_nchw
from .params import Params, param
from .registry import OpDef, ShapedLikeGrad, get_op, merge_shape, register

DECONV_PARAMS = (
    param("kernel", "shape"), param("stride", "shape", ()), param("dilate", "shape", ()),
    param("pad", "shape", ()), param("adj", "shape", ()), param("target_shape", "shape", ()),
    param("num_filter", "int"), param("num_group", "int", 1), param("workspace", "int", 512),
    param("no_bias", "bool", True), param("cudnn_tune", "str?", None),
    param("cudnn_off", "bool", False), param("layout", "str?", None))


def validate(p, op: str, node: str) -> None:
    parse_window(p, op, node)
    where = f"{op} node '{node}'"
    for what, value in (("adj", p.adj), ("target_shape", p.target_shape)):
        if value and (len(value) != 2 or min(value) < 0):
            raise OpAttributeError(f"{where}: {what}={value} must have 2 non-negative entries "
                                   "(only 2-D, NCHW, deconvolution is supported)")
    if p.num_filter < 1 or p.num_group < 1 or p.num_filter % p.num_group:
        raise OpAttributeError(f"{where}: num_filter={p.num_filter} must be >= 1 and divisible "
                               f"by num_group={p.num_group}")
    if p.layout not in (None, "NCHW"):
        raise OpAttributeError(f"{where}: layout={p.layout!r} is not supported; only NCHW")


def geometry(p, data) -> tuple[Window2D, tuple[int, int]]:
    """(the convolution window with the effective pad, the output's (OH, OW))."""
    require_nchw("data", data)
    kernel = tuple(p.kernel)
    stride = tuple(p.stride) or (1, 1)
    dilate = tuple(p.dilate) or (1, 1)
    pads, adjs, outs = [], [], []
    target = tuple(p.target_shape) if any(p.target_shape) else None
    for axis in range(2):
        x, k, s, d = data[2 + axis], kernel[axis], stride[axis], dilate[axis]
        full = s * (x - 1) + d * (k - 1) + 1
        if target is not None:
            total = full - target[axis]
            if total < 0:
                raise ShapeError(f"target_shape={target} is too big for input 'data' "
                                 f"{format_shape(data)}: at most {full} along axis {2 + axis}")
            pad, adj = (total + 1) // 2, total % 2
        else:
            pad = p.pad[axis] if p.pad else 0
            adj = p.adj[axis] if p.adj else 0
        if adj >= s:
            raise ShapeError(f"adj={adj} along axis {2 + axis} must be smaller than stride={s} "
                             f"(input 'data' {format_shape(data)}, target_shape={p.target_shape})")
        out = full - 2 * pad + adj
        if out < 1:
            raise ShapeError(f"input 'data' {format_shape(data)} gives an empty output along "
                             f"axis {2 + axis} with kernel {kernel}, pad {pad}")
        pads.append(pad)
        adjs.append(adj)
        outs.append(out)
    return Window2D(kernel, stride, tuple(pads), dilate), tuple(outs)


def deconv_ref(x, weight, bias, win: Window2D, out_hw, groups: int) -> np.ndarray:
    """Per group: columns = W_g^T @ x_g, scattered by col2im into the output."""
    n, c, h, w = x.shape
    filters = weight.shape[1] * groups
    x2 = x.transpose(1, 0, 2, 3).reshape(groups, c // groups, n * h * w)
    w2 = weight.reshape(groups, c // groups, -1)
    cols = np.concatenate([w2[g].T @ x2[g] for g in range(groups)], axis=0)
    y = col2im_ref(cols, (n, filters) + tuple(out_hw), win)
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    return np.ascontiguousarray(y, dtype=x.dtype)


def conv_params(p, win: Window2D, channels: int) -> Params:
    """Convolution's params for the data gradient: the same window, back to C channels."""
    attrs = {"kernel": str(win.kernel), "stride": str(win.stride), "pad": str(win.pad),
             "dilate": str(win.dilate), "num_filter": str(channels),
             "num_group": str(p.num_group), "no_bias": "True"}
    return get_op("Convolution").parse(attrs, "deconvolution data gradient")


def _attrs(p) -> dict:
    return {k: v for k, v in p.values if v is not None}


def _grouped_adjoint(p, big_shape, rows, cols, channels: int):
    """The grouped convolution whose data gradient this deconvolution is: over the
    deconvolution's (N, F, OH, OW) side, back to its ``channels`` (the weight (C, F/G, kh,
    kw) is that convolution's weight as it is)."""
    from codegen.kernels.conv_kernels import GroupedConv

    return GroupedConv(tuple(big_shape), rows, cols, p.num_group, channels)


def _channel_major(ctx, index: int, shape) -> tuple[int, int]:
    """Input ``index`` (N, C, H, W) transposed to (C, N*H*W) in a scratch buffer (the
    one-group matmuls' operand): (its key, N*H*W)."""
    from codegen.kernels.builders_nn import transpose_kernel
    from codegen.loop_ir import BufferParam

    n_img, chans, height, width = shape
    ncols = n_img * height * width
    key = ctx.temp(chans * ncols)
    ctx.emit(transpose_kernel((n_img, chans, height * width), (1, 0, 2), ctx.in_buf(index),
                              BufferParam("xt", ctx.dtype, chans * ncols)), {"xt": key})
    return key, ncols


class _DeconvBase(OpDef):
    params = DECONV_PARAMS

    def parse(self, attrs, node_name):
        parsed = super().parse(attrs, node_name)
        validate(parsed, self.name, node_name)
        return parsed


@register
class Deconvolution(_DeconvBase):
    name = "Deconvolution"
    hint = "deconvolution"
    arguments = ("data", "weight", "bias")

    def input_names(self, p):
        return ["data", "weight"] if p.no_bias else ["data", "weight", "bias"]

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        if not p.no_bias:
            in_shapes[2] = merge_shape("input 'bias'", in_shapes[2], (p.num_filter,))
        if data is None:
            return in_shapes, [None]
        win, out = geometry(p, data)
        if data[1] % p.num_group:
            raise ShapeError(f"input 'data' {format_shape(data)} has {data[1]} channels, not "
                             f"divisible by num_group={p.num_group}")
        expected = (data[1], p.num_filter // p.num_group) + win.kernel
        in_shapes[1] = merge_shape("input 'weight'", in_shapes[1], expected)
        return in_shapes, [(data[0], p.num_filter) + out]

    def reference(self, p, inputs, ctx):
        x, weight = inputs[0], inputs[1]
        bias = None if p.no_bias else inputs[2]
        win, out = geometry(p, x.shape)
        return [deconv_ref(x, weight, bias, win, out, p.num_group)]

    def gradient(self, p, g):
        dy, data, weight = g.out_grads[0], g.inputs[0], g.inputs[1]
        attrs = _attrs(p)
        grads = [None] * len(g.inputs)
        if g.needs[0]:
            grads[0] = g.op("_deconv_grad_data", dy, weight, data, **attrs)
        if g.needs[1]:
            grads[1] = g.op("_deconv_grad_weight", dy, data, weight, **attrs)
        if not p.no_bias and g.needs[2]:
            grads[2] = g.op("sum", dy, axis=(0, 2, 3))
        return grads

    def lower(self, p, ctx):
        from codegen.kernels import deconv_kernels as DK
        from codegen.kernels.matmul import matmul_kernel
        from codegen.loop_ir import BufferParam

        data = ctx.in_shapes[0]
        win, out_hw = geometry(p, data)
        rows, cols = win.axes(out_hw[0], out_hw[1], out=tuple(data[2:]))
        out_shape = (data[0], p.num_filter) + out_hw
        bias = None if p.no_bias else ctx.in_buf(2)
        ctx.emit(DK.bias_fill_kernel(data[0], p.num_filter, out_hw[0] * out_hw[1],
                                     ctx.out_buf(0), bias))
        if p.num_group > 1:  # the data gradient of the grouped convolution of the output
            from codegen.kernels.conv_kernels import grouped_conv_data_grad_kernel

            conv = _grouped_adjoint(p, out_shape, rows, cols, data[1])
            ctx.emit(grouped_conv_data_grad_kernel(conv, ctx.in_buf(0), ctx.in_buf(1),
                                                   ctx.out_buf(0), accumulate=True))
            return
        xt_key, ncols = _channel_major(ctx, 0, data)
        taps = p.num_filter * rows.kernel * cols.kernel
        col_key = ctx.temp(taps * ncols)
        ctx.emit(matmul_kernel(taps, ncols, data[1], trans_a=True, dtype=ctx.dtype),
                 {"a": ctx.in_keys[1], "b": xt_key, "c": col_key})
        col_buf = BufferParam("cols", ctx.dtype, taps * ncols)
        ctx.emit(DK.col2im_add_kernel(out_shape, rows, cols, 0, p.num_filter, col_buf,
                                      ctx.out_buf(0)), {"cols": col_key})


@register
class DeconvGradData(ShapedLikeGrad, _DeconvBase):
    """Inputs (dy, weight, data): Convolution of dy with the deconvolution's weight."""

    name = "_deconv_grad_data"
    arguments = ("dy", "weight", "data")

    def reference(self, p, inputs, ctx):
        dy, weight, data = inputs
        win, _ = geometry(p, data.shape)
        return [conv_ref(dy, weight, None, win, p.num_group)]

    def lower(self, p, ctx):
        data = ctx.in_shapes[2]
        win, _ = geometry(p, data)
        get_op("Convolution").lower(conv_params(p, win, data[1]), ctx)


@register
class DeconvGradWeight(ShapedLikeGrad, _DeconvBase):
    """Inputs (dy, data, weight): per group ``x_g (C/G, N*H*W) @ im2col(dy)_g^T``."""

    name = "_deconv_grad_weight"
    arguments = ("dy", "data", "weight")
    shaped_like = "weight"

    def reference(self, p, inputs, ctx):
        dy, data, weight = inputs
        win, _ = geometry(p, data.shape)
        n, c, h, w = data.shape
        groups = p.num_group
        x2 = data.transpose(1, 0, 2, 3).reshape(groups, c // groups, -1)
        cols = im2col_ref(dy, win).reshape(groups, -1, n * h * w)
        dw = np.concatenate([x2[g] @ cols[g].T for g in range(groups)], axis=0)
        return [dw.reshape(weight.shape).astype(dy.dtype)]

    def lower(self, p, ctx):
        from codegen.kernels.conv_kernels import im2col_kernel
        from codegen.kernels.matmul import matmul_kernel
        from codegen.loop_ir import BufferParam

        dy_shape, data = ctx.in_shapes[0], ctx.in_shapes[1]
        win, _ = geometry(p, data)
        rows, cols = win.axes(dy_shape[2], dy_shape[3], out=tuple(data[2:]))
        if p.num_group > 1:  # the weight gradient of the grouped convolution of dy
            from codegen.kernels.conv_kernels import grouped_conv_weight_grad_kernel

            conv = _grouped_adjoint(p, dy_shape, rows, cols, data[1])
            ctx.emit(grouped_conv_weight_grad_kernel(conv, ctx.in_buf(1), ctx.in_buf(0),
                                                     ctx.out_buf(0)))
            return
        xt_key, ncols = _channel_major(ctx, 1, data)
        taps = p.num_filter * rows.kernel * cols.kernel
        col_key = ctx.temp(taps * ncols)
        ctx.emit(im2col_kernel(dy_shape, rows, cols, 0, p.num_filter, ctx.in_buf(0),
                               BufferParam("cols", ctx.dtype, taps * ncols)), {"cols": col_key})
        ctx.emit(matmul_kernel(data[1], taps, ncols, trans_b=True, dtype=ctx.dtype),
                 {"a": xt_key, "b": col_key, "c": ctx.out_keys[0]})
