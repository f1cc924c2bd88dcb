"""BatchNorm's kernels: one pass for the statistics, one fusable pass to normalize.

The data is seen as (outer, C, inner) around the channel axis. Forward in training:

1. ``stats``: one read of the data accumulates, per (channel, inner) position, the sum and
   the sum of squares of ``x - K[c]`` over ``outer`` (the loop runs along contiguous
   memory, so it vectorizes for any layout); each channel then reduces its row. ``K[c]``
   is the channel's first element: the shift keeps ``E[d^2] - E[d]^2`` from cancelling
   when the mean is large against the spread. It writes mean, invstd and the per-channel
   ``scale = gamma * invstd`` and ``shift = beta - mean * scale``.
2. ``y = x * scale[c] + shift[c]``: an elementwise call with broadcast inputs, so the
   fusion pass merges a following activation into the same loop.
3. The moving-average update of the aux states, a C-element kernel that declares its
   in-place writes (``mutates``); the compiler runs it after every other forward call.

Inference (or ``use_global_stats``) replaces step 1 by a C-element kernel on the moving
statistics and has no step 3. Backward mirrors the forward: one pass accumulates
``sum(dy)`` and ``sum(dy * (x - mean))``, then ``dx = a[c] * dy + b[c] * x + c0[c]`` is one
fusable elementwise pass.
"""

from __future__ import annotations

import math

from codegen import loop_ir as L
from codegen.fusion_spec import ElementwiseSpec
from codegen.kernels import builders
from symgraph.ops.batchnorm import (
    MOVING_MEAN,
    MOVING_VAR,
    channel_axis,
    channel_view,
    uses_batch_stats,
)
from symgraph.ops.norm import axis_shape


def _buf(name, dtype, size):
    return L.BufferParam(name, dtype, size)


def _const(value, dtype):
    return L.Const(float(value), dtype)


def _channel_sums(view, dtype, values, accs):
    """for o, c, i: accs[k][c*inner + i] += values[k](flat, c, first) (accs zeroed first;
    ``flat`` indexes the element, ``first`` the channel's first element).

    The innermost loop walks contiguous memory of both the data and the accumulators,
    so it vectorizes whether ``inner`` or ``C`` is the long dimension."""
    outer, channels, inner = view
    o, c, i, j = L.Var("o"), L.Var("c"), L.Var("i"), L.Var("j")
    zero = L.For(j, channels * inner, L.block(*(L.Store(a, j, _const(0, dtype)) for a in accs)))
    pos = c * inner + i if inner > 1 else c
    flat = o * (channels * inner) + pos
    first = c * inner if inner > 1 else c
    body = L.block(*(L.Store(a, pos, L.Load(a, pos) + f(flat, c, first))
                     for a, f in zip(accs, values)))
    body = L.For(i, inner, body) if inner > 1 else body
    return L.Block((zero, L.For(o, outer, L.For(c, channels, body))))


def _row_sums(view, accs, names, finish):
    """for c: s_k = sum_i accs[k][c*inner + i]; then ``finish(c, *s)``."""
    _, channels, inner = view
    c = L.Var("c")
    sums = [L.Var(n, a.dtype) for n, a in zip(names, accs)]
    body = finish(c, *sums)
    for k in reversed(range(len(accs))):
        r = L.Var(f"r{k}")
        body = L.Reduce(sums[k], "sum", r, inner, L.Load(accs[k], c * inner + r), body)
    return L.For(c, channels, body)


