"""Every optimizer update as one scalar formula (see ``symgraph/ops/scalar.py``).

A rule is ``f(m, weight, grad, *states, **scalars) -> (new_weight, *new_states)``. Scalars
(lr, wd, rescale_grad, ...) arrive as *values*: numpy scalars in the reference path, loads
from a scalar buffer in the compiled fused update. So one definition serves both.

Clipping is structural, never data dependent: ``clip_gradient=None`` (the default, a Python
``None``) builds a formula without any clip node; the optimizer only passes a
``clip_gradient`` value when it clips (``Optimizer.rule()`` lists it among the scalar names).
The same holds for RMSProp's ``clip_weights``. Formulas only use ``m.const`` for literals so
IR namespaces never see bare Python floats on the left of an operator.
"""

from __future__ import annotations

__all__ = [
    "clip", "sgd", "sgd_momentum", "nag_momentum", "adam", "adagrad", "rmsprop",
    "rmsprop_centered", "adadelta", "signum", "signsgd", "ftrl", "adamax", "nadam",
]


def clip(m, x, bound):
    """Clamp to [-bound, bound]; ``bound is None`` is a Python-level 'no clip' (no node)."""
    if bound is None:
        return x
    return m.minimum(m.maximum(x, -bound), bound)


def sgd(m, weight, grad, *, lr, wd, rescale_grad, clip_gradient=None):
    """MXNet sgd_update: ``w = (1 - lr*wd)*w - lr*clip(rescale*g)``."""
    g = clip(m, rescale_grad * grad, clip_gradient)
    return ((m.const(1.0) - lr * wd) * weight - lr * g,)


def sgd_momentum(m, weight, grad, mom, *, lr, wd, rescale_grad, momentum, clip_gradient=None):
    """MXNet sgd_mom_update: lr sits inside the momentum buffer, then ``w += mom``."""
    g = clip(m, rescale_grad * grad, clip_gradient)
    mom = momentum * mom - lr * wd * weight - lr * g
    return weight + mom, mom


def nag_momentum(m, weight, grad, mom, *, lr, wd, rescale_grad, momentum, clip_gradient=None):
    """NAG: G = clip(g') + wd*w; mom = mu*mom - lr*G; w += mu*mom - lr*G."""
    g = clip(m, rescale_grad * grad, clip_gradient) + wd * weight
    mom = momentum * mom - lr * g
    return weight + momentum * mom - lr * g, mom


def adam(m, weight, grad, mean, var, *, lr, wd, rescale_grad, beta1, beta2, epsilon,
         clip_gradient=None):
    """Adam with ``lr`` already bias-corrected (lr_t); wd is added *before* clipping."""
    one = m.const(1.0)
    g = clip(m, rescale_grad * grad + wd * weight, clip_gradient)
    mean = beta1 * mean + (one - beta1) * g
    var = beta2 * var + (one - beta2) * g * g
    return weight - lr * mean / (m.sqrt(var) + epsilon), mean, var


def adagrad(m, weight, grad, history, *, lr, wd, rescale_grad, epsilon, clip_gradient=None):
    """Dense AdaGrad: h += G²; ``w -= lr*(G/sqrt(h + eps) + wd*w)``."""
    g = clip(m, rescale_grad * grad, clip_gradient)
    history = history + g * g
    return weight - lr * (g / m.sqrt(history + epsilon) + wd * weight), history


def rmsprop(m, weight, grad, n, *, lr, wd, rescale_grad, gamma1, epsilon, clip_gradient=None,
            clip_weights=None):
    """Tieleman & Hinton RMSProp: n = (1-γ1)G² + γ1·n; ``w -= lr*G/sqrt(n + eps)``."""
    g = clip(m, rescale_grad * grad + wd * weight, clip_gradient)
    n = (m.const(1.0) - gamma1) * g * g + gamma1 * n
    weight = clip(m, weight - lr * g / m.sqrt(n + epsilon), clip_weights)
    return weight, n


