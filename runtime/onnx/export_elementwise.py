"""Export entries for elementwise ops: unary maths, binary and broadcast arithmetic, scalar
forms, comparisons (0/1 in the input dtype, as MXNet gives), activations and identities."""

from __future__ import annotations

import math

from runtime.onnx.table import exporter

# ---- one ONNX op, same inputs --------------------------------------------------------------
DIRECT = {
    "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "abs": "Abs", "negative": "Neg",
    "reciprocal": "Reciprocal", "sign": "Sign", "floor": "Floor", "ceil": "Ceil",
    "relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softsign": "Softsign",
    "elemwise_add": "Add", "elemwise_sub": "Sub", "elemwise_mul": "Mul", "elemwise_div": "Div",
    "broadcast_add": "Add", "broadcast_sub": "Sub", "broadcast_mul": "Mul",
    "broadcast_div": "Div", "broadcast_power": "Pow", "_power": "Pow",
    "broadcast_maximum": "Max", "_maximum": "Max", "broadcast_minimum": "Min",
    "_minimum": "Min", "add_n": "Sum",
    "_copy": "Identity", "BlockGrad": "Identity", "MakeLoss": "Identity",
    "make_loss": "Identity",
}


def _direct(onnx_type):
    def convert(ctx, n):
        ctx.op(onnx_type, n.inputs, n.out)

    return convert


for _op, _onnx_type in DIRECT.items():
    exporter(_op)(_direct(_onnx_type))


# ---- composites ------------------------------------------------------------------------------
@exporter("square")
def square(ctx, n):
    ctx.op("Mul", [n.x, n.x], n.out)


@exporter("rsqrt")
def rsqrt(ctx, n):
    ctx.op("Reciprocal", [ctx.op("Sqrt", [n.x])], n.out)


@exporter("log1p")
def log1p(ctx, n):
    ctx.op("Log", [ctx.op("Add", [n.x, ctx.scalar_like(1.0, n.dtype)])], n.out)


def _signed_floor(ctx, n, offset):
    """sign(x) * floor(|x| + offset): trunc (offset 0) and MXNet's half-away round (0.5);
    ONNX Round rounds halves to even."""
    mag = ctx.op("Abs", [n.x])
    if offset:
        mag = ctx.op("Add", [mag, ctx.scalar_like(offset, n.dtype)])
    ctx.op("Mul", [ctx.op("Sign", [n.x]), ctx.op("Floor", [mag])], n.out)


exporter("trunc")(lambda ctx, n: _signed_floor(ctx, n, 0.0))
exporter("round")(lambda ctx, n: _signed_floor(ctx, n, 0.5))
exporter("fix")(lambda ctx, n: _signed_floor(ctx, n, 0.0))


def _python_mod(ctx, a, b, out):
    """a - floor(a / b) * b: MXNet's _mod takes the divisor's sign (ONNX float Mod is fmod)."""
    quotient = ctx.op("Floor", [ctx.op("Div", [a, b])])
    return ctx.op("Sub", [a, ctx.op("Mul", [quotient, b])], out)


exporter("_mod", "broadcast_mod")(lambda ctx, n: _python_mod(ctx, n.inputs[0], n.inputs[1],
                                                              n.out))


def _hypot(ctx, a, b, out):
    total = ctx.op("Add", [ctx.op("Mul", [a, a]), ctx.op("Mul", [b, b])])
    return ctx.op("Sqrt", [total], out)


exporter("_hypot", "broadcast_hypot")(lambda ctx, n: _hypot(ctx, n.inputs[0], n.inputs[1],
                                                             n.out))


@exporter("clip")
def clip(ctx, n):
    ctx.op("Clip", [n.x, ctx.scalar_like(n.p.a_min, n.dtype), ctx.scalar_like(n.p.a_max, n.dtype)],
           n.out)


# ---- comparisons: bool, then cast back to the input dtype --------------------------------------
COMPARE = {"equal": ("Equal", False), "not_equal": ("Equal", True),
           "greater": ("Greater", False), "greater_equal": ("GreaterOrEqual", False),
           "lesser": ("Less", False), "lesser_equal": ("LessOrEqual", False)}


def _compare(ctx, n, a, b, kind):
    onnx_type, negate = COMPARE[kind]
    flag = ctx.op(onnx_type, [a, b])
    if negate:
        flag = ctx.op("Not", [flag])
    ctx.cast(flag, n.dtype, n.out)


