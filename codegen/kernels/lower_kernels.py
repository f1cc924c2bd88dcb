"""Loop kernels specific to op lowering: matmul dispatch, softmax on any axis, the
SoftmaxOutput and MakeLoss gradients, and reduction gradients.

Kept apart from ``builders`` (shape-generic kernels) because each of these encodes one
op's semantics, e.g. MXNet's ``(p - onehot(label)) * grad_scale / norm``.
"""

from __future__ import annotations

import math

from codegen import loop_ir as L
from codegen.fusion_spec import SoftmaxSpec
from codegen.kernels import builders
from codegen.kernels.builders_nn import softmax_kernel
from codegen.kernels.matmul import matmul_kernel
from codegen.kernels.softmax_grad_rows import MAX_CLASSES, short_softmax_grad_kernel
from symgraph.errors import CompileError


def matmul(dtype, a_shape, b_shape, trans_a, trans_b, has_bias):
    """out(M,N) = op(a) @ op(b) (+ bias[N]) with the generated register-blocked kernel;
    ``a_shape``/``b_shape`` are the stored 2-D views of a and b."""
    m, k = (a_shape[1], a_shape[0]) if trans_a else a_shape
    k2, n = (b_shape[1], b_shape[0]) if trans_b else b_shape
    if k != k2:
        raise CompileError(f"matmul: inner sizes differ ({k} vs {k2})")
    return matmul_kernel(m, n, k, trans_a, trans_b, dtype, bias="col" if has_bias else "none")


def softmax(shape, axis, inp, out, log=False, temperature=None):
    """(log-)softmax of ``inp`` viewed as ``shape`` along ``axis``, max-subtracted."""
    axis %= len(shape)
    outer, n, inner = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
    if inner == 1 and not temperature:
        return softmax_kernel(outer, n, inp, out, log)
    dt = inp.dtype
    o, r, j1, j2, j3 = (L.Var(x) for x in ("o", "r", "j1", "j2", "j3"))
    mx, s = L.Var("mx", dt), L.Var("s", dt)
    inv_t = L.Const(1.0 / (temperature or 1.0), dt)

    def x(j):
        return L.Load(inp, o * (n * inner) + j * inner + r) * inv_t

    def dst(j):
        return o * (n * inner) + j * inner + r

    if log:
        lse = L.Var("lse", dt)
        final = L.Let(lse, mx + L.Un("log", s), L.For(j3, n, L.Store(out, dst(j3), x(j3) - lse)))
    else:
        inv = L.Var("inv", dt)
        final = L.Let(inv, L.Const(1.0, dt) / s,
                      L.For(j3, n, L.Store(out, dst(j3), L.Un("exp", x(j3) - mx) * inv)))
    body = L.Reduce(mx, "max", j1, n, x(j1),
                    L.Reduce(s, "sum", j2, n, L.Un("exp", x(j2) - mx), final))
    return L.make_kernel([inp, out], L.For(o, outer, L.For(r, inner, body)))


def softmax_spec(shape, axis, in_key, out_key, log=False, temperature=None):
    """A :class:`SoftmaxSpec` when the softmax runs over contiguous rows (the last
    axis, or inner size 1) without temperature: only then may a matmul producing the
    rows compute it in its epilogue."""
    axis %= len(shape)
    if temperature or math.prod(shape[axis + 1:]) != 1:
        return None
    return SoftmaxSpec(in_key, out_key, math.prod(shape[:axis]), shape[axis], log)


def softmax_output_grad(p, rows, classes, inner, prob, label, out):
    """MXNet's SoftmaxOutput backward with its three normalizations and ignore_label.

    Classifier rows (inner == 1) of at most 64 classes go to the vector-per-row emitter:
    the loop kernel's class loop would only vectorize from W classes on.
    """
    if inner == 1 and classes <= MAX_CLASSES:
        return _short_rows_grad(p, rows, classes, prob, label, out)
    return loop_softmax_output_grad(p, rows, classes, inner, prob, label, out)


