"""Transcendental functions written in LLVM IR, for scalars and vectors alike.

libm is scalar-only and ~30x slower than a vector polynomial, so exp/log/tanh/sigmoid/
log1p/pow are generated here: Cody-Waite range reduction (ln2 split in hi/lo parts) plus
Taylor polynomials in Horner/FMA form.  Taylor coefficients are exact rationals, so no
magic minimax constants can be mistyped; degree is chosen per dtype so truncation error
stays below half an ulp on the reduced range.  Each function is an internal
``alwaysinline`` LLVM function ``sg.<name>.<type>`` created on first use.
"""

from __future__ import annotations

import math

from llvmlite import ir

F32, F64 = ir.FloatType(), ir.DoubleType()
# (mantissa bits, exponent bias, ln2 hi, ln2 lo, exp Taylor degree, log series terms)
_PARAMS = {
    "float": (23, 127, 0.693359375, -2.1219444005469057e-04, 8, 6),
    "double": (52, 1023, 6.93147180369123816490e-01, 1.90821492927058770002e-10, 13, 12),
}


def mangle(ty) -> str:
    if isinstance(ty, ir.VectorType):
        return f"v{ty.count}{mangle(ty.element)}"
    return {"float": "f32", "double": "f64", "i1": "i1", "i32": "i32", "i64": "i64"}[str(ty)]


def intrinsic(module, name, ret, args):
    """Get or declare ``llvm.<name>.<mangled ret type>`` (overloaded on the value type)."""
    full = f"llvm.{name}.{mangle(ret)}"
    if full in module.globals:
        return module.globals[full]
    return ir.Function(module, ir.FunctionType(ret, args), name=full)


def masked_load(builder: ir.IRBuilder, vty, ptr, mask, passthru, align: int):
    """``llvm.masked.load``: lanes off in ``mask`` read no memory and yield ``passthru``."""
    fn = _masked(builder.module, "load", vty, [ir.PointerType(), ir.IntType(32), mask.type, vty],
                 vty)
    return builder.call(fn, [ptr, ir.Constant(ir.IntType(32), align), mask, passthru])


def masked_store(builder: ir.IRBuilder, value, ptr, mask, align: int):
    """``llvm.masked.store``: lanes off in ``mask`` leave memory untouched."""
    args = [value.type, ir.PointerType(), ir.IntType(32), mask.type]
    fn = _masked(builder.module, "store", value.type, args, ir.VoidType())
    builder.call(fn, [value, ptr, ir.Constant(ir.IntType(32), align), mask])


def transpose(builder: ir.IRBuilder, vecs):
    """Transpose a W x W block held as W ``<W x T>`` vectors (W a power of two):
    log2(W) rounds of interleaving vectors i and i + W/2, W shuffles per round."""
    w = len(vecs)
    half = w // 2
    i32 = ir.IntType(32)
    lo = ir.Constant(ir.VectorType(i32, w), [x for t in range(half) for x in (t, w + t)])
    hi = ir.Constant(ir.VectorType(i32, w), [x for t in range(half, w) for x in (t, w + t)])
    for _ in range(w.bit_length() - 1):
        nxt = []
        for i in range(half):
            nxt.append(builder.shuffle_vector(vecs[i], vecs[i + half], lo))
            nxt.append(builder.shuffle_vector(vecs[i], vecs[i + half], hi))
        vecs = nxt
    return vecs


def _masked(module, kind, vty, args, ret):
    name = f"llvm.masked.{kind}.{mangle(vty)}.p0"
    return module.globals.get(name) or ir.Function(module, ir.FunctionType(ret, args), name=name)


