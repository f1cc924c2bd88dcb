"""Convolution (2-D, NCHW, MXNet 1.x) and the im2col/col2im pair its gradient is built from.

An ungrouped Convolution is lowered as per-image im2col blocks and one batched matmul
(``codegen/kernels/conv_gemm.py``): image n's (filters x taps) @ (taps x OH*OW) product
is already NCHW, with the bias and a following activation in its epilogue.  Its
gradients are the ops ``_grouped_conv_data_grad`` / ``_grouped_conv_weight_grad``
(``conv_grouped.py``, any group count), lowered the same way for one group.
``_col2im`` is the adjoint of ``_im2col``, so each op's gradient is the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import OpAttributeError, ShapeError, format_shape
from .params import param
from .registry import OpDef, merge_shape, register

WINDOW_PARAMS = (param("kernel", "shape"), param("stride", "shape", ()),
                 param("dilate", "shape", ()), param("pad", "shape", ()))


@dataclass(frozen=True)
class Window2D:
    """Kernel, stride, dilation and padding of a 2-D window, defaults filled in."""

    kernel: tuple
    stride: tuple = (1, 1)
    pad: tuple = (0, 0)
    dilate: tuple = (1, 1)

    def out_dims(self, height: int, width: int, ceil: bool = False) -> tuple[int, int]:
        """MXNet's ``floor((x + 2p - (d(k-1)+1)) / s) + 1`` per axis (``ceil`` for pooling's
        'full' convention)."""
        def steps(span, s):
            return -(-span // s) if ceil else span // s

        return tuple(steps(x + 2 * p - (d * (k - 1) + 1), s) + 1 for x, k, s, p, d in zip(
            (height, width), self.kernel, self.stride, self.pad, self.dilate))

    def axes(self, height: int, width: int, out=None):
        """The codegen view: one ``Axis`` per spatial dim (``out``: the output dims)."""
        from codegen.kernels.conv_kernels import Axis

        out = self.out_dims(height, width) if out is None else out
        return tuple(Axis(x, o, k, s, p, d) for x, o, k, s, p, d in zip(
            (height, width), out, self.kernel, self.stride, self.pad, self.dilate))

    def attrs(self) -> dict:
        return {"kernel": self.kernel, "stride": self.stride, "pad": self.pad,
                "dilate": self.dilate}


def _pair(value: tuple, default: int, what: str, op: str, node: str) -> tuple:
    if value == ():
        return (default, default)
    if len(value) != 2:
        raise OpAttributeError(f"{op} node '{node}': {what}={value} must have 2 entries; only "
                               "2-D (NCHW) windows are supported")
    if any(v < (0 if what == "pad" else 1) for v in value):
        raise OpAttributeError(f"{op} node '{node}': {what}={value} has an invalid entry")
    return tuple(value)


def parse_window(p, op: str, node: str, kernel=None) -> Window2D:
    """Validate the window params of a parsed node (defaults: stride/dilate 1, pad 0)."""
    kernel = p.kernel if kernel is None else kernel
    dilate = getattr(p, "dilate", ())
    return Window2D(_pair(kernel, 0, "kernel", op, node), _pair(p.stride, 1, "stride", op, node),
                    _pair(p.pad, 0, "pad", op, node), _pair(dilate, 1, "dilate", op, node))


def window_of(p) -> Window2D:
    """The window of an already validated node (fills in the defaults)."""
    def pair(value, default):
        return tuple(value) if value else (default, default)

    return Window2D(tuple(p.kernel), pair(p.stride, 1), pair(p.pad, 0),
                    pair(getattr(p, "dilate", ()), 1))


def require_nchw(what: str, shape) -> None:
    if len(shape) != 4:
        raise ShapeError(f"input '{what}' has shape {format_shape(shape)}; expected 4-D "
                         "(batch, channel, height, width)")


def conv_out_dims(win: Window2D, data) -> tuple[int, int]:
    """Spatial output dims, a ShapeError naming the sizes when the window does not fit."""
    out = win.out_dims(data[2], data[3])
    if min(out) < 1:
        raise ShapeError(f"input 'data' {format_shape(data)} is too small for kernel "
                         f"{win.kernel} with pad {win.pad}, dilate {win.dilate}: output "
                         f"would be {out}")
    return out


# ---- numpy reference -------------------------------------------------------------------------
def im2col_ref(x: np.ndarray, win: Window2D) -> np.ndarray:
    """(C*kh*kw, N*OH*OW) patches: rows ordered (c, ki, kj), columns (n, oh, ow)."""
    n, c, _, _ = x.shape
    oh, ow = win.out_dims(x.shape[2], x.shape[3])
    (ph, pw), (sh, sw), (dh, dw) = win.pad, win.stride, win.dilate
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    kh, kw = win.kernel
    cols = np.empty((c, kh, kw, n, oh, ow), dtype=x.dtype)
    for ki in range(kh):
        for kj in range(kw):
            patch = padded[:, :, ki * dh: ki * dh + sh * (oh - 1) + 1: sh,
                           kj * dw: kj * dw + sw * (ow - 1) + 1: sw]
            cols[:, ki, kj] = patch.transpose(1, 0, 2, 3)
    return cols.reshape(c * kh * kw, n * oh * ow)


def col2im_ref(cols: np.ndarray, shape, win: Window2D) -> np.ndarray:
    """Adjoint of :func:`im2col_ref`: every patch entry added back where it was read."""
    n, c, h, w = shape
    oh, ow = win.out_dims(h, w)
    (ph, pw), (sh, sw), (dh, dw) = win.pad, win.stride, win.dilate
    kh, kw = win.kernel
    padded = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    blocks = cols.reshape(c, kh, kw, n, oh, ow)
    for ki in range(kh):
        for kj in range(kw):
            padded[:, :, ki * dh: ki * dh + sh * (oh - 1) + 1: sh,
                   kj * dw: kj * dw + sw * (ow - 1) + 1: sw] += blocks[:, ki, kj].transpose(
                       1, 0, 2, 3)
    return padded[:, :, ph: ph + h, pw: pw + w].copy()


def conv_ref(x, weight, bias, win: Window2D, groups: int) -> np.ndarray:
    """Grouped cross-correlation through im2col: per group (F/G, K) @ (K, N*OH*OW)."""
    n = x.shape[0]
    oh, ow = win.out_dims(x.shape[2], x.shape[3])
    filters = weight.shape[0]
    cols = im2col_ref(x, win)
    w2 = weight.reshape(groups, filters // groups, -1)
    c2 = cols.reshape(groups, -1, cols.shape[1])
    y = np.concatenate([w2[g] @ c2[g] for g in range(groups)], axis=0)
    y = y.reshape(filters, n, oh, ow).transpose(1, 0, 2, 3)
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    return np.ascontiguousarray(y, dtype=x.dtype)


# ---- Convolution -----------------------------------------------------------------------------
@register
class Convolution(OpDef):
    """2-D cross-correlation over NCHW data with (num_filter, C/num_group, kh, kw) weights."""

    name = "Convolution"
    params = WINDOW_PARAMS + (
        param("num_filter", "int"), param("num_group", "int", 1), param("workspace", "int", 1024),
        param("no_bias", "bool", False), param("cudnn_tune", "str?", None),
        param("cudnn_off", "bool", False), param("layout", "str?", None))
    arguments = ("data", "weight", "bias")

    def input_names(self, p):
        return ["data", "weight"] if p.no_bias else ["data", "weight", "bias"]

    def parse(self, attrs, node_name):
        parsed = super().parse(attrs, node_name)
        parse_window(parsed, self.name, node_name)
        where = f"Convolution node '{node_name}'"
        if parsed.num_filter < 1 or parsed.num_group < 1:
            raise OpAttributeError(f"{where}: num_filter={parsed.num_filter} and num_group="
                                   f"{parsed.num_group} must be >= 1")
        if parsed.num_filter % parsed.num_group:
            raise OpAttributeError(f"{where}: num_filter={parsed.num_filter} is not divisible"
                                   f" by num_group={parsed.num_group}")
        if parsed.layout not in (None, "NCHW"):
            raise OpAttributeError(f"{where}: layout={parsed.layout!r} is not supported; only "
                                   "NCHW")
        return parsed

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        win = window_of(p)
        if not p.no_bias:
            in_shapes[2] = merge_shape("input 'bias'", in_shapes[2], (p.num_filter,))
        if data is None:
            weight = in_shapes[1]
            if weight is not None and weight[0] != p.num_filter:
                raise ShapeError(f"input 'weight' has shape {format_shape(weight)}, expected "
                                 f"({p.num_filter}, ...) for num_filter={p.num_filter}")
            return in_shapes, [None]
        require_nchw("data", data)
        if data[1] % p.num_group:
            raise ShapeError(f"input 'data' {format_shape(data)} has {data[1]} channels, not "
                             f"divisible by num_group={p.num_group}")
        expected = (p.num_filter, data[1] // p.num_group) + win.kernel
        in_shapes[1] = merge_shape("input 'weight'", in_shapes[1], expected)
        out = conv_out_dims(win, data)
        return in_shapes, [(data[0], p.num_filter) + out]

    def reference(self, p, inputs, ctx):
        bias = None if p.no_bias else inputs[2]
        return [conv_ref(inputs[0], inputs[1], bias, window_of(p), p.num_group)]

    def gradient(self, p, g):
        dy, data, weight = g.out_grads[0], g.inputs[0], g.inputs[1]
        grads = [None] * len(g.inputs)
        if g.needs[0] or g.needs[1]:  # one op each, whatever the group count
            from .conv_grouped import grouped_attrs

            attrs = grouped_attrs(p)
            if g.needs[0]:
                grads[0] = g.op("_grouped_conv_data_grad", dy, weight, data, **attrs)
            if g.needs[1]:
                grads[1] = g.op("_grouped_conv_weight_grad", dy, data, **attrs)
        if not p.no_bias and g.needs[2]:
            grads[2] = g.op("sum", dy, axis=(0, 2, 3))
        return grads

    def lower(self, p, ctx):
        if p.num_group > 1:
            from codegen.kernels.conv_kernels import grouped_conv_kernel

            bias = None if p.no_bias else ctx.in_buf(2)
            ctx.emit(grouped_conv_kernel(grouped_conv_of(p, ctx.in_shapes[0]), ctx.in_buf(0),
                                         ctx.in_buf(1), bias, ctx.out_buf(0)))
            return
        from codegen.kernels.conv_gemm import lower_forward

        lower_forward(ctx, conv_gemm_of(p, ctx.in_shapes[0]), not p.no_bias)


def conv_gemm_of(p, data_shape):
    """The codegen description of an ungrouped convolution over ``data_shape``."""
    from codegen.kernels.conv_gemm import ConvGemm

    rows, cols = window_of(p).axes(data_shape[2], data_shape[3])
    return ConvGemm(tuple(data_shape), rows, cols, p.num_filter)


def grouped_conv_of(p, data_shape):
    """The codegen description of a grouped convolution over ``data_shape``."""
    from codegen.kernels.conv_kernels import GroupedConv

    rows, cols = window_of(p).axes(data_shape[2], data_shape[3])
    return GroupedConv(tuple(data_shape), rows, cols, p.num_group, p.num_filter)


# ---- im2col / col2im -------------------------------------------------------------------------
class _WindowOp(OpDef):
    params = WINDOW_PARAMS

    def parse(self, attrs, node_name):
        parsed = super().parse(attrs, node_name)
        parse_window(parsed, self.name, node_name)
        return parsed

    def cols_shape(self, p, data):
        require_nchw("data", data)
        win = window_of(p)
        oh, ow = conv_out_dims(win, data)
        return (data[1] * win.kernel[0] * win.kernel[1], data[0] * oh * ow)


@register
class Im2Col(_WindowOp):
    """NCHW data -> (C*kh*kw, N*OH*OW) patches (the columns Convolution multiplies)."""

    name = "_im2col"

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        return in_shapes, [None if data is None else self.cols_shape(p, data)]

    def reference(self, p, inputs, ctx):
        return [im2col_ref(inputs[0], window_of(p))]

    def gradient(self, p, g):
        return [g.op("_col2im", g.out_grads[0], g.inputs[0], **window_of(p).attrs())]

    def lower(self, p, ctx):
        from codegen.kernels.conv_kernels import im2col_kernel

        shape = ctx.in_shapes[0]
        rows, cols = window_of(p).axes(shape[2], shape[3])
        ctx.emit(im2col_kernel(shape, rows, cols, 0, shape[1], ctx.in_buf(0), ctx.out_buf(0)))


@register
class Col2Im(_WindowOp):
    """Adjoint of ``_im2col``: patches summed back into an image shaped like ``like``."""

    name = "_col2im"
    arguments = ("cols", "like")

    def infer_shape(self, p, in_shapes):
        cols, like = in_shapes
        if like is None:
            return in_shapes, [None]
        in_shapes[0] = merge_shape("input 'cols'", cols, self.cols_shape(p, like))
        return in_shapes, [tuple(like)]

    def reference(self, p, inputs, ctx):
        return [col2im_ref(inputs[0], inputs[1].shape, window_of(p))]

    def gradient(self, p, g):
        return [g.op("_im2col", g.out_grads[0], **window_of(p).attrs()), None]

    def lower(self, p, ctx):
        from codegen.kernels.conv_kernels import col2im_kernel

        shape = ctx.in_shapes[1]
        rows, cols = window_of(p).axes(shape[2], shape[3])
        ctx.emit(col2im_kernel(shape, rows, cols, ctx.in_buf(0), ctx.out_buf(0)))
