"""Pooling (2-D, NCHW, MXNet 1.x): max/avg/sum, valid/full conventions, global pooling.

MXNet's rules kept here: padding never wins a max and never receives gradient; the max
gradient goes to the *first* maximal cell of a window (row-major); with
count_include_pad the avg divisor is the window clipped to [-pad, size + pad) (a 'full'
overhang past that does not count), without it only cells inside the input count.
One deliberate difference: a window wholly in the padding (only a 'full' overhang makes
one) averages to 0 where MXNet computes 0/0 without count_include_pad.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import OpAttributeError, ShapeError, format_shape
from .conv import Window2D, parse_window, require_nchw, window_of
from .params import param
from .registry import OpDef, register

POOL_PARAMS = (
    param("kernel", "shape", ()),
    param("pool_type", "str", "max", choices=("max", "avg", "sum", "lp")),
    param("global_pool", "bool", False), param("cudnn_off", "bool", False),
    param("pooling_convention", "str", "valid", choices=("valid", "full", "same")),
    param("stride", "shape", ()), param("pad", "shape", ()), param("p_value", "int?", None),
    param("count_include_pad", "bool?", None), param("layout", "str?", None),
)


def pool_window(p, data) -> Window2D:
    """The effective window: global pooling covers the whole plane with no padding."""
    if p.global_pool:
        return Window2D((data[2], data[3]))
    return window_of(p)


def pool_out_dims(p, win: Window2D, data) -> tuple[int, int]:
    """valid: 1 + floor((x + 2p - k) / s); full: 1 + ceil(...); a ShapeError if the
    padded input is smaller than the kernel."""
    for x, k, pad in zip(data[2:], win.kernel, win.pad):
        if x + 2 * pad < k:
            raise ShapeError(f"input 'data' {format_shape(data)} is smaller than kernel "
                             f"{win.kernel} (pad {win.pad})")
    return win.out_dims(data[2], data[3], ceil=p.pooling_convention == "full")


def window_counts(p, win: Window2D, data, out_dims) -> tuple[list, list]:
    """Per-axis avg divisors (their product is the window's divisor), MXNet's rule."""
    include_pad = p.count_include_pad in (None, True)
    counts = []
    for x, k, s, pad, n_out in zip(data[2:], win.kernel, win.stride, win.pad, out_dims):
        axis = []
        for o in range(n_out):
            start = o * s - pad
            end = min(start + k, x + pad)
            axis.append(end - start if include_pad else min(end, x) - max(start, 0))
        counts.append(axis)
    return counts[0], counts[1]


def _axes(p, data):
    win = pool_window(p, data)
    out = pool_out_dims(p, win, data)
    return win.axes(data[2], data[3], out), win, out


# ---- numpy reference -------------------------------------------------------------------------
def _window_views(padded, win: Window2D, out_dims):
    """(ki, kj, view) for every tap in row-major order; view is (N, C, OH, OW)."""
    (kh, kw), (sh, sw) = win.kernel, win.stride
    oh, ow = out_dims
    for ki in range(kh):
        for kj in range(kw):
            yield ki, kj, (slice(None), slice(None), slice(ki, ki + sh * (oh - 1) + 1, sh),
                           slice(kj, kj + sw * (ow - 1) + 1, sw))


def _padded(x, win: Window2D, out_dims, value):
    """x inside a frame wide enough for every window (padding and 'full' overhang)."""
    n, c, h, w = x.shape
    (ph, pw) = win.pad
    rows = max(h + 2 * ph, (out_dims[0] - 1) * win.stride[0] + win.kernel[0])
    cols = max(w + 2 * pw, (out_dims[1] - 1) * win.stride[1] + win.kernel[1])
    frame = np.full((n, c, rows, cols), value, dtype=x.dtype)
    frame[:, :, ph:ph + h, pw:pw + w] = x
    return frame


def pool_ref(p, x: np.ndarray) -> np.ndarray:
    win = pool_window(p, x.shape)
    out_dims = pool_out_dims(p, win, x.shape)
    is_max = p.pool_type == "max"
    padded = _padded(x, win, out_dims, -np.inf if is_max else 0.0)
    out = None
    for _, _, view in _window_views(padded, win, out_dims):
        tap = padded[view]
        out = tap.copy() if out is None else (np.maximum(out, tap) if is_max else out + tap)
    if is_max:
        out[np.isneginf(out)] = np.finfo(x.dtype).min
    elif p.pool_type == "avg":
        ch, cw = window_counts(p, win, x.shape, out_dims)
        out = out / np.maximum(np.outer(ch, cw), 1)
    return out.astype(x.dtype)


def pool_grad_ref(p, dy: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Route dy back through the windows, padding cells dropped at the end."""
    win = pool_window(p, x.shape)
    out_dims = pool_out_dims(p, win, x.shape)
    (ph, pw), (h, w) = win.pad, x.shape[2:]
    grad = np.zeros(_padded(x, win, out_dims, 0.0).shape, dtype=x.dtype)
    if p.pool_type == "max":
        padded = _padded(x, win, out_dims, -np.inf)
        rem = dy.copy()
        for _, _, view in _window_views(padded, win, out_dims):
            hit = padded[view] == y
            grad[view] += np.where(hit, rem, 0.0)
            rem = np.where(hit, 0.0, rem)
    else:
        share = dy
        if p.pool_type == "avg":
            ch, cw = window_counts(p, win, x.shape, out_dims)
            share = dy / np.maximum(np.outer(ch, cw), 1)
        for _, _, view in _window_views(grad, win, out_dims):
            grad[view] += share
    return grad[:, :, ph:ph + h, pw:pw + w].astype(x.dtype)


# ---- ops -------------------------------------------------------------------------------------
class _PoolBase(OpDef):
    params = POOL_PARAMS

    def parse(self, attrs, node_name):
        parsed = super().parse(attrs, node_name)
        where = f"{self.name} node '{node_name}'"
        if parsed.pool_type == "lp":
            raise OpAttributeError(f"{where}: pool_type='lp' is not supported (max, avg, sum)")
        if parsed.pooling_convention == "same":
            raise OpAttributeError(f"{where}: pooling_convention='same' is not supported "
                                   "(valid, full)")
        if parsed.layout not in (None, "NCHW"):
            raise OpAttributeError(f"{where}: layout={parsed.layout!r} is not supported; only "
                                   "NCHW")
        if not parsed.global_pool:
            if not parsed.kernel:
                raise OpAttributeError(f"{where}: kernel is required unless global_pool=True")
            parse_window(parsed, self.name, node_name)
        return parsed

    def out_shape(self, p, data):
        require_nchw("data", data)
        win = pool_window(p, data)
        return tuple(data[:2]) + pool_out_dims(p, win, data)


@register
class Pooling(_PoolBase):
    """2-D max/avg/sum pooling over NCHW data."""

    name = "Pooling"

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        return in_shapes, [None if data is None else self.out_shape(p, data)]

    def reference(self, p, inputs, ctx):
        return [pool_ref(p, inputs[0])]

    def gradient(self, p, g):
        return [g.op("_pooling_grad", g.out_grads[0], g.inputs[0], g.outputs[0],
                     **g.node.params.as_dict())]

    def lower(self, p, ctx):
        from codegen.kernels.pool_kernels import pool_forward_kernel

        data = ctx.in_shapes[0]
        (rows, cols), win, out = _axes(p, data)
        counts = window_counts(p, win, data, out)
        ctx.emit(pool_forward_kernel(data[0] * data[1], rows, cols, p.pool_type, counts,
                                     ctx.in_buf(0), ctx.out_buf(0)))


@register
class PoolingGrad(_PoolBase):
    """Gradient of Pooling: inputs (dy, data, pooled output)."""

    name = "_pooling_grad"
    arguments = ("dy", "data", "out")
    differentiable = False

    def infer_shape(self, p, in_shapes):
        data = in_shapes[1]
        if data is not None:
            out = self.out_shape(p, data)
            for i in (0, 2):
                if in_shapes[i] is not None and tuple(in_shapes[i]) != out:
                    raise ShapeError(f"input '{self.arguments[i]}' has shape "
                                     f"{format_shape(in_shapes[i])}, expected "
                                     f"{format_shape(out)}")
                in_shapes[i] = out
        return in_shapes, [data]

    def reference(self, p, inputs, ctx):
        return [pool_grad_ref(p, *inputs)]

    def lower(self, p, ctx):
        from codegen.kernels import pool_kernels as PK
        from codegen.loop_ir import BufferParam

        data = ctx.in_shapes[1]
        (rows, cols), win, out = _axes(p, data)
        planes, size = data[0] * data[1], math.prod(ctx.in_shapes[0])
        dy, dx = ctx.in_buf(0), ctx.out_buf(0)
        counts = window_counts(p, win, data, out)
        if p.pool_type == "sum":
            ctx.emit(PK.pool_sum_grad_kernel(planes, rows, cols, counts, dy, None, dx))
            return
        buf = BufferParam("scratch", ctx.dtype, size)
        if p.pool_type == "max":
            kernel = PK.pool_max_grad_kernel(planes, rows, cols, dy, ctx.in_buf(1),
                                             ctx.in_buf(2), buf, dx)
        else:
            kernel = PK.pool_sum_grad_kernel(planes, rows, cols, counts, dy, buf, dx)
        if any(param.name == buf.name for param in kernel.params):
            # a scratch buffer the memory plan frees once this call is done
            ctx.emit(kernel, {buf.name: ctx.temp(size)})
        else:
            ctx.emit(kernel)