def loop_softmax_output_grad(p, rows, classes, inner, prob, label, out):
    """The loop-IR kernel for any layout (the reference the short-row emitter matches).

    With inner == 1 the class loop is the innermost, so it vectorizes with at least W
    classes; the count of valid labels is only computed for normalization "valid", the
    one that uses it.
    """
    dt = prob.dtype
    i, c, r, t = L.Var("i"), L.Var("c"), L.Var("r"), L.Var("t")
    if inner == 1:
        r = L.Const(0, L.INT)
    lab = L.Load(label, i * inner + r)
    # trunc(label) == c in floats, as the short-row emitter: NaN, inf and labels out of
    # range select no class (MXNet), and no float -> int conversion is needed
    onehot = L.Cast(L.Cmp("eq", L.Un("trunc", lab), L.Cast(c, dt)), dt)
    if p.smooth_alpha:
        alpha = p.smooth_alpha
        onehot = onehot * (1.0 - alpha) + (1.0 - onehot) * (alpha / (classes - 1))
    idx = i * (classes * inner) + c * inner + r
    grad = L.Load(prob, idx) - onehot
    if p.use_ignore:
        keep = L.Cast(L.Cmp("ne", lab, L.Const(p.ignore_label, dt)), dt)
        grad = grad * keep
    scale = L.Var("scale", dt)
    per_class = L.Store(out, idx, grad * scale)
    if inner != 1:
        per_class = L.For(r, inner, per_class)
    store = L.For(i, rows, L.For(c, classes, per_class))
    count = L.Var("count", dt)
    factor = _softmax_factor(p, rows, inner, count, dt)
    if p.normalization != "valid":
        return L.make_kernel([prob, label, out], L.Let(scale, factor, store))
    valid = L.Cast(L.Cmp("ne", L.Load(label, t), L.Const(p.ignore_label, dt)), dt)
    body = L.Reduce(count, "sum", t, rows * inner, valid, L.Let(scale, factor, store))
    return L.make_kernel([prob, label, out], body)


def _short_rows_grad(p, rows, classes, prob, label, out):
    """Rows of at most 64 classes: the vector-per-row emitter with the same formula
    (the loop kernel's class loop only vectorizes from W classes on)."""
    on, off = 1.0, 0.0
    if p.smooth_alpha:
        on, off = 1.0 - p.smooth_alpha, p.smooth_alpha / (classes - 1)
    scale = None
    if p.normalization != "valid":
        scale = _softmax_factor(p, rows, 1, None, prob.dtype).value
    return short_softmax_grad_kernel(rows, classes, prob, label, out, grad_scale=p.grad_scale,
                                     scale=scale, on=on, off=off, use_ignore=p.use_ignore,
                                     ignore_label=p.ignore_label)


def _softmax_factor(p, rows, inner, count, dt):
    valid = L.Const(p.grad_scale, dt) / L.Bin("max", count, L.Const(1.0, dt))
    if p.normalization == "valid":
        return valid
    if p.multi_output:
        norm = rows if p.normalization == "batch" else 1
        return L.Const(p.grad_scale / inner / norm, dt)
    if p.normalization == "batch":
        return L.Const(p.grad_scale / (rows * inner), dt)
    return L.Const(p.grad_scale, dt)


def make_loss_grad(p, shape, data, out):
    """Constant gradient grad_scale, / batch, or / count(data > valid_thresh)."""
    dt = data.dtype
    size = math.prod(shape)
    t, j = L.Var("t"), L.Var("j")
    count = L.Var("count", dt)
    if p.normalization == "valid":
        above = L.Cast(L.Cmp("gt", L.Load(data, t), L.Const(p.valid_thresh, dt)), dt)
        scale = L.Const(p.grad_scale, dt) / L.Bin("max", count, L.Const(1.0, dt))
        body = L.Reduce(count, "sum", t, size, above, L.For(j, size, L.Store(out, j, scale)))
        return L.make_kernel([data, out], body)
    value = p.grad_scale / shape[0] if p.normalization == "batch" else p.grad_scale
    return L.make_kernel([data, out], L.For(j, size, L.Store(out, j, L.Const(value, dt))))


def reduce_grad(kind, axes, in_shape, dy, data, red, out, math_ns):
    """dy broadcast back over the reduced axes (/n for mean; masked to the extremum)."""
    kept = tuple(1 if i in axes else d for i, d in enumerate(in_shape))
    count = math.prod(in_shape[i] for i in axes)
    if kind in ("sum", "mean"):
        scale = 1.0 / count if kind == "mean" else 1.0
        return builders.elementwise_kernel(in_shape, [(dy, kept)], lambda g: g * scale, [out])
    inputs = [(dy, kept), (data, in_shape), (red, kept)]
    def formula(g, x, y):
        return g * math_ns.to_float(math_ns.eq(x, y))

    return builders.elementwise_kernel(in_shape, inputs, formula, [out])
