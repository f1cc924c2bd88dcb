"""Import entries: one function per ONNX op type, building symgraph ops.

Each entry is ``fn(ic, node, attrs) -> [Symbol per output]`` (``None`` for an output that
is only tracked, such as ``Shape``). The set covers what the exporter writes and the
common forms of the same ops in other producers' files; anything else is a clear error.
"""

from __future__ import annotations

import numpy as np

from runtime.onnx.errors import OnnxError
from runtime.onnx.table import importer

INT_BIG = 2 ** 62


def _scalar(ic, name, other=None):
    """The Python float of a one-element constant (that does not raise the rank of
    ``other`` by broadcasting), else None."""
    if not (ic.is_const(name) and ic.consts[name].size == 1):
        return None
    if other is not None and ic.consts[name].ndim > ic.ranks.get(other, 0):
        return None
    return float(ic.consts[name].reshape(()))


def _ints(values):
    return tuple(int(v) for v in values)


# ---- unary -----------------------------------------------------------------------------------
UNARY = {"Neg": "negative", "Abs": "abs", "Exp": "exp", "Log": "log", "Sqrt": "sqrt",
         "Reciprocal": "reciprocal", "Sign": "sign", "Floor": "floor", "Ceil": "ceil",
         "Identity": "_copy", "Dropout": "_copy"}
ACTIVATION = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Softplus": "softrelu",
              "Softsign": "softsign"}


def _unary(op):
    return lambda ic, node, attrs: [ic.op(op, ic.sym(node.input[0]))]


for _onnx_type, _op in UNARY.items():
    importer(_onnx_type)(_unary(_op))
for _onnx_type, _act in ACTIVATION.items():
    importer(_onnx_type)(lambda ic, node, attrs, act=_act: [
        ic.op("Activation", ic.sym(node.input[0]), act_type=act)])


@importer("LeakyRelu")
def leaky_relu(ic, node, attrs):
    return [ic.op("LeakyReLU", ic.sym(node.input[0]), act_type="leaky",
                  slope=attrs.get("alpha", 0.01))]


@importer("Elu")
def elu(ic, node, attrs):
    return [ic.op("LeakyReLU", ic.sym(node.input[0]), act_type="elu",
                  slope=attrs.get("alpha", 1.0))]


@importer("Selu")
def selu(ic, node, attrs):
    alpha, gamma = attrs.get("alpha", 1.67326319217681884765625), attrs.get(
        "gamma", 1.05070102214813232421875)
    if abs(alpha - 1.6732632) > 1e-6 or abs(gamma - 1.0507010) > 1e-6:
        ic.reject("alpha", alpha, "symgraph's selu has the standard constants only")
    return [ic.op("LeakyReLU", ic.sym(node.input[0]), act_type="selu")]


@importer("Gelu")
def gelu(ic, node, attrs):
    if attrs.get("approximate", "none") != "tanh":
        ic.reject("approximate", attrs.get("approximate", "none"),
                  "symgraph's gelu is the tanh approximation")
    return [ic.op("LeakyReLU", ic.sym(node.input[0]), act_type="gelu")]


@importer("Softmax", "LogSoftmax")
def softmax(ic, node, attrs):
    """Before opset 13 the axis splits the input into 2-D rows (default 1): softmax over
    everything from the axis on, which is a reshape around a last-axis softmax."""
    op = "softmax" if node.op_type == "Softmax" else "log_softmax"
    x = node.input[0]
    if ic.opset >= 13:
        return [ic.op(op, ic.sym(x), axis=attrs.get("axis", -1))]
    rank = ic.rank(x)
    axis = attrs.get("axis", 1)
    axis = axis + rank if axis < 0 else axis
    if axis == rank - 1:
        return [ic.op(op, ic.sym(x), axis=-1)]
    base = ic.name()
    rows = ic.op("Reshape", ic.sym(x), shape=(0,) * axis + (-1,), name=base + "_rows")
    return [ic.op("reshape_like", ic.op(op, rows, axis=-1, name=base + "_" + op),
                  ic.sym(x), name=base)]


