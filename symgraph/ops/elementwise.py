"""Unary, binary, scalar and broadcast elementwise ops: one formula pair each.

``f(m, x)`` / ``f(m, a, b)`` is the value; ``d(m, x, y)`` / ``d(m, a, b, y)`` gives the local
derivatives (the base class multiplies by the head gradient). Comparisons have zero
gradient, as in MXNet.
"""

from __future__ import annotations

from .elementwise_base import ElementwiseOp
from .params import param
from .registry import register


class UnaryOp(ElementwiseOp):
    arguments = ("data",)

    def f(self, m, p, x):
        raise NotImplementedError

    def d(self, m, p, x, y):
        raise NotImplementedError

    def formula(self, m, p, x):
        return self.f(m, p, x)

    def derivatives(self, m, p, xs, y, dy):
        return [dy * self.d(m, p, xs[0], y)]


class BinaryOp(ElementwiseOp):
    arguments = ("lhs", "rhs")

    def f(self, m, p, a, b):
        raise NotImplementedError

    def d(self, m, p, a, b, y):
        """(dy/da, dy/db)."""
        raise NotImplementedError

    def formula(self, m, p, a, b):
        return self.f(m, p, a, b)

    def derivatives(self, m, p, xs, y, dy):
        da, db = self.d(m, p, xs[0], xs[1], y)
        return [dy * da, dy * db]


class ScalarOp(UnaryOp):
    params = (param("scalar", "float", 1.0), param("is_int", "bool", True))


# ---- unary math ------------------------------------------------------------------------
@register
class Exp(UnaryOp):
    name = "exp"

    def f(self, m, p, x):
        return m.exp(x)

    def d(self, m, p, x, y):
        return y


@register
class Log(UnaryOp):
    name = "log"

    def f(self, m, p, x):
        return m.log(x)

    def d(self, m, p, x, y):
        return 1.0 / x


@register
class Log1p(UnaryOp):
    name = "log1p"

    def f(self, m, p, x):
        return m.log1p(x)

    def d(self, m, p, x, y):
        return 1.0 / (x + 1.0)


@register
class Sqrt(UnaryOp):
    name = "sqrt"

    def f(self, m, p, x):
        return m.sqrt(x)

    def d(self, m, p, x, y):
        return 0.5 / y


@register
class Rsqrt(UnaryOp):
    name = "rsqrt"

    def f(self, m, p, x):
        return 1.0 / m.sqrt(x)

    def d(self, m, p, x, y):
        return -0.5 * y * y * y


@register
class Square(UnaryOp):
    name = "square"

    def f(self, m, p, x):
        return x * x

    def d(self, m, p, x, y):
        return 2.0 * x


@register
class Abs(UnaryOp):
    name = "abs"

    def f(self, m, p, x):
        return m.abs(x)

    def d(self, m, p, x, y):
        return m.sign(x)


@register
class Negative(UnaryOp):
    name = "negative"

    def f(self, m, p, x):
        return -x

    def d(self, m, p, x, y):
        return m.const(-1.0)


@register
class Reciprocal(UnaryOp):
    name = "reciprocal"

    def f(self, m, p, x):
        return 1.0 / x

    def d(self, m, p, x, y):
        return -(y * y)


class _ZeroGradUnary(UnaryOp):
    def d(self, m, p, x, y):
        return m.const(0.0)


@register
class Sign(_ZeroGradUnary):
    name = "sign"

    def f(self, m, p, x):
        return m.sign(x)


@register
class Floor(_ZeroGradUnary):
    name = "floor"

    def f(self, m, p, x):
        return m.floor(x)


@register
class Ceil(_ZeroGradUnary):
    name = "ceil"

    def f(self, m, p, x):
        return m.ceil(x)


@register
class Round(_ZeroGradUnary):
    name = "round"

    def f(self, m, p, x):
        return m.round(x)


@register
class Trunc(_ZeroGradUnary):
    name = "trunc"

    def f(self, m, p, x):
        return m.trunc(x)


# ---- activations -----------------------------------------------------------------------
def relu_f(m, x):
    return m.maximum(x, 0.0)


def relu_d(m, x, y):
    return m.to_float(y > 0.0)


def sigmoid_d(m, x, y):
    return y * (1.0 - y)


def tanh_d(m, x, y):
    return 1.0 - y * y


def softrelu_f(m, x):
    """log(1 + e^x), returning x itself above 20 as MXNet does (no overflow)."""
    safe = m.minimum(x, 20.0)
    return m.select(x > 20.0, x, m.log1p(m.exp(safe)))


def softrelu_d(m, x, y):
    return 1.0 - m.exp(-y)