def stats_kernel(p, view, dtype):
    """Batch statistics: mean, invstd and the normalize coefficients (training forward)."""
    outer, channels, inner = view
    size, count = outer * channels * inner, outer * inner
    x, gamma, beta = _buf("in0", dtype, size), _buf("in1", dtype, channels), _buf(
        "in2", dtype, channels)
    mean, invstd = _buf("out1", dtype, channels), _buf("out2", dtype, channels)
    scale, shift = _buf("scale", dtype, channels), _buf("shift", dtype, channels)
    acc_s, acc_q = _buf("acc_s", dtype, channels * inner), _buf("acc_q", dtype, channels * inner)

    def shifted(flat, c, first):
        return L.Load(x, flat) - L.Load(x, first)

    def squared(flat, c, first):
        d = shifted(flat, c, first)
        return d * d

    first_of = (lambda c: c * inner) if inner > 1 else (lambda c: c)

    def finish(c, s, q):
        m_d, var, inv = L.Var("m_d", dtype), L.Var("var", dtype), L.Var("inv", dtype)
        mu, g = L.Var("mu", dtype), L.Var("g", dtype)
        gamma_value = _const(1, dtype) if p.fix_gamma else L.Load(gamma, c)
        stores = L.block(L.Store(mean, c, mu), L.Store(invstd, c, inv),
                         L.Store(scale, c, g), L.Store(shift, c, L.Load(beta, c) - mu * g))
        var_value = L.Bin("max", q / _const(count, dtype) - m_d * m_d, _const(0, dtype))
        inv_value = _const(1, dtype) / L.Un("sqrt", var + _const(p.eps, dtype))
        return L.Let(m_d, s / _const(count, dtype), L.Let(var, var_value, L.Let(
            inv, inv_value, L.Let(mu, L.Load(x, first_of(c)) + m_d, L.Let(
                g, inv * gamma_value, stores)))))

    body = L.Block((_channel_sums(view, dtype, (shifted, squared), (acc_s, acc_q)),
                    _row_sums(view, (acc_s, acc_q), ("s", "q"), finish)))
    return L.make_kernel([x, gamma, beta, mean, invstd, scale, shift, acc_s, acc_q], body)


def moving_stats_kernel(p, channels, dtype):
    """Inference / global stats: mean = moving_mean, invstd from moving_var."""
    gamma, beta = _buf("in1", dtype, channels), _buf("in2", dtype, channels)
    mm, mv = _buf("in3", dtype, channels), _buf("in4", dtype, channels)
    mean, invstd = _buf("out1", dtype, channels), _buf("out2", dtype, channels)
    scale, shift = _buf("scale", dtype, channels), _buf("shift", dtype, channels)
    c, inv, g = L.Var("c"), L.Var("inv", dtype), L.Var("g", dtype)
    gamma_value = _const(1, dtype) if p.fix_gamma else L.Load(gamma, c)
    stores = L.block(L.Store(mean, c, L.Load(mm, c)), L.Store(invstd, c, inv),
                     L.Store(scale, c, g), L.Store(shift, c, L.Load(beta, c) - L.Load(mm, c) * g))
    inv_value = _const(1, dtype) / L.Un("sqrt", L.Load(mv, c) + _const(p.eps, dtype))
    body = L.For(c, channels, L.Let(inv, inv_value, L.Let(g, inv * gamma_value, stores)))
    return L.make_kernel([gamma, beta, mm, mv, mean, invstd, scale, shift], body)


def moving_update_kernel(p, channels, dtype):
    """m = m * momentum + batch_stat * (1 - momentum); the variance is recovered from the
    stored invstd as MXNet's backward does (1 / invstd^2 - eps)."""
    mean, invstd = _buf("in1", dtype, channels), _buf("in2", dtype, channels)
    mm, mv = _buf("mut3", dtype, channels), _buf("mut4", dtype, channels)
    c = L.Var("c")
    keep, take = _const(p.momentum, dtype), _const(1 - p.momentum, dtype)
    inv = L.Load(invstd, c)
    var = _const(1, dtype) / (inv * inv) - _const(p.eps, dtype)
    body = L.For(c, channels, L.block(
        L.Store(mm, c, L.Load(mm, c) * keep + L.Load(mean, c) * take),
        L.Store(mv, c, L.Load(mv, c) * keep + var * take)))
    return L.make_kernel([mean, invstd, mm, mv], body)


def _per_channel_shape(shape, p):
    axis = channel_axis(p, len(shape))
    return axis_shape(len(shape), axis, shape[axis])


def _affine_call(ctx, shape, inputs, formula, out_key):
    """An elementwise call ``out = formula(*inputs)`` over ``shape`` that fusion can merge;
    ``inputs`` are (key, broadcast shape)."""
    dtype = ctx.dtype
    params = [(_buf(f"in{k}", dtype, math.prod(s)), s) for k, (_, s) in enumerate(inputs)]
    out = _buf("out0", dtype, math.prod(shape))
    kernel = builders.elementwise_kernel(shape, params, formula, [out])
    keys = tuple(key for key, _ in inputs)
    spec = ElementwiseSpec(keys, tuple(s for _, s in inputs), (out_key,), tuple(shape),
                           (dtype,), formula)
    bindings = {f"in{k}": key for k, key in enumerate(keys)}
    bindings["out0"] = out_key
    ctx.emit(kernel, bindings, spec)