# ---- binary (a one-element constant side gives MXNet's scalar op) ----------------------------
BINARY = {"Add": ("broadcast_add", "_plus_scalar", "_plus_scalar"),
          "Sub": ("broadcast_sub", "_minus_scalar", "_rminus_scalar"),
          "Mul": ("broadcast_mul", "_mul_scalar", "_mul_scalar"),
          "Div": ("broadcast_div", "_div_scalar", "_rdiv_scalar"),
          "Pow": ("broadcast_power", "_power_scalar", "_rpower_scalar"),
          "Max": ("broadcast_maximum", "_maximum_scalar", "_maximum_scalar"),
          "Min": ("broadcast_minimum", "_minimum_scalar", "_minimum_scalar"),
          "Equal": ("broadcast_equal", "_equal_scalar", "_equal_scalar"),
          "Greater": ("broadcast_greater", "_greater_scalar", "_lesser_scalar"),
          "GreaterOrEqual": ("broadcast_greater_equal", "_greater_equal_scalar",
                             "_lesser_equal_scalar"),
          "Less": ("broadcast_lesser", "_lesser_scalar", "_greater_scalar"),
          "LessOrEqual": ("broadcast_lesser_equal", "_lesser_equal_scalar",
                          "_greater_equal_scalar")}
COMPARISONS = ("Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual")


def _binary(ic, node, a_name, b_name, ops):
    tensor_op, scalar_op, reversed_op = ops
    b = _scalar(ic, b_name, a_name)
    if b is not None:
        return ic.op(scalar_op, ic.sym(a_name), scalar=b)
    a = _scalar(ic, a_name, b_name)
    if a is not None:
        return ic.op(reversed_op, ic.sym(b_name), scalar=a)
    return ic.op(tensor_op, ic.sym(a_name), ic.sym(b_name))


def _binary_entry(onnx_type):
    def convert(ic, node, attrs):
        names = list(node.input)
        if len(names) == 1:
            return [ic.op("_copy", ic.sym(names[0]))]
        if len(names) > 2:  # variadic Max/Min
            ic.fail(f"{len(names)} inputs; symgraph's {onnx_type} takes two")
        out = _binary(ic, node, names[0], names[1], BINARY[onnx_type])
        if onnx_type in COMPARISONS:
            ic.kind[node.output[0]] = "bool"
        return [out]

    return convert


for _onnx_type in BINARY:
    importer(_onnx_type)(_binary_entry(_onnx_type))


@importer("Sum")
def sum_(ic, node, attrs):
    parts = [ic.sym(n) for n in node.input]
    return [parts[0] if len(parts) == 1 else ic.op("add_n", *parts)]


@importer("Not")
def not_(ic, node, attrs):
    ic.kind[node.output[0]] = "bool"
    return [ic.op("_rminus_scalar", ic.sym(node.input[0]), scalar=1.0)]


@importer("Cast")
def cast(ic, node, attrs):
    """Indices and flags stay floats in symgraph (as in MXNet): casts between them and the
    float dtype are views; a real dtype change needs the Cast op."""
    src = node.input[0]
    target = np.dtype(ic.onnx.helper.tensor_dtype_to_np_dtype(attrs["to"]))
    if target.kind in "iub":
        ic.kind[node.output[0]] = "bool" if target.kind == "b" else "index"
        return [ic.sym(src)]
    if ic.kind.get(src) in ("bool", "index") and target == np.float32:
        return [ic.sym(src)]
    if ic.dtypes.get(src) == target and not ic.is_const(src):
        return [ic.sym(src)]
    if ic.is_const(src):
        ic.consts[node.output[0]] = ic.consts[src].astype(target)
        return None
    return [ic.op("Cast", ic.sym(src), dtype=target.name)]


@importer("Clip")
def clip(ic, node, attrs):
    names = list(node.input) + ["", ""]
    low = _scalar(ic, names[1]) if names[1] else attrs.get("min", -np.inf)
    high = _scalar(ic, names[2]) if names[2] else attrs.get("max", np.inf)
    if low is None or high is None:
        ic.fail("Clip bounds must be constants")
    big = float(np.finfo(np.float32).max)
    return [ic.op("clip", ic.sym(names[0]), a_min=max(low, -big), a_max=min(high, big))]