def softsign_f(m, x):
    return x / (1.0 + m.abs(x))


def softsign_d(m, x, y):
    denom = 1.0 + m.abs(x)
    return 1.0 / (denom * denom)


ACTIVATIONS = {
    "relu": (relu_f, relu_d),
    "sigmoid": (lambda m, x: m.sigmoid(x), sigmoid_d),
    "tanh": (lambda m, x: m.tanh(x), tanh_d),
    "softrelu": (softrelu_f, softrelu_d),
    "softsign": (softsign_f, softsign_d),
}


@register
class Activation(UnaryOp):
    """MXNet's Activation(act_type=relu|sigmoid|tanh|softrelu|softsign)."""

    name = "Activation"
    params = (param("act_type", "str", choices=tuple(ACTIVATIONS)),)

    def f(self, m, p, x):
        return ACTIVATIONS[p.act_type][0](m, x)

    def d(self, m, p, x, y):
        return ACTIVATIONS[p.act_type][1](m, x, y)


class _NamedActivation(UnaryOp):
    act_type = ""

    def f(self, m, p, x):
        return ACTIVATIONS[self.act_type][0](m, x)

    def d(self, m, p, x, y):
        return ACTIVATIONS[self.act_type][1](m, x, y)


@register
class Relu(_NamedActivation):
    name = "relu"
    act_type = "relu"


@register
class Sigmoid(_NamedActivation):
    name = "sigmoid"
    act_type = "sigmoid"


@register
class Tanh(_NamedActivation):
    name = "tanh"
    act_type = "tanh"


@register
class Softsign(_NamedActivation):
    name = "softsign"
    act_type = "softsign"


LEAKY = ("leaky", "elu", "selu", "gelu")
SELU_ALPHA, SELU_LAMBDA = 1.6732632423543772, 1.0507009873554805
GELU_SCALE, GELU_CUBIC = 0.7978845608028654, 0.044715  # sqrt(2 / pi), tanh approximation


@register
class LeakyReLU(UnaryOp):
    """LeakyReLU for the parameter-free act types (leaky, elu, selu, gelu-tanh)."""

    name = "LeakyReLU"
    params = (param("act_type", "str", "leaky", choices=LEAKY + ("prelu", "rrelu")),
              param("slope", "float", 0.25), param("lower_bound", "float", 0.125),
              param("upper_bound", "float", 0.334))

    def f(self, m, p, x):
        kind = p.act_type
        if kind == "elu":
            return m.select(x > 0.0, x, p.slope * (m.exp(m.minimum(x, 0.0)) - 1.0))
        if kind == "selu":
            return SELU_LAMBDA * m.select(x > 0.0, x,
                                          SELU_ALPHA * (m.exp(m.minimum(x, 0.0)) - 1.0))
        if kind == "gelu":
            inner = GELU_SCALE * (x + GELU_CUBIC * x * x * x)
            return 0.5 * x * (1.0 + m.tanh(inner))
        return m.select(x > 0.0, x, p.slope * x)

    def d(self, m, p, x, y):
        """With a slope >= 0, ``y > 0`` exactly when ``x > 0``: the derivative then reads
        only y, so training needs no pre-activation and the activation fuses into its
        matmul (as relu does). gelu needs x."""
        kind = p.act_type
        if kind == "gelu":
            t = m.tanh(GELU_SCALE * (x + GELU_CUBIC * x * x * x))
            dinner = GELU_SCALE * (1.0 + 3.0 * GELU_CUBIC * x * x)
            return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dinner
        positive = y > 0.0 if p.slope >= 0.0 or kind == "selu" else x > 0.0
        if kind == "elu":
            return m.select(positive, m.const(1.0), y + p.slope)
        if kind == "selu":
            return m.select(positive, m.const(SELU_LAMBDA), y + SELU_LAMBDA * SELU_ALPHA)
        return m.select(positive, m.const(1.0), m.const(p.slope))


@register
class Clip(UnaryOp):
    name = "clip"
    params = (param("a_min", "float"), param("a_max", "float"))

    def f(self, m, p, x):
        return m.minimum(m.maximum(x, p.a_min), p.a_max)

    def d(self, m, p, x, y):
        inside = m.logical_and(x >= p.a_min, x <= p.a_max)
        return m.to_float(inside)


# ---- identity-like ---------------------------------------------------------------------
@register
class Identity(UnaryOp):
    name = "_copy"
    aliases = ("identity",)

    def f(self, m, p, x):
        return x + 0.0

    def d(self, m, p, x, y):
        return m.const(1.0)


