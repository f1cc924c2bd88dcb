"""BatchNorm with MXNet 1.x semantics, and the gradient node it differentiates into.

Inputs ``data, gamma, beta`` are arguments; ``moving_mean, moving_var`` (inputs 3 and 4)
are auxiliary states the op updates in place (``mutate_inputs``). Outputs are
``output, mean, var``; only ``output`` is visible unless ``output_mean_var``.

* Training (``is_train`` and not ``use_global_stats``): per-channel batch mean and the
  biased variance (divided by N * spatial), and the moving statistics move towards them,
  ``m = m * momentum + stat * (1 - momentum)``. MXNet's CPU kernels run that update in
  backward; here the training *forward* runs it (as cuDNN and Gluon users see it), after
  every other forward reader of the aux state. Module's forward+backward ends the same.
* Inference or ``use_global_stats``: the moving statistics, unchanged.
* ``fix_gamma`` uses gamma = 1 and gives gamma a zero gradient.
* Output ``var`` holds the inverse standard deviation ``1/sqrt(var + eps)``, as MXNet's
  CPU and cuDNN kernels store it (the backward pass reads it); ``mean`` the mean used.
* Head gradients of ``mean`` and ``var`` are ignored, as MXNet's backward ignores them.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from .array_ops import axis_view
from .params import param
from .registry import OpDef, merge_shape, register

BN_PARAMS = (
    param("eps", "float", 1e-3), param("momentum", "float", 0.9),
    param("fix_gamma", "bool", True), param("use_global_stats", "bool", False),
    param("output_mean_var", "bool", False), param("axis", "int", 1),
    param("cudnn_off", "bool?", False),
)
MOVING_MEAN, MOVING_VAR = 3, 4


def channel_axis(p, ndim: int, node_name: str = "") -> int:
    if not -ndim <= p.axis < ndim:
        raise ShapeError(f"BatchNorm node '{node_name}': axis={p.axis} is out of range for "
                         f"{ndim}-D data")
    return p.axis % ndim


def channel_view(p, shape) -> tuple[int, int, int]:
    """(outer, channels, inner): the data seen as 3-D around the channel axis."""
    return axis_view(tuple(shape), channel_axis(p, len(shape)))


def uses_batch_stats(p, is_train: bool) -> bool:
    return bool(is_train) and not p.use_global_stats


def _per_channel(values, view):
    """A (C,) vector shaped to broadcast against the (outer, C, inner) view."""
    return np.asarray(values).reshape(1, view[1], 1)


@register
class BatchNorm(OpDef):
    name = "BatchNorm"
    hint = "batchnorm"
    params = BN_PARAMS
    arguments = ("data", "gamma", "beta", "moving_mean", "moving_var")
    hidden_outputs = ("mean", "var")

    def mutate_inputs(self, p):
        return (MOVING_MEAN, MOVING_VAR)

    def input_var_attrs(self, p):
        """MXNet's FSetInputVarAttrOnCompose: moving stats start at 0 and 1."""
        return {MOVING_MEAN: {"__init__": '["zero", {}]'},
                MOVING_VAR: {"__init__": '["one", {}]'}}

    def num_visible_outputs(self, p):
        return 3 if p.output_mean_var else 1

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        if data is None:
            return in_shapes, [None, None, None]
        if len(data) == 0:
            raise ShapeError("input 'data' is a scalar; BatchNorm needs a channel axis")
        axis = channel_axis(p, len(data))
        channels = (data[axis],)
        for index, name in enumerate(self.arguments[1:], start=1):
            in_shapes[index] = merge_shape(f"input '{name}'", in_shapes[index], channels)
        return in_shapes, [tuple(data), channels, channels]

    def infer_shape_backward(self, p, in_shapes, out_shapes):
        if in_shapes[0] is None and out_shapes[0] is not None:
            in_shapes[0] = tuple(out_shapes[0])
        return in_shapes

    def reference(self, p, inputs, ctx):
        data, gamma, beta, moving_mean, moving_var = inputs
        view = channel_view(p, data.shape)
        x = data.reshape(view)
        if uses_batch_stats(p, ctx.is_train):
            mean = x.mean(axis=(0, 2))
            var = ((x - _per_channel(mean, view)) ** 2).mean(axis=(0, 2))
            ctx.update_aux(MOVING_MEAN, moving_mean * p.momentum + mean * (1 - p.momentum))
            ctx.update_aux(MOVING_VAR, moving_var * p.momentum + var * (1 - p.momentum))
        else:
            mean, var = moving_mean, moving_var
        invstd = 1.0 / np.sqrt(var + p.eps)
        scale = invstd if p.fix_gamma else invstd * gamma
        y = (x - _per_channel(mean, view)) * _per_channel(scale, view) + _per_channel(beta, view)
        dtype = data.dtype
        return [y.reshape(data.shape).astype(dtype), np.asarray(mean, dtype),
                np.asarray(invstd, dtype)]

    def gradient(self, p, g):
        dy = g.out_grads[0]
        if dy is None:
            return [None] * 5
        dx, dgamma, dbeta = g.op_multi("_batchnorm_grad", dy, g.inputs[0], g.inputs[1],
                                       g.outputs[1], g.outputs[2], **g.node.params.as_dict())
        return [dx if g.needs[0] else None, dgamma if g.needs[1] else None,
                dbeta if g.needs[2] else None, None, None]

    def lower(self, p, ctx):
        from codegen.kernels.batchnorm_kernels import lower_batchnorm

        lower_batchnorm(p, ctx)


@register
class BatchNormGrad(OpDef):
    """Inputs (dy, data, gamma, mean, invstd) -> (d data, d gamma, d beta).

    ``mean``/``invstd`` are the forward's own outputs, so the rule follows the mode the
    forward ran in: with batch statistics the gradient flows through them (the standard
    formula); with moving statistics the op is affine and dx = dy * gamma * invstd.
    """

    name = "_batchnorm_grad"
    params = BN_PARAMS
    arguments = ("dy", "data", "gamma", "mean", "invstd")
    differentiable = False

    def num_outputs(self, p):
        return 3

    def infer_shape(self, p, in_shapes):
        data = in_shapes[1] if in_shapes[1] is not None else in_shapes[0]
        if data is None:
            return in_shapes, [None, None, None]
        channels = (data[channel_axis(p, len(data))],)
        return in_shapes, [tuple(data), channels, channels]

    def reference(self, p, inputs, ctx):
        dy, data, gamma, mean, invstd = inputs
        view = channel_view(p, data.shape)
        count = view[0] * view[2]
        xhat = (data.reshape(view) - _per_channel(mean, view)) * _per_channel(invstd, view)
        g = dy.reshape(view)
        sum_dy, sum_dy_xhat = g.sum(axis=(0, 2)), (g * xhat).sum(axis=(0, 2))
        scale = invstd if p.fix_gamma else invstd * gamma
        if uses_batch_stats(p, ctx.is_train):
            dx = (g - _per_channel(sum_dy / count, view)
                  - xhat * _per_channel(sum_dy_xhat / count, view)) * _per_channel(scale, view)
        else:
            dx = g * _per_channel(scale, view)
        dgamma = np.zeros_like(sum_dy) if p.fix_gamma else sum_dy_xhat
        dtype = data.dtype
        return [dx.reshape(data.shape).astype(dtype), dgamma.astype(dtype),
                sum_dy.astype(dtype)]

    def lower(self, p, ctx):
        from codegen.kernels.batchnorm_kernels import lower_batchnorm_grad

        lower_batchnorm_grad(p, ctx)