# ---- dense, convolution, pooling ---------------------------------------------------------------
@importer("Gemm")
def gemm(ic, node, attrs):
    a, b = node.input[0], node.input[1]
    c = node.input[2] if len(node.input) > 2 and node.input[2] else None
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    trans_a, trans_b = attrs.get("transA", 0), attrs.get("transB", 0)
    if trans_b and not trans_a and alpha == 1.0 and beta == 1.0 and ic.rank(b) == 2:
        hidden = ic.shape(b)[0]
        if hidden and (c is None or ic.rank(c) == 1):
            inputs = [ic.sym(a), ic.sym(b)] + ([ic.sym(c)] if c else [])
            return [ic.op("FullyConnected", *inputs, num_hidden=hidden, no_bias=c is None)]
    base = ic.name()
    out = ic.op("dot", ic.sym(a), ic.sym(b), transpose_a=bool(trans_a),
                transpose_b=bool(trans_b), name=base if not c and alpha == 1.0 else base + "_dot")
    if alpha != 1.0:
        out = ic.op("_mul_scalar", out, scalar=alpha, name=base if not c else base + "_alpha")
    if c:
        bias = ic.sym(c)
        if beta != 1.0:
            bias = ic.op("_mul_scalar", bias, scalar=beta, name=base + "_beta")
        out = ic.op("broadcast_add", out, bias, name=base)
    return [out]


@importer("MatMul")
def matmul(ic, node, attrs):
    a, b = node.input
    ra, rb = ic.rank(a), ic.rank(b)
    if rb == 2:  # MXNet's dot contracts lhs's last axis with rhs's first
        return [ic.op("dot", ic.sym(a), ic.sym(b))]
    if ra == rb == 3:
        return [ic.op("batch_dot", ic.sym(a), ic.sym(b))]
    ic.fail(f"MatMul of ranks {ra} and {rb} has no symgraph mapping")


def _pads(ic, attrs, dims):
    """Symmetric (begin, end) pads as MXNet's pad; None when the end is larger."""
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        ic.reject("auto_pad", attrs["auto_pad"], "give explicit pads")
    pads = list(attrs.get("pads", [0] * (2 * dims)))
    return _ints(pads[:dims]), _ints(pads[dims:])


def _window(ic, attrs, kernel):
    dims = len(kernel)
    begin, end = _pads(ic, attrs, dims)
    return {"kernel": _ints(kernel), "stride": _ints(attrs.get("strides", [1] * dims)),
            "pad": begin}, end


@importer("Conv", "ConvTranspose")
def conv(ic, node, attrs):
    weight = node.input[1]
    w_shape = ic.shape(weight)
    kernel = attrs.get("kernel_shape") or w_shape[2:]
    window, end = _window(ic, attrs, kernel)
    if end != window["pad"]:
        ic.reject("pads", attrs.get("pads"), "symgraph pads both sides alike")
    group = attrs.get("group", 1)
    has_bias = len(node.input) > 2 and bool(node.input[2])
    inputs = [ic.sym(n) for n in node.input if n]
    window["dilate"] = _ints(attrs.get("dilations", [1] * len(kernel)))
    if node.op_type == "Conv":
        return [ic.op("Convolution", *inputs, num_filter=w_shape[0], num_group=group,
                      no_bias=not has_bias, **window)]
    adj = attrs.get("output_padding")
    if attrs.get("output_shape"):
        ic.reject("output_shape", attrs["output_shape"], "give pads/output_padding")
    return [ic.op("Deconvolution", *inputs, num_filter=w_shape[1] * group, num_group=group,
                  no_bias=not has_bias, adj=_ints(adj) if adj else None, **window)]


