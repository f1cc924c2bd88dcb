"""Ungrouped 2-D convolution and its two gradients as batched matmuls, image by image.

Each image is one small product whose operands stay in cache: the forward pass is
``y[n] = W @ cols[n]`` (filters x taps times taps x OH*OW), which is already image n of
the NCHW output, so there is no placement pass and the bias (one per filter row) and a
following activation run in the matmul's epilogue (the fusion pass sees a ``MatmulSpec``
with the batch).  The data gradient is ``dcols[n] = W^T @ dy[n]`` followed by col2im,
the weight gradient ``dW = sum_n dy[n] @ cols[n]^T`` summed inside one kernel, in image
order, so a two-thread split (by tiles of C) gives the bytes of one thread.  ``dy`` is
read in NCHW as it is: no transposes.
"""

from __future__ import annotations

from dataclasses import dataclass

from codegen import loop_ir as L
from codegen.fusion_spec import MatmulSpec
from codegen.kernels import conv_kernels as CK
from codegen.kernels.matmul import matmul_kernel


@dataclass(frozen=True)
class ConvGemm:
    """Sizes of one ungrouped convolution over ``shape`` (N, C, H, W)."""

    shape: tuple
    rows: CK.Axis
    cols: CK.Axis
    filters: int

    @property
    def images(self) -> int:
        return self.shape[0]

    @property
    def plane(self) -> int:
        return self.rows.out * self.cols.out

    @property
    def taps(self) -> int:
        return self.shape[1] * self.rows.kernel * self.cols.kernel

    @property
    def col_size(self) -> int:
        return self.images * self.taps * self.plane


def _buffer(name, dtype, size):
    return L.BufferParam(name, dtype, size)


def _columns(ctx, conv: ConvGemm, data: int) -> int:
    """The per-image column blocks of input ``data`` in a new temporary (its key)."""
    key = ctx.temp(conv.col_size)
    kernel = CK.im2col_kernel(conv.shape, conv.rows, conv.cols, 0, conv.shape[1],
                              ctx.in_buf(data), _buffer("cols", ctx.dtype, conv.col_size),
                              per_image=True)
    ctx.emit(kernel, {"cols": key, f"in{data}": ctx.in_keys[data]})
    return key


def lower_forward(ctx, conv: ConvGemm, has_bias: bool) -> None:
    """``y[n] = W @ cols[n] (+ bias per filter)``: inputs data, weight[, bias]."""
    cols = _columns(ctx, conv, 0)
    m, n, k = conv.filters, conv.plane, conv.taps
    steps = (0, k * n, m * n)
    kernel = matmul_kernel(m, n, k, dtype=ctx.dtype, bias="row" if has_bias else "none",
                           batch=conv.images, steps=steps)
    bindings = {"a": ctx.in_keys[1], "b": cols, "c": ctx.out_keys[0]}
    if has_bias:
        bindings["bias"] = ctx.in_keys[2]
    spec = MatmulSpec(m, n, k, False, False, ctx.dtype, "row" if has_bias else "none",
                      bindings["a"], cols, bindings.get("bias"), bindings["c"],
                      batch=conv.images, steps=steps)
    ctx.emit(kernel, bindings, spec)


def lower_data_grad(ctx, conv: ConvGemm) -> None:
    """``dx = col2im(W^T @ dy[n])``: inputs dy, weight, like."""
    m, n, k = conv.taps, conv.plane, conv.filters
    dcols = ctx.temp(conv.col_size)
    kernel = matmul_kernel(m, n, k, trans_a=True, dtype=ctx.dtype, batch=conv.images,
                           steps=(0, k * n, m * n))
    ctx.emit(kernel, {"a": ctx.in_keys[1], "b": ctx.in_keys[0], "c": dcols})
    back = CK.col2im_kernel(conv.shape, conv.rows, conv.cols,
                            _buffer("dcols", ctx.dtype, conv.col_size), ctx.out_buf(0),
                            per_image=True)
    ctx.emit(back, {"dcols": dcols})


def lower_weight_grad(ctx, conv: ConvGemm) -> None:
    """``dW = sum_n dy[n] @ cols[n]^T``: inputs dy, data."""
    cols = _columns(ctx, conv, 1)
    m, n, k = conv.filters, conv.taps, conv.plane
    kernel = matmul_kernel(m, n, k, trans_b=True, dtype=ctx.dtype, batch=conv.images,
                           steps=(m * k, n * k, 0))
    ctx.emit(kernel, {"a": ctx.in_keys[0], "b": cols, "c": ctx.out_keys[0]})
