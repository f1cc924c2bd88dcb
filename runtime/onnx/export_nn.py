"""Export entries for layers: dense, convolution, deconvolution, pooling, normalization,
softmax and the loss heads (their label inputs are dropped, as MXNet's exporter did)."""

from __future__ import annotations

import numpy as np

from runtime.onnx.table import exporter


def _window(n, kernel):
    """ONNX window attrs from MXNet's kernel/stride/dilate/pad (defaults 1, 1, 0)."""
    dims = len(kernel)
    stride = tuple(n.p.stride) or (1,) * dims
    dilate = tuple(getattr(n.p, "dilate", ()) or ()) or (1,) * dims
    pad = tuple(n.p.pad) or (0,) * dims
    return {"kernel_shape": list(kernel), "strides": list(stride), "dilations": list(dilate),
            "pads": list(pad) + list(pad)}


def _require_channels_first(n):
    layout = getattr(n.p, "layout", None)
    n.require(layout in (None, "NCW", "NCHW", "NCDHW"), "layout", "only channels-first layouts")


# ---- dense and convolution ------------------------------------------------------------------
@exporter("FullyConnected")
def fully_connected(ctx, n):
    x, w = n.inputs[0], n.inputs[1]
    bias = [] if n.p.no_bias else [n.inputs[2]]
    if n.p.flatten or n.rank == 2:
        if n.rank != 2:
            x = ctx.op("Flatten", [x], axis=1)
        ctx.op("Gemm", [x, w] + bias, n.out, transB=1)
        return
    product = ctx.op("MatMul", [x, ctx.op("Transpose", [w], perm=[1, 0])],
                     None if bias else n.out)
    if bias:
        ctx.op("Add", [product] + bias, n.out)


@exporter("Convolution")
def convolution(ctx, n):
    _require_channels_first(n)
    attrs = _window(n, n.p.kernel)
    ctx.op("Conv", n.inputs, n.out, group=n.p.num_group, **attrs)