def _pool_convention(ic, node, window, end, ceil_mode):
    """'full' when ceil mode or the end padding only lets MXNet's ceil-rounded last window
    fit; the sizes must then agree with ONNX's."""
    if end == window["pad"]:
        return "full" if ceil_mode else "valid"
    spatial = ic.shape(node.input[0])[2:]
    for x, k, s, p, e in zip(spatial, window["kernel"], window["stride"], window["pad"], end):
        if x is None or e < p:
            ic.reject("pads", list(window["pad"]) + list(end), "symmetric pads only")
        onnx_out = (x + p + e - k) // s + 1
        mxnet_full = -(-(x + 2 * p - k) // s) + 1
        if e != p and onnx_out != mxnet_full:
            ic.reject("pads", list(window["pad"]) + list(end), "symmetric pads only")
    return "full"


def _explicit_pad(ic, node, window, end, value):
    """Asymmetric pads as a Pad node before a pad-free pool."""
    rank = ic.rank(node.input[0])
    width = (0, 0, 0, 0) + tuple(v for pair in zip(window["pad"], end) for v in pair)
    if rank != 4:
        ic.reject("pads", list(window["pad"]) + list(end), "asymmetric pads on 4-D data only")
    base = ic.name()
    padded = ic.op("Pad", ic.sym(node.input[0]), mode="constant", pad_width=width,
                   constant_value=value, name=base + "_pad")
    return padded, {**window, "pad": (0,) * len(end)}, base


@importer("MaxPool", "AveragePool")
def pool(ic, node, attrs):
    window, end = _window(ic, attrs, attrs["kernel_shape"])
    if any(d != 1 for d in attrs.get("dilations", [])):
        ic.reject("dilations", attrs["dilations"], "pooling windows are dense")
    is_max = node.op_type == "MaxPool"
    if is_max and len(node.output) > 1 and node.output[1]:
        ic.fail("the Indices output is not supported")
    include = bool(attrs.get("count_include_pad", 0))
    data, name = ic.sym(node.input[0]), None
    try:
        if include and not is_max and end != window["pad"]:
            raise OnnxError("counted asymmetric pads")  # MXNet's 'full' clips the divisor
        convention = _pool_convention(ic, node, window, end, attrs.get("ceil_mode", 0))
    except OnnxError:
        if attrs.get("ceil_mode", 0) or not (is_max or include):
            raise
        # explicit pads: every window lies inside the padded input, and padding
        # never wins a max and counts as zeros in an average that includes it
        data, window, name = _explicit_pad(ic, node, window, end,
                                           float("-inf") if is_max else 0.0)
        convention = "valid"
    kind = {"pool_type": "max"} if is_max else {"pool_type": "avg",
                                                 "count_include_pad": include}
    return [ic.op("Pooling", data, pooling_convention=convention, name=name, **kind,
                  **window)]


@importer("GlobalMaxPool", "GlobalAveragePool")
def global_pool(ic, node, attrs):
    kind = "max" if node.op_type == "GlobalMaxPool" else "avg"
    return [ic.op("Pooling", ic.sym(node.input[0]), pool_type=kind, global_pool=True,
                  kernel=(1, 1))]


# ---- normalization -----------------------------------------------------------------------------
@importer("BatchNormalization")
def batch_norm(ic, node, attrs):
    if attrs.get("training_mode", 0):
        ic.reject("training_mode", 1, "only the inference form is imported")
    inputs = [ic.sym(n) for n in node.input[:5]]
    return [ic.op("BatchNorm", *inputs, eps=attrs.get("epsilon", 1e-5), fix_gamma=False,
                  use_global_stats=True)]


@importer("InstanceNormalization")
def instance_norm(ic, node, attrs):
    inputs = [ic.sym(n) for n in node.input]
    return [ic.op("InstanceNorm", *inputs, eps=attrs.get("epsilon", 1e-5))]


@importer("LayerNormalization")
def layer_norm(ic, node, attrs):
    axis = attrs.get("axis", -1)
    if axis not in (-1, ic.rank(node.input[0]) - 1):
        ic.reject("axis", axis, "symgraph's LayerNorm normalizes one axis")
    if len(node.input) < 3 or not node.input[2]:
        ic.fail("LayerNormalization without a bias is not supported")
    inputs = [ic.sym(n) for n in node.input[:3]]
    return [ic.op("LayerNorm", *inputs, axis=-1, eps=attrs.get("epsilon", 1e-5))]


@importer("LRN")
def lrn(ic, node, attrs):
    return [ic.op("LRN", ic.sym(node.input[0]), nsize=attrs["size"],
                  alpha=attrs.get("alpha", 1e-4), beta=attrs.get("beta", 0.75),
                  knorm=attrs.get("bias", 1.0))]


# ---- layout and indexing ---------------------------------------------------------------------
@importer("Flatten")
def flatten(ic, node, attrs):
    if attrs.get("axis", 1) != 1:
        ic.reject("axis", attrs["axis"], "MXNet's Flatten keeps axis 0 only")
    return [ic.op("Flatten", ic.sym(node.input[0]))]


@importer("Reshape")
def reshape(ic, node, attrs):
    x, target = node.input
    if target in ic.shape_of:
        return [ic.op("reshape_like", ic.sym(x), ic.shape_of[target])]
    if attrs.get("allowzero", 0):
        ic.reject("allowzero", 1, "0 in a shape copies the input dim in MXNet")
    return [ic.op("Reshape", ic.sym(x), shape=_ints(ic.const(target, "shape")))]


@importer("Shape")
def shape(ic, node, attrs):
    if attrs.get("start", 0) or attrs.get("end") is not None:
        ic.reject("start", attrs.get("start"), "partial shapes")
    ic.shape_of[node.output[0]] = ic.sym(node.input[0])
    return None


@importer("ConstantOfShape")
def constant_of_shape(ic, node, attrs):
    source = node.input[0]
    if source not in ic.shape_of:
        ic.fail("only the shape of a tensor (Shape(x)) is supported as the shape")
    value = ic.onnx.numpy_helper.to_array(attrs["value"]).reshape(-1)[0] if "value" in attrs \
        else 0.0
    like = ic.shape_of[source]
    ic.filled[node.output[0]] = float(value)
    if value == 1.0:
        return [ic.op("ones_like", like)]
    base = ic.name()
    if value == 0.0:
        return [ic.op("zeros_like", like, name=base)]
    zeros = ic.op("zeros_like", like, name=base + "_zeros")
    return [ic.op("_plus_scalar", zeros, scalar=float(value), name=base)]


@importer("Expand")
def expand(ic, node, attrs):
    x, target = node.input
    if target in ic.shape_of:
        return [ic.op("broadcast_like", ic.sym(x), ic.shape_of[target])]
    shape_ = _ints(ic.const(target, "shape"))
    rank = ic.rank(x)
    if len(shape_) != rank:
        ic.fail(f"Expand from rank {rank} to {len(shape_)} is not supported")
    dims = ic.shape(x)
    keep = tuple(0 if (s == 1 or (d is not None and s == d)) else s
                 for s, d in zip(shape_, dims or (None,) * rank))
    return [ic.op("broadcast_to", ic.sym(x), shape=keep)]


@importer("Transpose")
def transpose(ic, node, attrs):
    perm = attrs.get("perm")
    return [ic.op("transpose", ic.sym(node.input[0]), axes=_ints(perm) if perm else None)]


def _axes_of(ic, node, attrs, position=1):
    if "axes" in attrs:
        return _ints(attrs["axes"])
    if len(node.input) > position and node.input[position]:
        return _ints(ic.const(node.input[position], "axes"))
    return None


@importer("Unsqueeze")
def unsqueeze(ic, node, attrs):
    axes = _axes_of(ic, node, attrs)
    rank = ic.rank(node.input[0]) + len(axes)
    out, base = ic.sym(node.input[0]), ic.name()
    for k, axis in enumerate(sorted(a + rank if a < 0 else a for a in axes)):
        last = k == len(axes) - 1
        out = ic.op("expand_dims", out, axis=axis, name=base if last else f"{base}_{k}")
    return [out]


@importer("Squeeze")
def squeeze(ic, node, attrs):
    axes = _axes_of(ic, node, attrs)
    return [ic.op("squeeze", ic.sym(node.input[0]), axis=axes)]


@importer("Concat")
def concat(ic, node, attrs):
    parts = [ic.sym(n) for n in node.input]
    return [ic.op("Concat", *parts, dim=attrs["axis"])]


@importer("Split")
def split(ic, node, attrs):
    x = node.input[0]
    axis = attrs.get("axis", 0)
    count = len(node.output)
    if len(node.input) > 1 and node.input[1]:
        sizes = _ints(ic.const(node.input[1], "split"))
    elif "split" in attrs:
        sizes = _ints(attrs["split"])
    else:
        sizes = None
    if sizes is None or len(set(sizes)) == 1:
        parts = ic.op("SliceChannel", ic.sym(x), num_outputs=count, axis=axis)
        return list(parts) if count > 1 else [parts]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return [ic.op("slice_axis", ic.sym(x), axis=axis, begin=int(b), end=int(b + s),
                  name=ic.name(k)) for k, (b, s) in enumerate(zip(starts, sizes))]


@importer("Slice")
def slice_(ic, node, attrs):
    starts = _ints(ic.const(node.input[1], "starts"))
    ends = _ints(ic.const(node.input[2], "ends"))
    rank = ic.rank(node.input[0])
    axes = _ints(ic.const(node.input[3], "axes")) if len(node.input) > 3 and node.input[3] \
        else tuple(range(len(starts)))
    steps = _ints(ic.const(node.input[4], "steps")) if len(node.input) > 4 and node.input[4] \
        else (1,) * len(starts)
    if any(s != 1 for s in steps):
        begin, end, step = [None] * rank, [None] * rank, [1] * rank
        for a, b, e, s in zip(axes, starts, ends, steps):
            a = a + rank if a < 0 else a
            begin[a], step[a] = (None if abs(b) >= INT_BIG else b), s
            end[a] = None if abs(e) >= INT_BIG else e
        return [ic.op("slice", ic.sym(node.input[0]), begin=tuple(begin), end=tuple(end),
                      step=tuple(step))]
    out, base = ic.sym(node.input[0]), ic.name()
    for k, (a, b, e) in enumerate(zip(axes, starts, ends)):
        last = k == len(axes) - 1
        out = ic.op("slice_axis", out, axis=a, begin=b, end=None if e >= INT_BIG else e,
                    name=base if last else f"{base}_{k}")
    return [out]


@importer("Gather")
def gather(ic, node, attrs):
    data, indices = node.input
    axis = attrs.get("axis", 0)
    if ic.kind.get(indices) != "index" and not ic.is_const(indices):
        ic.fail(f"indices '{indices}' must come from a Cast of float indices")
    index = ic.sym(indices)
    dims = ic.shape(data)
    if axis == 0 and len(dims) == 2 and None not in dims:  # a row lookup: Embedding
        return [ic.op("Embedding", index, ic.sym(data), input_dim=dims[0], output_dim=dims[1])]
    return [ic.op("take", ic.sym(data), index, axis=axis)]


@importer("GatherElements")
def gather_elements(ic, node, attrs):
    return [ic.op("pick", ic.sym(node.input[0]), ic.sym(node.input[1]),
                  axis=attrs.get("axis", 0), keepdims=True)]


@importer("Where")
def where(ic, node, attrs):
    """ONNX broadcasts the three inputs; symgraph's where wants them alike (or a 1-D
    condition), so a smaller one is broadcast to the output first."""
    out_shape = ic.shape(node.output[0])
    base = ic.name()
    parts = []
    for k, name in enumerate(node.input):
        value = ic.sym(name)
        if ic.shape(name) != out_shape:
            like = ic.sym(node.input[1] if k != 1 else node.input[2])
            value = ic.op("broadcast_like", value, like, name=f"{base}_in{k}")
        parts.append(value)
    return [ic.op("where", *parts, name=base)]


@importer("Tile")
def tile(ic, node, attrs):
    return [ic.op("tile", ic.sym(node.input[0]), reps=_ints(ic.const(node.input[1], "repeats")))]


@importer("Pad")
def pad(ic, node, attrs):
    """pads and the value are inputs from opset 11, attributes before."""
    if len(node.input) > 1 and node.input[1]:
        pads = _ints(ic.const(node.input[1], "pads"))
        value = _scalar(ic, node.input[2]) if len(node.input) > 2 and node.input[2] else 0.0
    else:
        pads, value = _ints(attrs["pads"]), float(attrs.get("value", 0.0))
    if len(node.input) > 3 and node.input[3]:
        ic.fail("Pad with an axes input is not supported")
    half = len(pads) // 2
    width = tuple(v for pair in zip(pads[:half], pads[half:]) for v in pair)
    return [ic.op("Pad", ic.sym(node.input[0]), mode=attrs.get("mode", "constant"),
                  pad_width=width, constant_value=value)]


# ---- reductions and index ops ------------------------------------------------------------------
REDUCE = {"ReduceSum": "sum", "ReduceMean": "mean", "ReduceMax": "max", "ReduceMin": "min",
          "ReduceProd": "prod"}


def _reduce_axes(ic, node, attrs):
    axes = _axes_of(ic, node, attrs)
    if axes is None and attrs.get("noop_with_empty_axes", 0):
        ic.reject("noop_with_empty_axes", 1, "an empty axes list reduces everything")
    return axes


@importer(*REDUCE)
def reduce(ic, node, attrs):
    axes = _reduce_axes(ic, node, attrs)
    return [ic.op(REDUCE[node.op_type], ic.sym(node.input[0]), axis=axes,
                  keepdims=bool(attrs.get("keepdims", 1)))]


@importer("ReduceSumSquare")
def reduce_sum_square(ic, node, attrs):
    axes = _reduce_axes(ic, node, attrs)
    base = ic.name()
    squared = ic.op("square", ic.sym(node.input[0]), name=base + "_square")
    return [ic.op("sum", squared, axis=axes, keepdims=bool(attrs.get("keepdims", 1)),
                  name=base)]


@importer("ArgMax", "ArgMin")
def arg_extremum(ic, node, attrs):
    if attrs.get("select_last_index", 0):
        ic.reject("select_last_index", 1, "MXNet returns the first extremum")
    ic.kind[node.output[0]] = "index"
    op = "argmax" if node.op_type == "ArgMax" else "argmin"
    return [ic.op(op, ic.sym(node.input[0]), axis=attrs.get("axis", 0),
                  keepdims=bool(attrs.get("keepdims", 1)))]


@importer("OneHot")
def one_hot(ic, node, attrs):
    indices, depth, values = node.input
    if attrs.get("axis", -1) not in (-1, ic.rank(indices)):
        ic.reject("axis", attrs["axis"], "MXNet's one_hot appends the class axis")
    off, on = (float(v) for v in ic.const(values, "values").reshape(-1))
    return [ic.op("one_hot", ic.sym(indices), depth=int(ic.const(depth).reshape(-1)[0]),
                  on_value=on, off_value=off)]


@importer("Resize")
def resize(ic, node, attrs):
    if attrs.get("mode", "nearest") != "nearest":
        ic.reject("mode", attrs.get("mode"), "nearest only")
    scales = [float(v) for v in ic.const(node.input[2], "scales").reshape(-1)]
    if len(scales) < 3 or scales[:2] != [1.0, 1.0] or any(v != int(v) for v in scales):
        ic.fail(f"scales {scales} must be (1, 1, then whole numbers)")
    if len(set(scales[2:])) == 1 and len(scales) == 4:
        return [ic.op("UpSampling", ic.sym(node.input[0]), scale=int(scales[2]),
                      sample_type="nearest", num_args=1)]
    out, base = ic.sym(node.input[0]), ic.name()  # unequal factors: repeat each axis
    steps = [(axis, int(f)) for axis, f in enumerate(scales) if f != 1.0]
    for k, (axis, factor) in enumerate(steps):
        last = k == len(steps) - 1
        out = ic.op("repeat", out, repeats=factor, axis=axis,
                    name=base if last else f"{base}_{k}")
    return [out]


# ---- sorting ------------------------------------------------------------------------------------
@importer("TopK")
def top_k(ic, node, attrs):
    """Both outputs (values, float indices); a mask scattered from them is rebuilt as
    topk's ret_typ='mask' (see ScatterElements)."""
    if not attrs.get("sorted", 1):
        ic.reject("sorted", 0, "MXNet's topk is sorted")
    k = int(ic.const(node.input[1], "K").reshape(-1)[0])
    axis = attrs.get("axis", -1)
    ascend = not attrs.get("largest", 1)
    ic.kind[node.output[1]] = "index"
    ic.topk_of[node.output[1]] = (node.input[0], k, axis, ascend)
    both = ic.op("topk", ic.sym(node.input[0]), k=k, axis=axis, ret_typ="both",
                 is_ascend=ascend)
    return list(both)


@importer("ScatterElements")
def scatter_elements(ic, node, attrs):
    data, indices, updates = node.input
    source = ic.topk_of.get(indices)
    if source is None or data not in ic.filled or ic.filled[data] != 0.0 or \
            ic.filled.get(updates) != 1.0:
        ic.fail("only the 0/1 mask of a TopK's indices is supported")
    x, k, axis, ascend = source
    return [ic.op("topk", ic.sym(x), k=k, axis=axis, ret_typ="mask", is_ascend=ascend)]
