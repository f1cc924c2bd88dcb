"""One table of op cases: every user-facing registered op, with shapes and valid inputs.

Each :class:`OpCase` says how to build a small symbol around one op, the shape of each
input as a function of three distinct dims ``(a, b, c)`` (non-square on purpose, so a
swapped axis shows), how to draw input values that keep finite differences meaningful
(positive for log/sqrt, away from kinks for relu/abs/max/floor, integer labels for
SoftmaxOutput/one_hot), which inputs to differentiate, and for loss ops (and BlockGrad)
the closed-form MXNet gradient ``closed_grad(values) -> {input: grad}`` to compare against
instead of finite differences.

``test_op_table.py`` checks shape inference, dtype inference and symbolic gradients
against the reference interpreter. The codegen tests import this module (put
``tests/ops`` on ``sys.path``) to compare compiled executors with
:func:`reference_forward` / :func:`reference_gradient` over the same :data:`CASES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import symgraph as sg
from symgraph.reference import evaluate

S = sg.sym
Dims = tuple  # (a, b, c): three distinct sizes


# ---- value generators: (rng, shape) -> float64 array -----------------------------------------
def normal(rng, shape):
    return rng.standard_normal(shape)


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, shape)


def away_from(*points, gap=0.1):
    """Normal values nudged at least ``gap`` away from the kinks at ``points``."""

    def gen(rng, shape):
        x = rng.standard_normal(shape)
        for point in points:
            near = np.abs(x - point) < gap
            x = np.where(near, x + np.sign(x - point + 1e-12) * 2 * gap, x)
        return x

    return gen


def fractional(rng, shape):
    """k + u, u in [0.15, 0.35]: away from integers and halves (floor/ceil/round/trunc)."""
    return rng.integers(-2, 3, shape) + rng.uniform(0.15, 0.35, shape)


def labels(count_dim: int):
    """Integer class labels in [0, dims[count_dim]) stored as floats."""

    def gen(rng, shape, dims):
        return rng.integers(0, dims[count_dim], shape).astype(np.float64)

    gen.needs_dims = True
    return gen


def apart(lhs: str, rhs: str):
    """Joint generator: lhs = broadcast(rhs) +- [0.2, 1.0], so max/min/compare have no ties."""

    def gen(rng, shapes):
        b = rng.standard_normal(shapes[rhs])
        offset = rng.choice([-1.0, 1.0], shapes[lhs]) * rng.uniform(0.2, 1.0, shapes[lhs])
        return {lhs: np.broadcast_to(b, shapes[lhs]) + offset, rhs: b}

    return gen


def mod_pair(lhs: str, rhs: str):
    """Joint generator for mod: rhs in [1, 2], lhs/rhs away from integers (fmod's kinks)."""

    def gen(rng, shapes):
        b = rng.uniform(1.0, 2.0, shapes[rhs])
        q = rng.integers(-2, 3, shapes[lhs]) + rng.uniform(0.2, 0.8, shapes[lhs])
        return {lhs: np.broadcast_to(b, shapes[lhs]) * q, rhs: b}

    return gen


# ---- the case type ---------------------------------------------------------------------------
def full(d):
    return (d[0], d[1], d[2])


def mat(d):
    return (d[0], d[1])


@dataclass(frozen=True)
class OpCase:
    """One row: ``build(*variables)`` makes the symbol; ``inputs`` are (name, shape_fn)."""

    op: str
    build: Callable
    inputs: tuple = (("data", full),)
    gens: dict = field(default_factory=dict)
    joint: Callable | None = None
    wrt: tuple | None = None
    closed_grad: Callable | None = None
    is_train: bool = False
    infer_from: tuple | None = None
    out_dtype: str | None = None
    note: str = ""

    @property
    def id(self) -> str:
        return f"{self.op}{'-' + self.note if self.note else ''}"

    def symbol(self):
        return self.build(*[S.Variable(name) for name, _ in self.inputs])

    def shapes(self, dims) -> dict:
        return {name: tuple(fn(dims)) for name, fn in self.inputs}

    def values(self, rng, dims) -> dict:
        shapes = self.shapes(dims)
        out = dict(self.joint(rng, shapes)) if self.joint else {}
        for name, shape in shapes.items():
            if name in out:
                continue
            gen = self.gens.get(name, normal)
            out[name] = gen(rng, shape, dims) if getattr(gen, "needs_dims", False) else gen(
                rng, shape)
        return {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in out.items()}

    def differentiate(self) -> tuple:
        return tuple(name for name, _ in self.inputs) if self.wrt is None else self.wrt


# ---- reference helpers shared with the codegen tests -----------------------------------------
def reference_forward(case: OpCase, symbol, values: dict, seed: int = 0) -> list:
    return evaluate(symbol.outputs, values, is_train=case.is_train, seed=seed)


def head_grads(symbol, out_shapes, rng) -> dict:
    """Random head gradients for every head that reads one (none for loss heads)."""
    from symgraph.autodiff import head_gradient_variables

    result = {}
    for var, shape in zip(head_gradient_variables(symbol.outputs), out_shapes):
        if var is not None:
            result[var.node.name] = rng.standard_normal(shape)
    return result


def reference_gradient(case: OpCase, symbol, values: dict, hgrads: dict, seed: int = 0):
    """Gradients (in ``case.differentiate()`` order) of the symbolic gradient graph."""
    gsym = S.grad(symbol, list(case.differentiate()))
    feed = {**values, **hgrads}
    return evaluate(gsym.outputs, feed, is_train=case.is_train, seed=seed)


# ---- closed-form gradients of the loss ops (MXNet's definitions, section 4) ------------------
def softmax_rows(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_output_grad(scale=1.0, norm="null", ignore=None):
    """(p - onehot(label)) * scale / norm; ignored rows are 0 (use_ignore)."""

    def grad(values):
        x, label = values["data"], values["label"].astype(int)
        p = softmax_rows(x)
        onehot = np.eye(x.shape[1])[label]
        g = p - onehot
        valid = np.ones(len(label), bool) if ignore is None else label != ignore
        g = g * valid[:, None]
        if norm == "batch":
            g = g / len(label)
        elif norm == "valid":
            keep = label != (-1 if ignore is None else ignore)
            g = g / max(1, int(keep.sum()))
        return {"data": g * scale}

    return grad


def regression_grad(kind: str, scale: float):
    """(out - label) * scale / m (sign for MAE), m = outputs per sample."""

    def grad(values):
        x, label = values["data"], values["label"]
        out = 1.0 / (1.0 + np.exp(-x)) if kind == "logistic" else x
        diff = np.sign(out - label) if kind == "mae" else out - label
        return {"data": diff * scale / (x.size / x.shape[0])}

    return grad


def make_loss_grad(scale: float, norm: str):
    def grad(values):
        x = values["data"]
        return {"data": np.full_like(x, scale / (x.shape[0] if norm == "batch" else 1))}

    return grad


def zero_grad(values):
    return {"data": np.zeros_like(values["data"])}


# ---- shapes ----------------------------------------------------------------------------------
def row_b(d):
    return (1, d[1], 1)


def col(d):
    return (d[0],)


def flat_fc(d):
    return (4, d[1] * d[2])


def fc_last(d):
    return (4, d[2])


def four(d):
    return (4,)


def unary(op, gen=normal, note="", **attrs):
    fn = getattr(S, op)
    return OpCase(op, lambda x: fn(x, **attrs), gens={"data": gen}, note=note)


def binary(op, lhs=full, rhs=full, gens=None, joint=None, note=""):
    fn = getattr(S, op)
    return OpCase(op, lambda a, b: fn(a, b), inputs=(("lhs", lhs), ("rhs", rhs)),
                  gens=gens or {}, joint=joint, note=note)


KINK0 = away_from(0.0)

ELEMENTWISE = [
    unary("exp"), unary("log", positive), unary("log1p", positive), unary("sqrt", positive),
    unary("rsqrt", positive), unary("square"), unary("abs", KINK0), unary("negative"),
    unary("reciprocal", positive), unary("sign", fractional), unary("floor", fractional),
    unary("ceil", fractional), unary("round", fractional), unary("trunc", fractional),
    unary("relu", KINK0), unary("sigmoid"), unary("tanh"), unary("softsign", KINK0),
    unary("clip", away_from(-0.5, 0.5), a_min=-0.5, a_max=0.5),
    OpCase("_copy", lambda x: S.identity(x), note="identity"),
    OpCase("BlockGrad", lambda x: S.BlockGrad(x), closed_grad=zero_grad),
    OpCase("zeros_like", lambda x: S.zeros_like(x)),
    OpCase("ones_like", lambda x: S.ones_like(x)),
] + [
    unary("Activation", KINK0 if act in ("relu", "softsign") else normal, note=act,
          act_type=act)
    for act in ("relu", "sigmoid", "tanh", "softrelu", "softsign")
] + [
    unary("LeakyReLU", KINK0, note=act, act_type=act) for act in ("leaky", "elu", "selu", "gelu")
] + [  # the derivative reads y for slopes >= 0 and x below: both sides of that switch
    unary("LeakyReLU", KINK0, note=f"{act} slope {slope}", act_type=act, slope=slope)
    for act, slope in (("leaky", 0.0), ("leaky", -0.5), ("elu", -1.0), ("elu", 2.0))
]

BINARY = [
    binary("elemwise_add"), binary("elemwise_sub"), binary("elemwise_mul"),
    binary("elemwise_div", gens={"rhs": positive}),
    binary("broadcast_add", rhs=row_b), binary("broadcast_sub", rhs=row_b),
    binary("broadcast_mul", rhs=row_b), binary("broadcast_div", rhs=row_b,
                                               gens={"rhs": positive}),
    binary("broadcast_power", rhs=row_b, gens={"lhs": positive}),
    binary("broadcast_maximum", rhs=row_b, joint=apart("lhs", "rhs")),
    binary("broadcast_minimum", rhs=row_b, joint=apart("lhs", "rhs")),
    binary("broadcast_mod", rhs=row_b, joint=mod_pair("lhs", "rhs")),
    binary("broadcast_like", lhs=row_b, rhs=full),
    binary("reshape_like", lhs=lambda d: (d[0], d[1] * d[2]), rhs=full),
    OpCase("add_n", lambda x, y, z: S.add_n(x, y, z),
           inputs=(("x", full), ("y", full), ("z", full))),
    OpCase("dot", lambda a, b: S.dot(a, b), inputs=(("lhs", mat), ("rhs", lambda d: d[1:]))),
    OpCase("dot", lambda a, b: S.dot(a, b, transpose_b=True), note="transpose_b",
           inputs=(("lhs", mat), ("rhs", lambda d: (d[2], d[1])))),
] + [
    binary(f"broadcast_{kind}", rhs=row_b, joint=apart("lhs", "rhs"))
    for kind in ("equal", "not_equal", "greater", "greater_equal", "lesser", "lesser_equal")
]

REDUCTIONS = [
    OpCase(op, lambda x, op=op, kw=kw: getattr(S, op)(x, **kw), note=note)
    for op in ("sum", "mean", "max", "min")
    for note, kw in (("axis1", {"axis": 1}), ("all", {}),
                     ("keep-exclude", {"axis": 2, "keepdims": True, "exclude": True}))
]

LAYERS = [
    OpCase("FullyConnected", lambda x, w, b: S.FullyConnected(x, w, b, num_hidden=4),
           inputs=(("data", full), ("weight", flat_fc), ("bias", four)),
           infer_from=("data",)),
    OpCase("FullyConnected", lambda x, w, b: S.FullyConnected(x, w, b, num_hidden=4,
                                                              flatten=False),
           inputs=(("data", full), ("weight", fc_last), ("bias", four)),
           infer_from=("data",), note="noflatten"),
    OpCase("Flatten", lambda x: S.Flatten(x)),
    OpCase("Reshape", lambda x: S.Reshape(x, shape=(0, -1)), note="0,-1"),
    OpCase("Reshape", lambda x: S.Reshape(x, shape=(-3, -2)), note="-3,-2"),
    OpCase("SoftmaxOutput", lambda x, y: S.SoftmaxOutput(x, y, grad_scale=2.0),
           inputs=(("data", mat), ("label", col)), gens={"label": labels(1)}, wrt=("data",),
           closed_grad=softmax_output_grad(scale=2.0), infer_from=("data",)),
    OpCase("SoftmaxOutput", lambda x, y: S.SoftmaxOutput(x, y, normalization="batch"),
           inputs=(("data", mat), ("label", col)), gens={"label": labels(1)}, wrt=("data",),
           closed_grad=softmax_output_grad(norm="batch"), note="batch"),
    OpCase("SoftmaxOutput", lambda x, y: S.SoftmaxOutput(x, y, normalization="valid",
                                                         use_ignore=True, ignore_label=1),
           inputs=(("data", mat), ("label", col)), gens={"label": labels(1)}, wrt=("data",),
           closed_grad=softmax_output_grad(norm="valid", ignore=1), note="valid-ignore"),
] + [
    OpCase(op, lambda x, y, op=op: getattr(S, op)(x, y, grad_scale=1.5),
           inputs=(("data", mat), ("label", mat)), wrt=("data",),
           closed_grad=regression_grad(kind, 1.5))
    for op, kind in (("LinearRegressionOutput", "linear"),
                     ("LogisticRegressionOutput", "logistic"), ("MAERegressionOutput", "mae"))
] + [
    OpCase("MakeLoss", lambda x: S.MakeLoss(x, grad_scale=3.0, normalization="batch"),
           closed_grad=make_loss_grad(3.0, "batch")),
]

ARRAY = [
    OpCase("transpose", lambda x: S.transpose(x), note="reverse"),
    OpCase("transpose", lambda x: S.transpose(x, axes=(2, 0, 1)), note="201"),
    OpCase("expand_dims", lambda x: S.expand_dims(x, axis=1)),
    OpCase("expand_dims", lambda x: S.expand_dims(x, axis=-1), note="last"),
    OpCase("squeeze", lambda x: S.squeeze(x, axis=1), inputs=(("data", lambda d: (
        d[0], 1, d[2])),)),
    OpCase("squeeze", lambda x: S.squeeze(x), inputs=(("data", lambda d: (1, d[1], 1)),),
           note="all"),
    OpCase("SwapAxis", lambda x: S.swapaxes(x, dim1=0, dim2=2)),
    OpCase("Concat", lambda x, y, z: S.Concat(x, y, z, dim=1),
           inputs=(("x", full), ("y", lambda d: (d[0], d[0], d[2])),
                   ("z", lambda d: (d[0], d[2], d[2])))),
    OpCase("Concat", lambda x, y: S.concat(x, y, dim=-1),
           inputs=(("x", full), ("y", lambda d: (d[0], d[1], d[0]))), note="last"),
    OpCase("SliceChannel", lambda x: S.SliceChannel(x, num_outputs=2, axis=1),
           inputs=(("data", lambda d: (d[0], 2 * d[1], d[2])),)),
    OpCase("SliceChannel", lambda x: S.split(x, num_outputs=3, axis=2, squeeze_axis=True),
           inputs=(("data", lambda d: (d[0], d[1], 3)),), note="squeeze"),
    OpCase("slice_axis", lambda x: S.slice_axis(x, axis=1, begin=1, end=None)),
    OpCase("slice_axis", lambda x: S.slice_axis(x, axis=-1, begin=0, end=-1), note="neg"),
    OpCase("broadcast_to", lambda x: S.broadcast_to(x, shape=(0, 4, 0)),
           inputs=(("data", lambda d: (d[0], 1, d[2])),)),
    OpCase("broadcast_axis", lambda x: S.broadcast_axis(x, axis=(0, 2), size=(3, 5)),
           inputs=(("data", lambda d: (1, d[1], 1)),)),
    OpCase("softmax", lambda x: S.softmax(x, axis=1, temperature=2.0)),
    OpCase("softmax", lambda x: S.softmax(x), note="last"),
    OpCase("log_softmax", lambda x: S.log_softmax(x, axis=0, temperature=0.5)),
    OpCase("log_softmax", lambda x: S.log_softmax(x), note="last"),
    OpCase("argmax", lambda x: S.argmax(x, axis=1)),
    OpCase("argmax", lambda x: S.argmax(x, axis=-1, keepdims=True), note="keepdims"),
    OpCase("argmin", lambda x: S.argmin(x), note="flat"),
    OpCase("one_hot", lambda i: S.one_hot(i, depth=4, on_value=2.0, off_value=-1.0),
           inputs=(("indices", mat),), gens={"indices": labels(0)}, wrt=(),
           out_dtype="float32"),
    OpCase("Embedding", lambda i, w: S.Embedding(i, w, input_dim=5, output_dim=3),
           inputs=(("data", mat), ("weight", lambda d: (5, 3))),
           gens={"data": lambda rng, shape: rng.integers(0, 5, shape).astype(float)},
           wrt=("weight",), infer_from=("data",)),
    OpCase("Dropout", lambda x: S.Dropout(x, p=0.4), is_train=True, note="train"),
    OpCase("Dropout", lambda x: S.Dropout(x, p=0.4, axes=(1,)), is_train=True, note="axes"),
    OpCase("Dropout", lambda x: S.Dropout(x, p=0.4), note="inference"),
    OpCase("Dropout", lambda x: S.Dropout(x, p=0.3, mode="always"), note="always"),
]

CASES = ELEMENTWISE + BINARY + REDUCTIONS + LAYERS + ARRAY


# ---- 2-D convolution and pooling (NCHW) ------------------------------------------------------
def conv_case(note, data, weight, **attrs):
    """A Convolution case; bias (num_filter,) unless no_bias, weight/bias inferred from data."""
    filters = attrs["num_filter"]
    inputs = (("data", data), ("weight", weight))
    if attrs.get("no_bias"):
        return OpCase("Convolution", lambda x, w: S.Convolution(x, w, **attrs), inputs=inputs,
                      infer_from=("data",), note=note)
    return OpCase("Convolution", lambda x, w, b: S.Convolution(x, w, b, **attrs),
                  inputs=inputs + (("bias", lambda d: (filters,)),), infer_from=("data",),
                  note=note)


def grouped_grad_cases():
    """The two gradient ops of a convolution (kernel 3x2, stride (1, 2), pad (1, 0),
    4 channels, 6 filters, 2 groups or one: OH = H, OW = (W - 2) // 2 + 1), differentiated
    in ``dy`` and the weights or data; ``like`` only gives the data's shape.  With one
    group they run as batched matmuls (``codegen/kernels/conv_gemm.py``)."""
    from symgraph.compose import create

    def data(d):
        return (2, 4, d[1] + 2, d[2] + 3)

    def dy(d):
        return (2, 6, d[1] + 2, (d[2] + 1) // 2 + 1)

    cases = []
    for groups, note in ((2, "3x2-s12"), (1, "3x2-s12-one-group")):
        attrs = {"kernel": (3, 2), "stride": (1, 2), "pad": (1, 0), "num_group": groups,
                 "num_filter": 6}
        weight = (6, 4 // groups, 3, 2)
        cases += [
            OpCase("_grouped_conv_data_grad",
                   lambda g, w, like, attrs=attrs: create("_grouped_conv_data_grad",
                                                          (g, w, like), attrs),
                   inputs=(("dy", dy), ("weight", lambda d, weight=weight: weight),
                           ("like", data)),
                   wrt=("dy", "weight"), note=note),
            OpCase("_grouped_conv_weight_grad",
                   lambda g, x, attrs=attrs: create("_grouped_conv_weight_grad", (g, x), attrs),
                   inputs=(("dy", dy), ("data", data)), note=note),
        ]
    return cases


def pool_case(note, data=lambda d: (2, d[0], d[1] + 3, d[2] + 2), **attrs):
    return OpCase("Pooling", lambda x: S.Pooling(x, **attrs), inputs=(("data", data),),
                  note=note)


CONV_POOL = [
    conv_case("3x5-stride-pad", lambda d: (2, d[0], d[1] + 3, d[2] + 4),
              lambda d: (3, d[0], 3, 5), kernel=(3, 5), stride=(2, 1), pad=(1, 2),
              num_filter=3),
    conv_case("one-image-3x3-pad", lambda d: (1, d[0], d[1] + 2, d[2] + 3),
              lambda d: (5, d[0], 3, 3), kernel=(3, 3), pad=(1, 1), num_filter=5),
    conv_case("1x1-nobias", lambda d: (2, d[0], d[1], d[2] + 1), lambda d: (4, d[0], 1, 1),
              kernel=(1, 1), num_filter=4, no_bias=True),
    conv_case("group-dilate-stride2", lambda d: (2, 4, d[1] + 4, d[2] + 3),
              lambda d: (4, 2, 3, 3), kernel=(3, 3), stride=(2, 2), dilate=(2, 1), pad=(1, 1),
              num_filter=4, num_group=2),
    conv_case("depthwise-multiplier", lambda d: (2, 3, d[1] + 2, d[2] + 4),
              lambda d: (6, 1, 3, 3), kernel=(3, 3), stride=(1, 2), pad=(1, 1),
              num_filter=6, num_group=3),
    *grouped_grad_cases(),
    pool_case("max-2x2-s2", kernel=(2, 2), stride=(2, 2), pool_type="max"),
    pool_case("max-full-pad", kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max",
              pooling_convention="full"),
    pool_case("avg-3x2-pad", kernel=(3, 2), stride=(2, 1), pad=(1, 1), pool_type="avg"),
    pool_case("avg-full-nopadcount", kernel=(3, 3), stride=(2, 2), pad=(1, 1),
              pool_type="avg", pooling_convention="full", count_include_pad=False),
    pool_case("sum-2x3", kernel=(2, 3), stride=(1, 2), pool_type="sum"),
    pool_case("global-max", kernel=(1, 1), global_pool=True, pool_type="max"),
    pool_case("global-avg", global_pool=True, pool_type="avg"),
]

CASES = CASES + CONV_POOL


# ---- BatchNorm (aux states moving_mean / moving_var are inputs too) --------------------------
def bn_case(note, data=lambda d: (2, d[0], d[1], d[2]), axis=1, is_train=True, wrt=None,
            **attrs):
    """A BatchNorm case: gamma, beta and the moving stats are (C,) with C = data[axis]."""
    def channels(d):
        return (data(d)[axis],)

    inputs = (("data", data), ("gamma", channels), ("beta", channels),
              ("moving_mean", channels), ("moving_var", channels))
    return OpCase("BatchNorm", lambda x, g, b, m, v: S.BatchNorm(x, g, b, m, v, axis=axis,
                                                                 **attrs),
                  inputs=inputs, gens={"gamma": positive, "moving_var": positive},
                  wrt=("data", "gamma", "beta") if wrt is None else wrt,
                  is_train=is_train, infer_from=("data",), note=note)


BATCHNORM = [
    bn_case("train", fix_gamma=False),
    bn_case("train-fix-gamma"),
    bn_case("inference", is_train=False, fix_gamma=False, eps=1e-5),
    bn_case("global-stats", use_global_stats=True, fix_gamma=False),
    bn_case("fc-last-axis", data=lambda d: (d[0] + 1, d[1]), axis=-1, fix_gamma=False,
            momentum=0.8),
    bn_case("3d-axis2", data=lambda d: (d[0], d[1], d[2]), axis=2, fix_gamma=False),
    bn_case("output-mean-var", output_mean_var=True, fix_gamma=False, wrt=()),
]

CASES = CASES + BATCHNORM


# ---- issue 11: the other ops MXNet 1.x models use (helper "ops") -----------------------------
def index_gen(count_dim: int, low: float = 0.0, high: float = 1.0):
    """Integer-valued float indices in [low * n, high * n) with n = dims[count_dim]
    (out-of-range on purpose for the clip and wrap modes)."""

    def gen(rng, shape, dims):
        n = dims[count_dim]
        return rng.integers(int(low * n), int(high * n), shape).astype(np.float64)

    gen.needs_dims = True
    return gen


def mask01(rng, shape):
    return rng.integers(0, 2, shape).astype(np.float64)


def nchw(d):
    return (2, d[0], d[1], d[2])


def deconv_case(note, data, weight, **attrs):
    inputs = (("data", data), ("weight", weight))
    if attrs.get("no_bias", True):
        return OpCase("Deconvolution", lambda x, w: S.Deconvolution(x, w, **attrs),
                      inputs=inputs, infer_from=("data",), note=note)
    filters = attrs["num_filter"]
    return OpCase("Deconvolution", lambda x, w, b: S.Deconvolution(x, w, b, **attrs),
                  inputs=inputs + (("bias", lambda d: (filters,)),), infer_from=("data",),
                  note=note)


def norm_case(op, note, data, channel_dim, **attrs):
    fn = getattr(S, op)
    return OpCase(op, lambda x, g, b: fn(x, g, b, **attrs),
                  inputs=(("data", data), ("gamma", lambda d: (data(d)[channel_dim],)),
                          ("beta", lambda d: (data(d)[channel_dim],))),
                  gens={"gamma": positive}, infer_from=("data",), note=note)


MODEL_OPS = [
    deconv_case("3x3-s2-pad-adj-bias", nchw, lambda d: (d[0], 3, 3, 3), kernel=(3, 3),
                stride=(2, 2), pad=(1, 1), adj=(1, 0), num_filter=3, no_bias=False),
    deconv_case("4x4-target-shape", lambda d: (2, d[0], 3, 4), lambda d: (d[0], 2, 4, 4),
                kernel=(4, 4), stride=(2, 2), target_shape=(7, 9), num_filter=2),
    deconv_case("group-dilate", lambda d: (2, 4, d[1], d[2]), lambda d: (4, 1, 3, 2),
                kernel=(3, 2), stride=(1, 2), dilate=(2, 1), pad=(0, 1), num_filter=2,
                num_group=2),
    OpCase("UpSampling", lambda x: S.UpSampling(x, scale=2, sample_type="nearest"),
           inputs=(("data", nchw),), note="nearest"),
    OpCase("UpSampling", lambda x, y: S.UpSampling(x, y, scale=2, sample_type="nearest"),
           inputs=(("x", nchw), ("y", lambda d: (2, 3, 2 * d[1], d[2]))),
           note="nearest-concat"),
    OpCase("UpSampling", lambda x, y: S.UpSampling(x, y, scale=3, sample_type="nearest",
                                                   multi_input_mode="sum"),
           inputs=(("x", nchw), ("y", lambda d: (2, d[0], 3 * d[1], 3 * d[2]))),
           note="nearest-sum"),
    OpCase("UpSampling", lambda x, w: S.UpSampling(x, w, scale=2, sample_type="bilinear",
                                                   num_filter=3),
           inputs=(("data", lambda d: (2, 3, d[1], d[2])), ("weight", lambda d: (3, 1, 4, 4))),
           infer_from=("data",), note="bilinear"),
    OpCase("Pad", lambda x: S.Pad(x, mode="constant", pad_width=(0, 0, 0, 0, 1, 2, 2, 1),
                                  constant_value=0.5), inputs=(("data", nchw),),
           note="constant"),
    OpCase("Pad", lambda x: S.pad(x, mode="edge", pad_width=(0, 0, 0, 0, 2, 1, 0, 3)),
           inputs=(("data", nchw),), note="edge"),
    OpCase("Pad", lambda x: S.Pad(x, mode="reflect", pad_width=(0, 0, 0, 0, 1, 1, 1, 0)),
           inputs=(("data", nchw),), note="reflect"),
    OpCase("LRN", lambda x: S.LRN(x, nsize=3, alpha=0.1, beta=0.75, knorm=1.5),
           inputs=(("data", lambda d: (d[0], d[1] + 2, d[2], 2)),), note="nsize3"),
    OpCase("LRN", lambda x: S.LRN(x, nsize=5, alpha=0.2), inputs=(("data", nchw),),
           note="nsize5"),
    norm_case("InstanceNorm", "3d", full, 1, eps=1e-3),
    norm_case("InstanceNorm", "4d", nchw, 1),
    norm_case("LayerNorm", "last", full, 2),
    OpCase("LayerNorm", lambda x, g, b: S.LayerNorm(x, g, b, axis=1, output_mean_var=True),
           inputs=(("data", full), ("gamma", lambda d: (d[1],)), ("beta", lambda d: (d[1],))),
           infer_from=("data",), note="axis1-mean-var"),
] + [
    OpCase("L2Normalization", lambda x, mode=mode: S.L2Normalization(x, mode=mode),
           inputs=(("data", nchw),), note=mode)
    for mode in ("instance", "channel", "spatial")
] + [
    OpCase("Cast", lambda x: S.Cast(x, dtype="float64"), out_dtype="float64"),
    OpCase("Cast", lambda x: S.cast(x, dtype="float64"), out_dtype="float64", note="alias"),
    OpCase("where", lambda c, x, y: S.where(c, x, y),
           inputs=(("condition", full), ("x", full), ("y", full)),
           gens={"condition": mask01}, wrt=("x", "y")),
    OpCase("where", lambda c, x, y: S.where(c, x, y),
           inputs=(("condition", lambda d: (d[0],)), ("x", full), ("y", full)),
           gens={"condition": mask01}, wrt=("x", "y"), note="rows"),
    OpCase("batch_dot", lambda a, b: S.batch_dot(a, b),
           inputs=(("lhs", full), ("rhs", lambda d: (d[0], d[2], d[1])))),
    OpCase("batch_dot", lambda a, b: S.batch_dot(a, b, transpose_a=True, transpose_b=True),
           inputs=(("lhs", lambda d: (d[0], d[2], d[1])), ("rhs", lambda d: (d[0], 4, d[2]))),
           note="transposed"),
    OpCase("take", lambda a, i: S.take(a, i, axis=1),
           inputs=(("a", full), ("indices", lambda d: (2, 3))),
           gens={"indices": index_gen(1, -0.5, 1.5)}, wrt=("a",), note="clip"),
    OpCase("take", lambda a, i: S.take(a, i, axis=-1, mode="wrap"),
           inputs=(("a", full), ("indices", lambda d: (5,))),
           gens={"indices": index_gen(2, -2.0, 2.0)}, wrt=("a",), note="wrap"),
    OpCase("pick", lambda x, i: S.pick(x, i, axis=1),
           inputs=(("data", full), ("index", lambda d: (d[0], d[2]))),
           gens={"index": index_gen(1)}, wrt=("data",), infer_from=("data",)),
    OpCase("pick", lambda x, i: S.pick(x, i, keepdims=True, mode="wrap"),
           inputs=(("data", full), ("index", lambda d: (d[0], d[1], 1))),
           gens={"index": index_gen(2, -1.0, 2.0)}, wrt=("data",), note="keepdims-wrap"),
    OpCase("slice", lambda x: S.slice(x, begin=(None, 1), end=(None, None), step=(1, 2)),
           note="step2"),
    OpCase("slice", lambda x: S.slice(x, begin=(1, None, None), end=(None, -1, 0),
                                      step=(None, 1, -1)), note="negative-step"),
    OpCase("slice_like", lambda x, y: S.slice_like(x, y),
           inputs=(("data", lambda d: (d[0], d[1] + 2, d[2] + 1)), ("shape_like", full)),
           wrt=("data",)),
    OpCase("slice_like", lambda x, y: S.slice_like(x, y, axes=(1, -1)),
           inputs=(("data", lambda d: (d[0], d[1] + 2, d[2] + 1)),
                   ("shape_like", lambda d: (1, d[1], d[2]))), wrt=("data",), note="axes"),
    OpCase("tile", lambda x: S.tile(x, reps=(2, 1, 3))),
    OpCase("tile", lambda x: S.tile(x, reps=(2, 1, 1, 2)), inputs=(("data", mat),),
           note="more-reps"),
    OpCase("repeat", lambda x: S.repeat(x, repeats=3, axis=1)),
    OpCase("repeat", lambda x: S.repeat(x, repeats=2), note="flat"),
    OpCase("stack", lambda x, y, z: S.stack(x, y, z, axis=1),
           inputs=(("x", full), ("y", full), ("z", full))),
    OpCase("stack", lambda x, y: S.stack(x, y, axis=-1), inputs=(("x", mat), ("y", mat)),
           note="last"),
    unary("smooth_l1", away_from(-1.0, 1.0, 0.0)),
    unary("smooth_l1", away_from(-0.25, 0.25, 0.0), note="sigma2", scalar=2.0),
    OpCase("softmax_cross_entropy", lambda x, y: S.softmax_cross_entropy(x, y),
           inputs=(("data", mat), ("label", col)), gens={"label": labels(1)}, wrt=("data",),
           infer_from=("data",)),
    OpCase("topk", lambda x: S.topk(x, axis=1, k=2, ret_typ="value"), wrt=(), note="value"),
    OpCase("topk", lambda x: S.topk(x, k=2), wrt=(), out_dtype="float32", note="indices"),
    OpCase("topk", lambda x: S.topk(x, axis=0, k=1, ret_typ="mask", is_ascend=True), wrt=(),
           note="mask-ascend"),
    OpCase("topk", lambda x: S.topk(x, k=0, ret_typ="value", is_ascend=True), wrt=(),
           note="k0-full"),
    OpCase("sort", lambda x: S.sort(x), wrt=()),
    OpCase("sort", lambda x: S.sort(x, axis=0, is_ascend=False), wrt=(), note="descending"),
    OpCase("argsort", lambda x: S.argsort(x, axis=1), wrt=(), out_dtype="float32"),
]

CASES = CASES + MODEL_OPS