@exporter("Deconvolution")
def deconvolution(ctx, n):
    """A target_shape becomes MXNet's own pad and adj: the full output minus the target,
    split as pad = ceil(total / 2) each side and adj = total % 2."""
    _require_channels_first(n)
    attrs = _window(n, n.p.kernel)
    adj = list(getattr(n.p, "adj", ()) or ()) or [0] * len(n.p.kernel)
    target = tuple(getattr(n.p, "target_shape", ()) or ())
    if any(target):
        pads, adj = [], []
        for x, k, s, d, t in zip(n.in_shapes[0][2:], n.p.kernel, attrs["strides"],
                                 attrs["dilations"], target):
            total = s * (x - 1) + d * (k - 1) + 1 - t
            pads.append((total + 1) // 2)
            adj.append(total % 2)
        attrs["pads"] = pads + pads
    if any(adj):
        attrs["output_padding"] = adj
    ctx.op("ConvTranspose", n.inputs, n.out, group=n.p.num_group, **attrs)


# ---- pooling --------------------------------------------------------------------------------
def _full_extra(n, attrs):
    """Extra end padding that makes the 'full' convention's last window fit exactly."""
    spatial = n.in_shapes[0][2:]
    out = n.out_shapes[0][2:]
    extra = []
    for x, o, k, s, p in zip(spatial, out, attrs["kernel_shape"], attrs["strides"],
                             attrs["pads"]):
        extra.append(max(0, (o - 1) * s + k - (x + 2 * p)))
    return extra


def _global_pool(ctx, n):
    if n.p.pool_type == "max":
        return ctx.op("GlobalMaxPool", [n.x], n.out)
    if n.p.pool_type == "avg":
        return ctx.op("GlobalAveragePool", [n.x], n.out)
    if n.p.pool_type == "sum":
        return ctx.reduce("ReduceSum", n.x, list(range(2, n.rank)), True, n.out)
    return n.reject("pool_type", "global lp pooling is not exported")


@exporter("Pooling")
def pooling(ctx, n):
    _require_channels_first(n)
    if n.p.global_pool:
        return _global_pool(ctx, n)
    n.require(n.p.pooling_convention in ("valid", "full"), "pooling_convention",
              "ONNX pools have floor and ceil modes only")
    attrs = _window(n, n.p.kernel)
    del attrs["dilations"]
    full = n.p.pooling_convention == "full"
    dims = len(attrs["kernel_shape"])
    if n.p.pool_type == "avg":
        return _avg_pool(ctx, n, attrs, full)
    if full:  # max and sum: explicit end padding; padding never wins a max nor adds to a sum
        extra = _full_extra(n, {**attrs, "pads": attrs["pads"][:dims]})
        attrs["pads"] = attrs["pads"][:dims] + [p + e for p, e in
                                                zip(attrs["pads"][dims:], extra)]
        n.require(all(p < k for p, k in zip(attrs["pads"][dims:], attrs["kernel_shape"])),
                  "pooling_convention", "the last 'full' window lies wholly in the padding")
    if n.p.pool_type == "max":
        return ctx.op("MaxPool", [n.x], n.out, **attrs)
    if n.p.pool_type == "sum":  # every window is whole once padding counts: mean * size
        mean = ctx.op("AveragePool", [n.x], count_include_pad=1, **attrs)
        size = int(np.prod(attrs["kernel_shape"]))
        return ctx.op("Mul", [mean, ctx.scalar_like(size, n.dtype)], n.out)
    return n.reject("pool_type", "only max, avg and sum pooling are exported")


def _avg_pool(ctx, n, attrs, full):
    """avg: MXNet clips the divisor at the padded edge, as ONNX's ceil mode does; ONNX drops a
    last window that would start inside the end padding, MXNet keeps it."""
    include_pad = n.p.count_include_pad in (None, True)
    if full:
        dims = len(attrs["kernel_shape"])
        for x, o, s, p in zip(n.in_shapes[0][2:], n.out_shapes[0][2:], attrs["strides"],
                              attrs["pads"][:dims]):
            n.require((o - 1) * s < x + p, "pooling_convention",
                      "the last 'full' window starts in the padding, which ONNX drops")
    ctx.op("AveragePool", [n.x], n.out, count_include_pad=int(include_pad),
           ceil_mode=int(full), **attrs)


# ---- normalization ------------------------------------------------------------------------------
@exporter("BatchNorm")
def batch_norm(ctx, n):
    """Inference form: the moving statistics; fix_gamma means a scale of ones. ONNX
    normalizes axis 1, so another axis is moved there and back. With output_mean_var the
    extra outputs are what inference gives: the moving mean and 1/sqrt(moving_var + eps)."""
    data, gamma, beta, mean, var = n.inputs
    if n.p.output_mean_var:
        ctx.op("Identity", [mean], n.outputs[1])
        shifted = ctx.op("Add", [var, ctx.scalar_like(n.p.eps, n.in_dtypes[4])])
        ctx.op("Reciprocal", [ctx.op("Sqrt", [shifted])], n.outputs[2])
    if n.p.fix_gamma:
        gamma = ctx.const(np.ones(n.in_shapes[1]), n.in_dtypes[1], "ones")
    axis = n.axis(n.p.axis)
    if axis == 1:
        ctx.op("BatchNormalization", [data, gamma, beta, mean, var], n.out,
               epsilon=float(n.p.eps))
        return
    perm = list(range(n.rank))
    perm[1], perm[axis] = perm[axis], perm[1]
    moved = ctx.op("Transpose", [data], perm=perm)
    normed = ctx.op("BatchNormalization", [moved, gamma, beta, mean, var],
                    epsilon=float(n.p.eps))
    ctx.op("Transpose", [normed], n.out, perm=perm)


@exporter("InstanceNorm")
def instance_norm(ctx, n):
    ctx.op("InstanceNormalization", n.inputs, n.out, epsilon=float(n.p.eps))


def _along(ctx, n, x, axis):
    """A 1-D per-channel tensor reshaped to broadcast along ``axis`` of the data."""
    shape = [1] * n.rank
    shape[axis] = n.in_shapes[0][axis]
    return ctx.reshape(x, shape)


@exporter("LayerNorm")
def layer_norm(ctx, n):
    """One axis; ONNX's LayerNormalization (opset 17) normalizes from an axis to the end, so
    it serves the last axis, and other axes are written out. With output_mean_var the
    extra outputs are the mean and sqrt(var + eps), the axis kept as 1."""
    axis = n.axis(n.p.axis)
    data, gamma, beta = n.inputs
    stats = bool(getattr(n.p, "output_mean_var", False))
    if axis == n.rank - 1 and ctx.opset >= 17 and not stats:
        ctx.op("LayerNormalization", [data, gamma, beta], n.out, axis=-1,
               epsilon=float(n.p.eps))
        return
    mean = ctx.reduce("ReduceMean", data, [axis], True, n.outputs[1] if stats else None)
    centred = ctx.op("Sub", [data, mean])
    var = ctx.reduce("ReduceMean", ctx.op("Mul", [centred, centred]), [axis], True)
    std = ctx.op("Sqrt", [ctx.op("Add", [var, ctx.scalar_like(n.p.eps, n.dtype)])],
                 n.outputs[2] if stats else None)
    scaled = ctx.op("Mul", [ctx.op("Div", [centred, std]), _along(ctx, n, gamma, axis)])
    ctx.op("Add", [scaled, _along(ctx, n, beta, axis)], n.out)


L2_AXES = {"instance": lambda rank: range(1, rank), "channel": lambda rank: [1],
           "spatial": lambda rank: range(2, rank)}


@exporter("L2Normalization")
def l2_normalization(ctx, n):
    n.require(n.p.mode in L2_AXES, "mode", "instance, channel or spatial")
    axes = list(L2_AXES[n.p.mode](n.rank))
    total = ctx.reduce("ReduceSumSquare", n.x, axes, True)
    norm = ctx.op("Sqrt", [ctx.op("Add", [total, ctx.scalar_like(n.p.eps, n.dtype)])])
    ctx.op("Div", [n.x, norm], n.out)


@exporter("LRN")
def lrn(ctx, n):
    """ONNX LRN (4-D, odd size: the same centred window); otherwise the window sum over
    channels [c - nsize//2, c - nsize//2 + nsize) is a padded average pool times nsize."""
    size = int(n.p.nsize)
    if n.rank == 4 and size % 2:
        ctx.op("LRN", [n.x], n.out, size=size, alpha=float(n.p.alpha), beta=float(n.p.beta),
               bias=float(n.p.knorm))
        return
    shape = n.in_shapes[0]
    rows = (shape[0], 1, shape[1], int(np.prod(shape[2:], dtype=np.int64)))
    dyn = tuple(n.in_dyn[0][:1]) + (False, False, any(n.in_dyn[0][2:]))
    square = ctx.reshape(ctx.op("Mul", [n.x, n.x]), rows, dyn)
    before = size // 2
    mean = ctx.op("AveragePool", [square], kernel_shape=[size, 1], strides=[1, 1],
                  pads=[before, 0, size - 1 - before, 0], count_include_pad=1)
    sums = ctx.reshape(mean, shape, n.in_dyn[0])
    scale = ctx.scalar_like(float(n.p.alpha), n.dtype)  # alpha / nsize * (mean * nsize)
    norm = ctx.op("Add", [ctx.op("Mul", [sums, scale]), ctx.scalar_like(n.p.knorm, n.dtype)])
    power = ctx.op("Pow", [norm, ctx.scalar_like(-float(n.p.beta), n.dtype)])
    ctx.op("Mul", [n.x, power], n.out)


def _scale_hw(scale) -> tuple[int, int]:
    """MXNet's scale: one int for both axes, (h, w), or an NCHW 4-tuple."""
    if isinstance(scale, int):
        return scale, scale
    scale = tuple(int(s) for s in scale)
    return (scale[0], scale[0]) if len(scale) == 1 else scale[-2:]


@exporter("UpSampling")
def upsampling(ctx, n):
    scale_h, scale_w = _scale_hw(n.p.scale)
    if n.p.sample_type == "nearest":
        return _nearest(ctx, n, (scale_h, scale_w))
    n.require(scale_h == scale_w, "scale", "bilinear upsampling has one scale")
    scale = scale_h
    n.require(n.p.sample_type == "bilinear", "sample_type", "nearest or bilinear")
    kernel = 2 * scale - scale % 2
    pad = scale // 2  # ceil((scale - 1) / 2)
    ctx.op("ConvTranspose", n.inputs[:2], n.out, group=int(n.p.num_filter),
           kernel_shape=[kernel, kernel], strides=[scale, scale], pads=[pad] * 4)


def _nearest(ctx, n, scale: tuple):
    """Each input is repeated up to the first input's size times scale; several inputs are
    then concatenated on the channels (or summed)."""
    target = [d * s for d, s in zip(n.in_shapes[0][2:], scale)]
    parts = []
    for x, shape in zip(n.inputs, n.in_shapes):
        factors = [float(t // d) for t, d in zip(target, shape[2:])]
        scales = ctx.const([1.0, 1.0] + factors, np.float32, "scales")
        single = len(n.inputs) == 1
        parts.append(ctx.op("Resize", [x, "", scales], n.out if single else None,
                            mode="nearest", coordinate_transformation_mode="asymmetric",
                            nearest_mode="floor"))
    if len(parts) == 1:
        return
    if n.p.multi_input_mode == "sum":
        ctx.op("Sum", parts, n.out)
    else:
        ctx.op("Concat", parts, n.out, axis=1)


# ---- softmax and the loss heads --------------------------------------------------------------
def _tempered(ctx, n):
    t = getattr(n.p, "temperature", None)
    if t is None or float(t) == 1.0:
        return n.x
    return ctx.op("Div", [n.x, ctx.scalar_like(t, n.in_dtypes[0])])


def _softmax_family(onnx_type):
    def convert(ctx, n):
        n.require(not n.p.use_length, "use_length", "masked softmax is not exported")
        x = _tempered(ctx, n)
        same = np.dtype(n.dtype) == np.dtype(n.in_dtypes[0])
        y = ctx.op(onnx_type, [x], n.out if same else None, axis=n.axis(n.p.axis))
        if not same:
            ctx.cast(y, n.dtype, n.out)

    return convert


exporter("softmax")(_softmax_family("Softmax"))
exporter("log_softmax")(_softmax_family("LogSoftmax"))


@exporter("SoftmaxOutput", drops=(1,))
def softmax_output(ctx, n):
    """The prediction only: per row of the (d0, rest) view, over the last axis with
    preserve_shape, over axis 1 with multi_output."""
    if n.p.multi_output:
        ctx.op("Softmax", [n.x], n.out, axis=1)
    elif n.p.preserve_shape or n.rank == 2:
        ctx.op("Softmax", [n.x], n.out, axis=n.rank - 1)
    else:
        rows = ctx.op("Softmax", [ctx.op("Flatten", [n.x], axis=1)], axis=1)
        ctx.op("Reshape", [rows, ctx.op("Shape", [n.x])], n.out)


exporter("LinearRegressionOutput", "MAERegressionOutput", drops=(1,))(
    lambda ctx, n: ctx.op("Identity", [n.x], n.out))
exporter("LogisticRegressionOutput", drops=(1,))(
    lambda ctx, n: ctx.op("Sigmoid", [n.x], n.out))


@exporter("softmax_cross_entropy")
def softmax_cross_entropy(ctx, n):
    """-sum over the batch of log softmax(data)[label], shape (1,); labels clipped."""
    data, label = n.inputs
    classes = n.in_shapes[0][1]
    low, high = ctx.scalar_like(0, n.in_dtypes[1]), ctx.scalar_like(classes - 1, n.in_dtypes[1])
    index = ctx.cast(ctx.op("Clip", [label, low, high]), np.int64)
    logp = ctx.op("LogSoftmax", [data], axis=1)
    picked = ctx.op("GatherElements", [logp, ctx.unsqueeze(index, [1])], axis=1)
    total = ctx.reduce("ReduceSum", picked, None, False)
    ctx.reshape(ctx.op("Neg", [total]), (1,), outputs=n.out)


@exporter("Dropout")
def dropout(ctx, n):
    """Inference is the identity; mode='always' drops at inference too, which no fixed graph
    reproduces."""
    n.require(n.p.mode == "training", "mode", "mode='always' samples a mask at inference")
    ctx.op("Identity", [n.x], n.out)
