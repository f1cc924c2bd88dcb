"""Front-end function of BatchNorm (the op itself is in ``symgraph/ops/batchnorm.py``)."""

from __future__ import annotations

from .common import make

__all__ = ["BatchNorm"]


def BatchNorm(data=None, gamma=None, beta=None, moving_mean=None, moving_var=None, eps=None,
              momentum=None, fix_gamma=None, use_global_stats=None, output_mean_var=None,
              axis=None, cudnn_off=None, name=None, attr=None, **kwargs):
    """Batch normalization over ``axis`` (default 1, the channels of NCHW), MXNet 1.x.

    Training uses the batch mean and biased variance and moves the aux states
    ``<name>_moving_mean``/``<name>_moving_var`` towards them by ``momentum``; inference
    and ``use_global_stats=True`` use the moving statistics. ``fix_gamma=True`` (the
    default) keeps gamma at 1 with a zero gradient. Defaults: ``eps=1e-3``,
    ``momentum=0.9``. ``output_mean_var=True`` also shows ``mean`` and ``var`` (the latter
    holds 1/sqrt(var + eps), as in MXNet).
    """
    return make("BatchNorm", (), name, attr, kwargs, data=data, gamma=gamma, beta=beta,
                moving_mean=moving_mean, moving_var=moving_var, eps=eps, momentum=momentum,
                fix_gamma=fix_gamma, use_global_stats=use_global_stats,
                output_mean_var=output_mean_var, axis=axis, cudnn_off=cudnn_off)
