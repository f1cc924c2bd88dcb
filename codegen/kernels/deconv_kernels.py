"""Loop kernels of Deconvolution (transposed convolution), built from convolution's own
pieces. A deconvolution is convolution's data gradient: with one group, the columns
``W^T @ x`` (one matmul) are scattered into the output with col2im's index map
(``conv_kernels._column_layout``) on top of the bias. Grouped and depthwise ones are
exactly the grouped convolution kernels of ``conv_kernels`` (``GroupedConv``) with data
and output swapped, so they have no kernels of their own here.
"""

from __future__ import annotations

from codegen import loop_ir as L
from codegen.kernels.conv_kernels import Axis, _column_layout, window_passes


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