@register
class BlockGrad(UnaryOp):
    """Identity forward, zero gradient (``stop_gradient``)."""

    name = "BlockGrad"
    aliases = ("stop_gradient",)
    hint = "blockgrad"

    def f(self, m, p, x):
        return x + 0.0

    def gradient(self, p, g):
        return [None]


# ---- binary, same shape ----------------------------------------------------------------
@register
class ElemwiseAdd(BinaryOp):
    name = "elemwise_add"
    aliases = ("_plus", "_add", "_Plus")
    hint = "_plus"

    def f(self, m, p, a, b):
        return a + b

    def d(self, m, p, a, b, y):
        return m.const(1.0), m.const(1.0)


@register
class ElemwiseSub(BinaryOp):
    name = "elemwise_sub"
    aliases = ("_minus", "_sub", "_Minus")
    hint = "_minus"

    def f(self, m, p, a, b):
        return a - b

    def d(self, m, p, a, b, y):
        return m.const(1.0), m.const(-1.0)


@register
class ElemwiseMul(BinaryOp):
    name = "elemwise_mul"
    aliases = ("_mul", "_Mul")
    hint = "_mul"

    def f(self, m, p, a, b):
        return a * b

    def d(self, m, p, a, b, y):
        return b, a


@register
class ElemwiseDiv(BinaryOp):
    name = "elemwise_div"
    aliases = ("_div", "_Div")
    hint = "_div"

    def f(self, m, p, a, b):
        return a / b

    def d(self, m, p, a, b, y):
        return 1.0 / b, -y / b


def _pow_d(m, a, b, y):
    return b * m.pow(a, b - 1.0), y * m.log(a)


@register
class Power(BinaryOp):
    name = "_power"
    aliases = ("_Power",)
    hint = "_power"

    def f(self, m, p, a, b):
        return m.pow(a, b)

    def d(self, m, p, a, b, y):
        return _pow_d(m, a, b, y)


def _max_d(m, a, b, y):
    pick_a = m.to_float(a >= b)
    return pick_a, 1.0 - pick_a


def _min_d(m, a, b, y):
    pick_a = m.to_float(a <= b)
    return pick_a, 1.0 - pick_a


@register
class Maximum(BinaryOp):
    name = "_maximum"
    hint = "_maximum"

    def f(self, m, p, a, b):
        return m.maximum(a, b)

    def d(self, m, p, a, b, y):
        return _max_d(m, a, b, y)


@register
class Minimum(BinaryOp):
    name = "_minimum"
    hint = "_minimum"

    def f(self, m, p, a, b):
        return m.minimum(a, b)

    def d(self, m, p, a, b, y):
        return _min_d(m, a, b, y)


@register
class Mod(BinaryOp):
    name = "_mod"
    hint = "_mod"

    def f(self, m, p, a, b):
        return m.fmod(a, b)

    def d(self, m, p, a, b, y):
        return m.const(1.0), -m.floor(a / b)


@register
class Hypot(BinaryOp):
    name = "_hypot"
    hint = "_hypot"

    def f(self, m, p, a, b):
        return m.sqrt(a * a + b * b)

    def d(self, m, p, a, b, y):
        return a / y, b / y


COMPARISONS = {
    "equal": lambda m, a, b: m.eq(a, b),
    "not_equal": lambda m, a, b: m.ne(a, b),
    "greater": lambda m, a, b: a > b,
    "greater_equal": lambda m, a, b: a >= b,
    "lesser": lambda m, a, b: a < b,
    "lesser_equal": lambda m, a, b: a <= b,
}


class _Compare(BinaryOp):
    kind = ""

    def f(self, m, p, a, b):
        return m.to_float(COMPARISONS[self.kind](m, a, b))

    def d(self, m, p, a, b, y):
        return m.const(0.0), m.const(0.0)


def _make_comparisons(namespace):
    """Comparison ops differ only by their predicate; one small class each."""
    for kind in COMPARISONS:
        same = type(f"Compare_{kind}", (_Compare,), {"name": f"_{kind}", "kind": kind,
                                                      "hint": f"_{kind}"})
        register(same)
        bcast = type(f"BroadcastCompare_{kind}", (_Compare,),
                     {"name": f"broadcast_{kind}", "kind": kind, "broadcast": True,
                      "hint": f"broadcast_{kind}"})
        register(bcast)
        scalar = type(f"ScalarCompare_{kind}", (_ScalarCompare,),
                      {"name": f"_{kind}_scalar", "kind": kind, "hint": f"_{kind}_scalar"})
        register(scalar)
        namespace.update({same.__name__: same, bcast.__name__: bcast,
                          scalar.__name__: scalar})


