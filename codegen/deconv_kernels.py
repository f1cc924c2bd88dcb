"""Loop kernels of Deconvolution (transposed convolution), built from convolution's own
pieces. A deconvolution is convolution's data gradient: with one group, the columns
``W^T @ x`` (one matmul) are scattered into the output with col2im's index map
(``conv_kernels._column_layout``) on top of the bias. Grouped and depthwise ones run as
one direct loop kernel over all groups (same window passes, no columns).
"""

from __future__ import annotations

from codegen import loop_ir as L
from codegen.conv_kernels import Axis, _column_layout, window_passes


def bias_fill_kernel(n_img: int, filters: int, plane: int, out: L.BufferParam,
                     bias: L.BufferParam | None = None) -> L.Kernel:
    """``out[n, f, p] = bias[f]`` (or 0): where the groups' columns are added."""
    n, f, p = L.Var("n"), L.Var("f"), L.Var("p")
    value = L.Load(bias, f) if bias is not None else L.Const(0.0, out.dtype)
    body = L.For(n, n_img, L.For(f, filters, L.For(p, plane, L.Store(
        out, (n * filters + f) * plane + p, value))))
    return L.make_kernel(([bias] if bias is not None else []) + [out], body)


def col2im_add_kernel(shape, rows: Axis, cols: Axis, c0: int, channels: int,
                      inp: L.BufferParam, out: L.BufferParam) -> L.Kernel:
    """``out[n, c0 + c, h, w] +=`` every column entry of channel c that maps there."""
    c, n, indices = _column_layout(shape, rows, cols, c0)

    def add(*tap):
        src, dst = indices(*tap)
        return L.Store(out, dst, L.Load(out, dst) + L.Load(inp, src))

    body = L.For(n, shape[0], L.For(c, channels, window_passes(rows, cols, add)))
    return L.make_kernel([inp, out], body)


def grouped_deconv_kernel(x_shape, out_shape, groups: int, rows: Axis, cols: Axis,
                          x: L.BufferParam, weight: L.BufferParam,
                          out: L.BufferParam) -> L.Kernel:
    """All groups in one kernel, without columns: ``out[n, g fg + f, h, w] +=
    weight[g cg + c, f, ki, kj] * x[n, g cg + c, oh, ow]`` for every tap whose output
    position (h, w) is inside. Grouped and depthwise deconvolutions (bilinear upsampling
    has one group per channel) have too few channels per group for a matmul to pay, and
    one kernel per group would make compile time grow with the channel count."""
    n_img, chans, height, width = x_shape
    filters, out_h, out_w = out_shape[1], out_shape[2], out_shape[3]
    cg, fg = chans // groups, filters // groups
    n, g, c, f = L.Var("n"), L.Var("g"), L.Var("c"), L.Var("f")
    channel, filt = g * cg + c, g * fg + f

    def add(ki, kj, oh, ow, h, w):
        dst = ((n * filters + filt) * out_h + h) * out_w + w
        tap = ((channel * fg + f) * rows.kernel + ki) * cols.kernel + kj
        src = ((n * chans + channel) * height + oh) * width + ow
        return L.Store(out, dst, L.Load(out, dst) + L.Load(weight, tap) * L.Load(x, src))

    body = L.For(n, n_img, L.For(g, groups, L.For(c, cg, L.For(
        f, fg, window_passes(rows, cols, add)))))
    return L.make_kernel([x, weight, out], body)


def grouped_weight_grad_kernel(x_shape, dy_shape, groups: int, rows: Axis, cols: Axis,
                               dy: L.BufferParam, x: L.BufferParam,
                               out: L.BufferParam) -> L.Kernel:
    """The weight gradient of :func:`grouped_deconv_kernel`, all groups in one kernel:
    ``dW[g cg + c, f, ki, kj] = sum over n, oh, ow of x[..] * dy[n, g fg + f, h, w]``."""
    n_img, chans, height, width = x_shape
    filters, out_h, out_w = dy_shape[1], dy_shape[2], dy_shape[3]
    cg, fg = chans // groups, filters // groups
    n, g, c, f = L.Var("n"), L.Var("g"), L.Var("c"), L.Var("f")
    channel, filt = g * cg + c, g * fg + f

    def add(ki, kj, oh, ow, h, w):
        tap = ((channel * fg + f) * rows.kernel + ki) * cols.kernel + kj
        src = ((n * chans + channel) * height + oh) * width + ow
        grad = ((n * filters + filt) * out_h + h) * out_w + w
        return L.Store(out, tap, L.Load(out, tap) + L.Load(x, src) * L.Load(dy, grad))

    zero = L.Var("z")
    fill = L.For(zero, out.size, L.Store(out, zero, L.Const(0.0, out.dtype)))
    body = L.For(g, groups, L.For(c, cg, L.For(f, fg, L.For(
        n, n_img, window_passes(rows, cols, add)))))
    return L.make_kernel([dy, x, out], L.block(fill, body))


def grouped_data_grad_kernel(dy_shape, x_shape, groups: int, rows: Axis, cols: Axis,
                             dy: L.BufferParam, weight: L.BufferParam,
                             out: L.BufferParam) -> L.Kernel:
    """The data gradient of :func:`grouped_deconv_kernel` (a grouped convolution of dy),
    all groups in one kernel: ``dx[n, g cg + c, oh, ow] = sum over f and taps of
    weight[g cg + c, f, ki, kj] * dy[n, g fg + f, h, w]``."""
    n_img, chans, height, width = x_shape
    filters, out_h, out_w = dy_shape[1], dy_shape[2], dy_shape[3]
    cg, fg = chans // groups, filters // groups
    n, g, c, f = L.Var("n"), L.Var("g"), L.Var("c"), L.Var("f")
    channel, filt = g * cg + c, g * fg + f

    def add(ki, kj, oh, ow, h, w):
        dst = ((n * chans + channel) * height + oh) * width + ow
        tap = ((channel * fg + f) * rows.kernel + ki) * cols.kernel + kj
        src = ((n * filters + filt) * out_h + h) * out_w + w
        return L.Store(out, dst, L.Load(out, dst) + L.Load(weight, tap) * L.Load(dy, src))

    zero = L.Var("z")
    fill = L.For(zero, out.size, L.Store(out, zero, L.Const(0.0, out.dtype)))
    body = L.For(n, n_img, L.For(g, groups, L.For(c, cg, L.For(
        f, fg, window_passes(rows, cols, add)))))
    return L.make_kernel([dy, weight, out], L.block(fill, body))