class _Ops:
    """Arithmetic on one scalar-or-vector float type, so polynomials read like math."""

    def __init__(self, b: ir.IRBuilder, ty):
        self.b, self.ty = b, ty
        self.elem = ty.element if isinstance(ty, ir.VectorType) else ty
        self.n = ty.count if isinstance(ty, ir.VectorType) else 0
        self.ity = ir.IntType(32 if str(self.elem) == "float" else 64)
        self.vity = ir.VectorType(self.ity, self.n) if self.n else self.ity
        self.p = _PARAMS[str(self.elem)]

    def c(self, v):
        return ir.Constant(self.ty, [self.elem(v)] * self.n if self.n else v)

    def ci(self, v):
        return ir.Constant(self.vity, [self.ity(v)] * self.n if self.n else v)

    def call(self, name, *args):
        fn = intrinsic(self.b.module, name, self.ty, [self.ty] * len(args))
        return self.b.call(fn, args)

    def fma(self, a, b, c):
        return self.call("fma", a, b, c)

    def cmp(self, op, a, b):
        return self.b.fcmp_ordered(op, a, b)

    def sel(self, cond, a, b):
        return self.b.select(cond, a, b)

    def pow2(self, k):
        """2**k for an integer vector k within the normal exponent range."""
        mbits, bias = self.p[0], self.p[1]
        return self.b.bitcast(self.b.shl(self.b.add(k, self.ci(bias)), self.ci(mbits)), self.ty)

    def horner(self, x, coeffs):
        acc = self.c(coeffs[-1])
        for c in reversed(coeffs[:-1]):
            acc = self.fma(acc, x, self.c(c))
        return acc


def _reduce_exp(o: _Ops, x):
    """x = n*ln2 + r with |r| <= ln2/2; returns (n as int vector, expm1(r))."""
    b, (_, _, hi, lo, deg, _) = o.b, o.p
    n = o.call("roundeven", b.fmul(x, o.c(1.0 / math.log(2.0))))
    r = o.fma(b.fneg(n), o.c(hi), x)
    r = o.fma(b.fneg(n), o.c(lo), r)
    q = o.horner(r, [1.0 / math.factorial(k) for k in range(2, deg + 1)])
    p = o.fma(q, b.fmul(r, r), r)
    return b.fptosi(n, o.vity), p


def _exp_body(o: _Ops, x):
    b = o.b
    lim = (89.0, -104.0) if o.p[0] == 23 else (710.0, -746.0)
    xc = o.sel(o.cmp(">", x, o.c(lim[0])), o.c(lim[0]), x)
    xc = o.sel(b.fcmp_unordered("<", xc, o.c(lim[1])), o.c(lim[1]), xc)
    n, p = _reduce_exp(o, xc)
    half = b.ashr(n, o.ci(1))
    y = b.fmul(b.fmul(b.fadd(p, o.c(1.0)), o.pow2(half)), o.pow2(b.sub(n, half)))
    return o.sel(b.fcmp_unordered("uno", x, x), x, y)


def _expm1_small(o: _Ops, x):
    """expm1 for x in [-60, 60] (tanh only): exact when n == 0, mild cancellation else."""
    n, p = _reduce_exp(o, x)
    s = o.pow2(n)
    return o.b.fadd(o.b.fmul(s, p), o.b.fsub(s, o.c(1.0)))


def _log_body(o: _Ops, x):
    b, (mbits, bias, hi, lo, _, terms) = o.b, o.p
    tiny = o.cmp("<", x, o.c(2.0 ** (1 - bias)))
    xs = o.sel(tiny, b.fmul(x, o.c(2.0 ** mbits)), x)
    bits = b.bitcast(xs, o.vity)
    e = b.sub(b.lshr(bits, o.ci(mbits)), o.ci(bias - 1))
    e = b.sub(e, o.sel(tiny, o.ci(mbits), o.ci(0)))
    m = b.bitcast(b.or_(b.and_(bits, o.ci((1 << mbits) - 1)), o.ci((bias - 1) << mbits)), o.ty)
    small = o.cmp("<", m, o.c(math.sqrt(0.5)))
    m = o.sel(small, b.fadd(m, m), m)
    ef = b.sitofp(b.sub(e, o.sel(small, o.ci(1), o.ci(0))), o.ty)
    f = b.fsub(m, o.c(1.0))
    s = b.fdiv(f, b.fadd(m, o.c(1.0)))
    s2 = b.fmul(s, s)
    q = o.horner(s2, [1.0 / (2 * k + 3) for k in range(terms)])
    two_s = b.fadd(s, s)
    y = o.fma(b.fmul(two_s, s2), q, b.fmul(ef, o.c(lo)))
    y = o.fma(ef, o.c(hi), b.fadd(y, two_s))
    y = o.sel(o.cmp("==", x, o.c(math.inf)), x, y)
    y = o.sel(o.cmp("==", x, o.c(0.0)), o.c(-math.inf), y)
    return o.sel(b.fcmp_unordered("<", x, o.c(0.0)), o.c(math.nan), y)