for _kind in COMPARE:
    exporter(f"_{_kind}", f"broadcast_{_kind}")(
        lambda ctx, n, kind=_kind: _compare(ctx, n, n.inputs[0], n.inputs[1], kind))
    exporter(f"_{_kind}_scalar")(
        lambda ctx, n, kind=_kind: _compare(ctx, n, n.x, ctx.scalar_like(n.p.scalar, n.dtype),
                                            kind))


# ---- scalar forms: x op s, and the reversed s op x --------------------------------------------
SCALAR = {"_plus_scalar": ("Add", False), "_minus_scalar": ("Sub", False),
          "_rminus_scalar": ("Sub", True), "_mul_scalar": ("Mul", False),
          "_div_scalar": ("Div", False), "_rdiv_scalar": ("Div", True),
          "_power_scalar": ("Pow", False), "_rpower_scalar": ("Pow", True),
          "_maximum_scalar": ("Max", False), "_minimum_scalar": ("Min", False),
          "_mod_scalar": ("mod", False), "_rmod_scalar": ("mod", True),
          "_hypot_scalar": ("hypot", False)}


def _scalar(ctx, n, onnx_type, reverse):
    s = ctx.scalar_like(n.p.scalar, n.dtype)
    a, b = (s, n.x) if reverse else (n.x, s)
    if onnx_type == "mod":
        return _python_mod(ctx, a, b, n.out)
    if onnx_type == "hypot":
        return _hypot(ctx, a, b, n.out)
    return ctx.op(onnx_type, [a, b], n.out)


for _op, (_onnx_type, _reverse) in SCALAR.items():
    exporter(_op)(lambda ctx, n, t=_onnx_type, r=_reverse: _scalar(ctx, n, t, r))


# ---- activations -------------------------------------------------------------------------------
ACTIVATION = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softrelu": "Softplus",
              "softsign": "Softsign"}


@exporter("Activation")
def activation(ctx, n):
    ctx.op(ACTIVATION[n.p.act_type], [n.x], n.out)


SELU_ALPHA, SELU_GAMMA = 1.6732632423543772, 1.0507009873554805
GELU_SCALE, GELU_CUBIC = math.sqrt(2.0 / math.pi), 0.044715


def _gelu_tanh(ctx, n):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): MXNet's gelu (the tanh form)."""
    if ctx.opset >= 20:
        return ctx.op("Gelu", [n.x], n.out, approximate="tanh")
    cube = ctx.op("Mul", [n.x, ctx.op("Mul", [n.x, n.x])])
    inner = ctx.op("Add", [n.x, ctx.op("Mul", [cube, ctx.scalar_like(GELU_CUBIC, n.dtype)])])
    t = ctx.op("Tanh", [ctx.op("Mul", [inner, ctx.scalar_like(GELU_SCALE, n.dtype)])])
    half = ctx.op("Mul", [n.x, ctx.scalar_like(0.5, n.dtype)])
    return ctx.op("Mul", [half, ctx.op("Add", [t, ctx.scalar_like(1.0, n.dtype)])], n.out)


@exporter("LeakyReLU")
def leaky_relu(ctx, n):
    kind = n.p.act_type
    if kind == "leaky":
        ctx.op("LeakyRelu", [n.x], n.out, alpha=float(n.p.slope))
    elif kind == "elu":
        ctx.op("Elu", [n.x], n.out, alpha=float(n.p.slope))
    elif kind == "selu":
        ctx.op("Selu", [n.x], n.out, alpha=SELU_ALPHA, gamma=SELU_GAMMA)
    elif kind == "gelu":
        _gelu_tanh(ctx, n)
    elif kind == "rrelu":  # inference: the mean of the slope range, as MXNet predicts
        slope = (float(n.p.lower_bound) + float(n.p.upper_bound)) / 2.0
        ctx.op("LeakyRelu", [n.x], n.out, alpha=slope)
    elif kind == "prelu" and len(n.inputs) == 2:
        ctx.op("PRelu", n.inputs, n.out)
    else:
        n.reject("act_type", "no ONNX activation matches")


@exporter("smooth_l1")
def smooth_l1(ctx, n):
    """0.5 (sigma x)^2 where |x| < 1 / sigma^2, else |x| - 0.5 / sigma^2."""
    s2 = float(n.p.scalar) ** 2
    mag = ctx.op("Abs", [n.x])
    inside = ctx.op("Less", [mag, ctx.scalar_like(1.0 / s2, n.dtype)])
    quad = ctx.op("Mul", [ctx.op("Mul", [n.x, n.x]), ctx.scalar_like(0.5 * s2, n.dtype)])
    lin = ctx.op("Sub", [mag, ctx.scalar_like(0.5 / s2, n.dtype)])
    ctx.op("Where", [inside, quad, lin], n.out)