def rmsprop_centered(m, weight, grad, n, gbar, delta, *, lr, wd, rescale_grad, gamma1, gamma2,
                     epsilon, clip_gradient=None, clip_weights=None):
    """Graves' centered RMSProp (MXNet rmspropalex_update); states (n, g, delta)."""
    one = m.const(1.0)
    g = clip(m, rescale_grad * grad + wd * weight, clip_gradient)
    n = (one - gamma1) * g * g + gamma1 * n
    gbar = (one - gamma1) * g + gamma1 * gbar
    delta = gamma2 * delta - lr * (g / m.sqrt(n - gbar * gbar + epsilon))
    weight = clip(m, weight + delta, clip_weights)
    return weight, n, gbar, delta


def adadelta(m, weight, grad, acc_g, acc_delta, *, wd, rescale_grad, rho, epsilon,
             clip_gradient=None):
    """Zeiler's AdaDelta (no lr): ``w -= Δ + wd*w``."""
    one = m.const(1.0)
    g = clip(m, rescale_grad * grad, clip_gradient)
    acc_g = rho * acc_g + (one - rho) * g * g
    cur = m.sqrt(acc_delta + epsilon) / m.sqrt(acc_g + epsilon) * g
    acc_delta = rho * acc_delta + (one - rho) * cur * cur
    return weight - (cur + wd * weight), acc_g, acc_delta


def signum(m, weight, grad, mom, *, lr, wd, rescale_grad, momentum, wd_lh, clip_gradient=None):
    """Signum: mom = μ·mom − (1−μ)(wd·w + clip(g')); ``w = (1 − lr·wd_lh)·w + lr·sign(mom)``."""
    one = m.const(1.0)
    g = clip(m, rescale_grad * grad, clip_gradient)
    mom = momentum * mom - (one - momentum) * wd * weight - (one - momentum) * g
    return (one - lr * wd_lh) * weight + lr * m.sign(mom), mom


def signsgd(m, weight, grad, *, lr, wd):
    """signSGD (Signum with momentum 0): rescale and clip are ignored, as in MXNet."""
    return ((m.const(1.0) - lr * wd) * weight - lr * m.sign(grad),)


def ftrl(m, weight, grad, z, n, *, lr, wd, rescale_grad, lamda1, beta, clip_gradient=None):
    """FTRL-proximal (MXNet ftrl_update); weight is 0 where |z| <= lamda1."""
    g = clip(m, rescale_grad * grad, clip_gradient)
    z = z + g - (m.sqrt(n + g * g) - m.sqrt(n)) * weight / lr
    n = n + g * g
    dense = (m.sign(z) * lamda1 - z) / ((beta + m.sqrt(n)) / lr + wd)
    weight = m.select(m.abs(z) > lamda1, dense, m.const(0.0))
    return weight, z, n


def adamax(m, weight, grad, mean, u, *, lr, wd, rescale_grad, beta1, beta2, clip_gradient=None):
    """AdaMax with ``lr`` already divided by (1 - beta1^t); u = max(β2·u, |G|)."""
    g = clip(m, rescale_grad * grad + wd * weight, clip_gradient)
    mean = beta1 * mean + (m.const(1.0) - beta1) * g
    u = m.maximum(beta2 * u, m.abs(g))
    return weight - lr * mean / u, mean, u


def nadam(m, weight, grad, mean, var, *, lr, wd, rescale_grad, beta1, beta2, epsilon,
          momentum_t, momentum_t_1, m_schedule, m_schedule_next, beta2_pow_t,
          clip_gradient=None):
    """Nadam (Dozat); the schedule products are step scalars computed by the optimizer."""
    one = m.const(1.0)
    g = clip(m, rescale_grad * grad + wd * weight, clip_gradient)
    mean = beta1 * mean + (one - beta1) * g
    var = beta2 * var + (one - beta2) * g * g
    g_prime = g / (one - m_schedule)
    m_prime = mean / (one - m_schedule_next)
    v_prime = var / (one - beta2_pow_t)
    m_bar = (one - momentum_t) * g_prime + momentum_t_1 * m_prime
    return weight - lr * m_bar / (m.sqrt(v_prime) + epsilon), mean, var
