"""Ungrouped 2-D convolution and its two gradients as batched matmuls, image by image.

Each image is one small product whose operands stay in cache: the forward pass is
``y[n] = W @ cols[n]`` (filters x taps times taps x OH*OW), which is already image n of
the NCHW output, so there is no placement pass and the bias (one per filter row) and a
following activation run in the matmul's epilogue (the fusion pass sees a ``MatmulSpec``
with the batch).  The data gradient is ``dcols[n] = W^T @ dy[n]`` followed by col2im,
the weight gradient ``dW = sum_n dy[n] @ cols[n]^T`` summed inside one kernel, in image
order.  A split by tiles of dW makes every image's columns in each chunk, which cost the
small layers (LeNet-5's first: six filters of 25 taps) all the second core's gain, so a
small dW is summed as :data:`PARTIAL_SUMS` partial sums over runs of images, one
kernel's chunks taking whole runs, then added in a fixed order: the same bytes for any
thread count.  ``dy`` is
read in NCHW as it is: no transposes.  An image's column block is made (im2col, the
matmul's prologue) or consumed (col2im, its tail) inside the matmul, in a scratch of one
image per chunk: no column buffer of the whole batch exists.
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
    def pointwise(self) -> bool:
        """1x1, stride 1, no padding: image n (C x H*W) is its own column block, so no
        im2col prologue or col2im tail is made (MobileNet's and ResNet's 1x1 layers)."""
        return all(a.kernel == 1 and a.stride == 1 and a.pad == 0 and a.dilate == 1
                   for a in (self.rows, self.cols))

    @property
    def col_size(self) -> int:
        return self.images * self.taps * self.plane


def _buffer(name, dtype, size):
    return L.BufferParam(name, dtype, size)


def _image(conv: ConvGemm) -> int:
    """Elements of one image of the data."""
    return conv.shape[1] * conv.shape[2] * conv.shape[3]


def _one_image(conv: ConvGemm) -> tuple:
    return (1,) + tuple(conv.shape[1:])


def _disjoint(kernel: L.Kernel) -> L.Kernel:
    """``kernel`` with its two buffers marked as not overlapping: a prologue's or tail's
    image and the chunk's scratch never do, and without the mark LLVM checks overlap at
    run time before each row of taps (a handful of elements), which cost LeNet's conv2
    forward a sixth of its time."""
    return L.make_kernel(kernel.params, kernel.body, noalias=True)


def _im2col(conv: ConvGemm, dtype) -> L.Kernel:
    """One image's (taps, OH*OW) column block: the batched matmul's prologue."""
    return _disjoint(CK.im2col_kernel(_one_image(conv), conv.rows, conv.cols, 0,
                                      conv.shape[1], _buffer("src", dtype, _image(conv)),
                                      _buffer("dst", dtype, conv.taps * conv.plane)))


def lower_forward(ctx, conv: ConvGemm, has_bias: bool) -> None:
    """``y[n] = W @ cols[n] (+ bias per filter)``: inputs data, weight[, bias]."""
    m, n, k = conv.filters, conv.plane, conv.taps
    steps = (0, _image(conv), m * n)
    prologue = None if conv.pointwise else _im2col(conv, ctx.dtype)
    kernel = matmul_kernel(m, n, k, dtype=ctx.dtype, bias="row" if has_bias else "none",
                           batch=conv.images, steps=steps, prologue=prologue)
    bindings = {"a": ctx.in_keys[1], "b": ctx.in_keys[0], "c": ctx.out_keys[0]}
    if has_bias:
        bindings["bias"] = ctx.in_keys[2]
    spec = MatmulSpec(m, n, k, False, False, ctx.dtype, "row" if has_bias else "none",
                      bindings["a"], bindings["b"], bindings.get("bias"), bindings["c"],
                      batch=conv.images, steps=steps, prologue=prologue)
    ctx.emit(kernel, bindings, spec)


def lower_data_grad(ctx, conv: ConvGemm) -> None:
    """``dx[n] = col2im(W^T @ dy[n])``: inputs dy, weight, like."""
    m, n, k = conv.taps, conv.plane, conv.filters
    tail = None if conv.pointwise else _disjoint(CK.col2im_kernel(
        _one_image(conv), conv.rows, conv.cols, _buffer("src", ctx.dtype, m * n),
        _buffer("dst", ctx.dtype, _image(conv))))
    kernel = matmul_kernel(m, n, k, trans_a=True, dtype=ctx.dtype, batch=conv.images,
                           steps=(0, k * n, _image(conv)), tail=tail)
    ctx.emit(kernel, {"a": ctx.in_keys[1], "b": ctx.in_keys[0], "c": ctx.out_keys[0]})


#: partial sums of a weight gradient over runs of images (a constant, not the thread
#: count, so the bytes are the same on any machine): up to this many threads share it
PARTIAL_SUMS = 4
#: elements of dW up to which the partial sums are kept (4 x 1 MB): past it the layer is
#: large enough that tiles of dW keep two cores busy while the partials would not fit
PARTIALS_MAX = 1 << 18


def partial_sums(conv: ConvGemm) -> int:
    size = conv.filters * conv.taps
    return min(PARTIAL_SUMS, conv.images) if size * PARTIAL_SUMS <= PARTIALS_MAX else 1


def lower_weight_grad(ctx, conv: ConvGemm) -> None:
    """``dW = sum_n dy[n] @ cols[n]^T``: inputs dy, data."""
    m, n, k = conv.filters, conv.taps, conv.plane
    groups = partial_sums(conv)
    kernel = matmul_kernel(m, n, k, trans_b=True, dtype=ctx.dtype, batch=conv.images,
                           steps=(m * k, _image(conv), 0),
                           prologue=None if conv.pointwise else _im2col(conv, ctx.dtype),
                           groups=groups)
    if groups == 1:
        ctx.emit(kernel, {"a": ctx.in_keys[0], "b": ctx.in_keys[1], "c": ctx.out_keys[0]})
        return
    partials = ctx.temp(groups * m * n)
    ctx.emit(kernel, {"a": ctx.in_keys[0], "b": ctx.in_keys[1], "c": partials})
    ctx.emit(add_partials(groups, m * n, ctx.dtype), {"src": partials, "dst": ctx.out_keys[0]})


def add_partials(groups: int, size: int, dtype) -> L.Kernel:
    """``dst = ((src[0] + src[1]) + src[2]) + ...``: the partial sums, in group order."""
    i = L.Var("i")
    src, dst = _buffer("src", dtype, groups * size), _buffer("dst", dtype, size)
    total = L.Load(src, i)
    for g in range(1, groups):
        total = total + L.Load(src, i + g * size)
    return L.make_kernel([src, dst], L.For(i, size, L.Store(dst, i, total)))
