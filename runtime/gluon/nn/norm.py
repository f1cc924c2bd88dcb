"""Normalization layers over the BatchNorm, LayerNorm and InstanceNorm ops.

BatchNorm's running statistics are Parameters with ``grad_req='null'``: the traced graph
reads them as the op's aux states, bound to the Parameters' own arrays, so a
training step inside ``autograd.record()`` moves them and inference reads them.
"""

from __future__ import annotations

from runtime.gluon.block import HybridBlock


def _vector(block, name, size, init, trainable=True):
    return block.params.get(name, grad_req="write" if trainable else "null", shape=(size,),
                            init=init, allow_deferred_init=True,
                            differentiable=trainable)


class BatchNorm(HybridBlock):
    """MXNet Gluon's BatchNorm: batch statistics in training, running ones otherwise."""

    def __init__(self, axis=1, momentum=0.9, epsilon=1e-5, center=True, scale=True,
                 use_global_stats=False, beta_initializer="zeros", gamma_initializer="ones",
                 running_mean_initializer="zeros", running_variance_initializer="ones",
                 in_channels=0, **kwargs):
        super().__init__(**kwargs)
        self._kwargs = {"axis": axis, "eps": epsilon, "momentum": momentum,
                        "fix_gamma": not scale, "use_global_stats": use_global_stats}
        with self.name_scope():
            self.gamma = _vector(self, "gamma", in_channels, gamma_initializer, scale)
            self.beta = _vector(self, "beta", in_channels, beta_initializer, center)
            self.running_mean = _vector(self, "running_mean", in_channels,
                                        running_mean_initializer, False)
            self.running_var = _vector(self, "running_var", in_channels,
                                       running_variance_initializer, False)

    def hybrid_forward(self, F, x, gamma, beta, running_mean, running_var):
        return F.BatchNorm(x, gamma, beta, running_mean, running_var, **self._kwargs)

    def __repr__(self):
        channels = self.gamma.shape[0] if self.gamma.shape else 0
        return f"BatchNorm(axis={self._kwargs['axis']}, in_channels={channels or None})"


class LayerNorm(HybridBlock):
    """Normalize each position over ``axis``, then scale by gamma and shift by beta."""

    def __init__(self, axis=-1, epsilon=1e-5, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", in_channels=0, **kwargs):
        super().__init__(**kwargs)
        self._axis, self._eps = axis, epsilon
        with self.name_scope():
            self.gamma = _vector(self, "gamma", in_channels, gamma_initializer, scale)
            self.beta = _vector(self, "beta", in_channels, beta_initializer, center)

    def hybrid_forward(self, F, x, gamma, beta):
        return F.LayerNorm(x, gamma, beta, axis=self._axis, eps=self._eps)


class InstanceNorm(HybridBlock):
    """Normalize each (sample, channel) over the spatial axes; ``axis`` is the channel axis
    (swapped to 1 around the op, as MXNet does)."""

    def __init__(self, axis=1, epsilon=1e-5, center=True, scale=False,
                 beta_initializer="zeros", gamma_initializer="ones", in_channels=0, **kwargs):
        super().__init__(**kwargs)
        self._axis, self._eps = axis, epsilon
        with self.name_scope():
            self.gamma = _vector(self, "gamma", in_channels, gamma_initializer, scale)
            self.beta = _vector(self, "beta", in_channels, beta_initializer, center)

    def hybrid_forward(self, F, x, gamma, beta):
        if self._axis == 1:
            return F.InstanceNorm(x, gamma, beta, eps=self._eps)
        x = F.SwapAxis(x, dim1=1, dim2=self._axis)
        out = F.InstanceNorm(x, gamma, beta, eps=self._eps)
        return F.SwapAxis(out, dim1=1, dim2=self._axis)