def lower_batchnorm(p, ctx):
    shape = ctx.in_shapes[0]
    view = channel_view(p, shape)
    channels, dtype = view[1], ctx.dtype
    scale, shift = ctx.temp(channels), ctx.temp(channels)
    training = uses_batch_stats(p, ctx.is_train)
    if training:
        accs = {"acc_s": ctx.temp(channels * view[2]), "acc_q": ctx.temp(channels * view[2])}
        ctx.emit(stats_kernel(p, view, dtype), {"scale": scale, "shift": shift, **accs})
    else:
        ctx.emit(moving_stats_kernel(p, channels, dtype), {"scale": scale, "shift": shift})
    per_channel = _per_channel_shape(shape, p)
    _affine_call(ctx, shape, [(ctx.in_keys[0], shape), (scale, per_channel),
                              (shift, per_channel)],
                 lambda x, s, b: x * s + b, ctx.out_keys[0])
    if training:
        ctx.emit(moving_update_kernel(p, channels, dtype),
                 {"in1": ctx.out_keys[1], "in2": ctx.out_keys[2],
                  "mut3": ctx.in_keys[MOVING_MEAN], "mut4": ctx.in_keys[MOVING_VAR]},
                 mutates=(MOVING_MEAN, MOVING_VAR))


def grad_stats_kernel(p, view, dtype, training):
    """dgamma, dbeta and the per-channel coefficients of dx = a*dy + b*x + c0."""
    outer, channels, inner = view
    size, count = outer * channels * inner, outer * inner
    dy, x = _buf("in0", dtype, size), _buf("in1", dtype, size)
    gamma, mean, invstd = (_buf(f"in{k}", dtype, channels) for k in (2, 3, 4))
    dgamma, dbeta = _buf("out1", dtype, channels), _buf("out2", dtype, channels)
    ca, cb, cc = (_buf(n, dtype, channels) for n in ("coef_a", "coef_b", "coef_c"))
    acc_g, acc_gx = _buf("acc_g", dtype, channels * inner), _buf("acc_gx", dtype,
                                                                 channels * inner)

    def grad(flat, c, first):
        return L.Load(dy, flat)

    def grad_x(flat, c, first):
        return L.Load(dy, flat) * (L.Load(x, flat) - L.Load(mean, c))

    def finish(c, sg, sgx):
        inv, a, b = L.Var("inv", dtype), L.Var("a", dtype), L.Var("b", dtype)
        gamma_value = _const(1, dtype) if p.fix_gamma else L.Load(gamma, c)
        dgamma_value = _const(0, dtype) if p.fix_gamma else sgx * inv
        if training:
            b_value = -(a * inv * inv * sgx) / _const(count, dtype)
            c_value = -(a * sg) / _const(count, dtype) - b * L.Load(mean, c)
        else:
            b_value, c_value = _const(0, dtype), _const(0, dtype)
        stores = L.block(L.Store(dgamma, c, dgamma_value), L.Store(dbeta, c, sg),
                         L.Store(ca, c, a), L.Store(cb, c, b), L.Store(cc, c, c_value))
        return L.Let(inv, L.Load(invstd, c), L.Let(a, inv * gamma_value, L.Let(
            b, b_value, stores)))

    body = L.Block((_channel_sums(view, dtype, (grad, grad_x), (acc_g, acc_gx)),
                    _row_sums(view, (acc_g, acc_gx), ("sg", "sgx"), finish)))
    return L.make_kernel([dy, x, gamma, mean, invstd, dgamma, dbeta, ca, cb, cc, acc_g,
                          acc_gx], body)


def lower_batchnorm_grad(p, ctx):
    shape = ctx.in_shapes[1]
    view = channel_view(p, shape)
    channels, dtype = view[1], ctx.dtype
    training = uses_batch_stats(p, ctx.is_train)
    coefs = {n: ctx.temp(channels) for n in ("coef_a", "coef_b", "coef_c")}
    accs = {"acc_g": ctx.temp(channels * view[2]), "acc_gx": ctx.temp(channels * view[2])}
    ctx.emit(grad_stats_kernel(p, view, dtype, training), {**coefs, **accs})
    per_channel = _per_channel_shape(shape, p)
    if training:
        inputs = [(ctx.in_keys[0], shape), (ctx.in_keys[1], shape),
                  (coefs["coef_a"], per_channel), (coefs["coef_b"], per_channel),
                  (coefs["coef_c"], per_channel)]
        _affine_call(ctx, shape, inputs, lambda g, x, a, b, c0: g * a + x * b + c0,
                     ctx.out_keys[0])
    else:
        _affine_call(ctx, shape, [(ctx.in_keys[0], shape), (coefs["coef_a"], per_channel)],
                     lambda g, a: g * a, ctx.out_keys[0])