def _tanh_body(o: _Ops, x):
    b = o.b
    a = o.call("fabs", x)
    a = o.sel(o.cmp(">", a, o.c(20.0)), o.c(20.0), a)
    a = o.sel(b.fcmp_unordered("uno", a, a), o.c(0.0), a)
    e = _expm1_small(o, b.fadd(a, a))
    t = b.fdiv(e, b.fadd(e, o.c(2.0)))
    t = o.call("copysign", t, x)
    return o.sel(b.fcmp_unordered("uno", x, x), x, t)


def _sigmoid_body(o: _Ops, x):
    e = _exp_body(o, o.b.fneg(x))
    return o.b.fdiv(o.c(1.0), o.b.fadd(o.c(1.0), e))


def _log1p_body(o: _Ops, x):
    b = o.b
    u = b.fadd(o.c(1.0), x)
    d = b.fsub(u, o.c(1.0))
    d_safe = o.sel(o.cmp("==", d, o.c(0.0)), o.c(1.0), d)
    r = b.fdiv(b.fmul(_log_body(o, u), x), d_safe)
    r = o.sel(o.cmp("==", d, o.c(0.0)), x, r)
    return o.sel(o.cmp("==", x, o.c(math.inf)), x, r)


def _pow_body(o: _Ops, x, y):
    """exp(y*log|x|) with numpy's sign/zero/one rules; f32 is computed in f64."""
    b = o.b
    if o.p[0] == 23:
        wide = ir.VectorType(F64, o.n) if o.n else F64
        r = call(b, "pow", b.fpext(x, wide), b.fpext(y, wide))
        return b.fptrunc(r, o.ty)
    mag = _exp_body(o, b.fmul(y, _log_body(o, o.call("fabs", x))))
    is_int = o.cmp("==", o.call("floor", y), y)
    half = b.fmul(y, o.c(0.5))
    odd = b.and_(is_int, o.cmp("!=", o.call("floor", half), half))
    neg = o.cmp("<", x, o.c(0.0))
    r = o.sel(b.and_(neg, odd), b.fneg(mag), mag)
    r = o.sel(b.and_(neg, b.not_(is_int)), o.c(math.nan), r)
    one = b.or_(o.cmp("==", y, o.c(0.0)), o.cmp("==", x, o.c(1.0)))
    return o.sel(one, o.c(1.0), r)


_BODIES = {"exp": _exp_body, "log": _log_body, "tanh": _tanh_body, "sigmoid": _sigmoid_body,
           "log1p": _log1p_body, "pow": _pow_body}
NAMES = tuple(_BODIES)


def call(builder: ir.IRBuilder, name: str, *args):
    """Emit a call to vector-math function ``name`` on scalar or vector float ``args``."""
    fn = _function(builder.module, name, args[0].type)
    return builder.call(fn, args)


def _function(module, name, ty):
    full = f"sg.{name}.{mangle(ty)}"
    if full in module.globals:
        return module.globals[full]
    body = _BODIES[name]
    nargs = body.__code__.co_argcount - 1
    fn = ir.Function(module, ir.FunctionType(ty, [ty] * nargs), name=full)
    fn.linkage = "internal"
    fn.attributes.add("alwaysinline")
    fn.attributes.add("nounwind")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.ret(body(_Ops(b, ty), *fn.args))
    return fn