class _ScalarCompare(ScalarOp):
    kind = ""

    def f(self, m, p, x):
        return m.to_float(COMPARISONS[self.kind](m, x, m.const(p.scalar)))

    def d(self, m, p, x, y):
        return m.const(0.0)


# ---- broadcast binary ------------------------------------------------------------------
class _Broadcast(BinaryOp):
    broadcast = True


@register
class BroadcastAdd(_Broadcast, ElemwiseAdd):
    name = "broadcast_add"
    aliases = ("broadcast_plus",)
    hint = "broadcast_add"


@register
class BroadcastSub(_Broadcast, ElemwiseSub):
    name = "broadcast_sub"
    aliases = ("broadcast_minus",)
    hint = "broadcast_sub"


@register
class BroadcastMul(_Broadcast, ElemwiseMul):
    name = "broadcast_mul"
    aliases = ()
    hint = "broadcast_mul"


@register
class BroadcastDiv(_Broadcast, ElemwiseDiv):
    name = "broadcast_div"
    aliases = ()
    hint = "broadcast_div"


@register
class BroadcastPower(_Broadcast, Power):
    name = "broadcast_power"
    aliases = ()
    hint = "broadcast_power"


@register
class BroadcastMaximum(_Broadcast, Maximum):
    name = "broadcast_maximum"
    hint = "broadcast_maximum"


@register
class BroadcastMinimum(_Broadcast, Minimum):
    name = "broadcast_minimum"
    hint = "broadcast_minimum"


@register
class BroadcastMod(_Broadcast, Mod):
    name = "broadcast_mod"
    hint = "broadcast_mod"


# ---- scalar ops ------------------------------------------------------------------------
class _ScalarArith(ScalarOp):
    """``x (op) scalar``; subclasses give value and derivative in terms of s."""


def _scalar_op(name, hint, f, d, aliases=()):
    cls = type(name, (_ScalarArith,), {
        "name": name, "hint": hint, "aliases": aliases,
        "f": lambda self, m, p, x: f(m, x, m.const(p.scalar)),
        "d": lambda self, m, p, x, y: d(m, x, m.const(p.scalar), y),
    })
    return register(cls)


_scalar_op("_plus_scalar", "_plusscalar", lambda m, x, s: x + s, lambda m, x, s, y: m.const(1.0),
           ("_PlusScalar",))
_scalar_op("_minus_scalar", "_minusscalar", lambda m, x, s: x - s,
           lambda m, x, s, y: m.const(1.0), ("_MinusScalar",))
_scalar_op("_rminus_scalar", "_rminusscalar", lambda m, x, s: s - x,
           lambda m, x, s, y: m.const(-1.0), ("_RMinusScalar",))
_scalar_op("_mul_scalar", "_mulscalar", lambda m, x, s: x * s, lambda m, x, s, y: s,
           ("_MulScalar",))
_scalar_op("_div_scalar", "_divscalar", lambda m, x, s: x / s, lambda m, x, s, y: 1.0 / s,
           ("_DivScalar",))
_scalar_op("_rdiv_scalar", "_rdivscalar", lambda m, x, s: s / x, lambda m, x, s, y: -y / x,
           ("_RDivScalar",))
_scalar_op("_mod_scalar", "_modscalar", lambda m, x, s: m.fmod(x, s),
           lambda m, x, s, y: m.const(1.0), ("_ModScalar",))
_scalar_op("_rmod_scalar", "_rmodscalar", lambda m, x, s: m.fmod(s, x),
           lambda m, x, s, y: -m.floor(s / x), ("_RModScalar",))
_scalar_op("_power_scalar", "_powerscalar", lambda m, x, s: m.pow(x, s),
           lambda m, x, s, y: s * m.pow(x, s - 1.0), ("_PowerScalar",))
_scalar_op("_rpower_scalar", "_rpower_scalar", lambda m, x, s: m.pow(s, x),
           lambda m, x, s, y: y * m.log(s), ("_RPowerScalar",))
_scalar_op("_maximum_scalar", "_maximumscalar", lambda m, x, s: m.maximum(x, s),
           lambda m, x, s, y: m.to_float(x >= s), ("_MaximumScalar",))
_scalar_op("_minimum_scalar", "_minimumscalar", lambda m, x, s: m.minimum(x, s),
           lambda m, x, s, y: m.to_float(x <= s), ("_MinimumScalar",))

_make_comparisons(globals())
_scalar_op("_hypot_scalar", "_hypotscalar", lambda m, x, s: m.sqrt(x * x + s * s),
           lambda m, x, s, y: x / y, ("_HypotScalar",))
