"""Front-end functions of the core layers, losses, arithmetic and reductions."""

from __future__ import annotations

import numbers

from .common import make


def FullyConnected(data=None, weight=None, bias=None, num_hidden=None, no_bias=None,
                   flatten=None, name=None, attr=None, **kwargs):
    """Dense layer ``y = x @ weight.T + bias`` (x flattened to 2-D unless ``flatten=False``).

    Missing ``weight``/``bias`` become variables ``<name>_weight``/``<name>_bias`` whose
    shapes are inferred from the data: ``(num_hidden, features)`` and ``(num_hidden,)``.
    """
    return make("FullyConnected", (), name, attr, kwargs, data=data, weight=weight, bias=bias,
                num_hidden=num_hidden, no_bias=no_bias, flatten=flatten)


def Activation(data=None, act_type=None, name=None, attr=None, **kwargs):
    """Elementwise activation: ``relu``, ``sigmoid``, ``tanh``, ``softrelu`` or ``softsign``."""
    return make("Activation", (), name, attr, kwargs, data=data, act_type=act_type)


def LeakyReLU(data=None, act_type=None, slope=None, lower_bound=None, upper_bound=None,
              name=None, attr=None, **kwargs):
    """Leaky/ELU/SELU/GELU activations (parameter-free act types)."""
    return make("LeakyReLU", (), name, attr, kwargs, data=data, act_type=act_type, slope=slope,
                lower_bound=lower_bound, upper_bound=upper_bound)


def SoftmaxOutput(data=None, label=None, grad_scale=None, ignore_label=None, multi_output=None,
                  use_ignore=None, preserve_shape=None, normalization=None, out_grad=None,
                  smooth_alpha=None, name=None, attr=None, **kwargs):
    """Softmax with a cross-entropy gradient: backward gives ``(p - onehot(label)) *
    grad_scale / norm`` and ignores the head gradient, exactly as MXNet's SoftmaxOutput.

    The label is one class index per row (shape ``data.shape[:-1]``), or probabilities of
    data's own shape. ``normalization`` is ``null`` (no division), ``batch`` or ``valid``.
    """
    return make("SoftmaxOutput", (), name, attr, kwargs, data=data, label=label,
                grad_scale=grad_scale, ignore_label=ignore_label, multi_output=multi_output,
                use_ignore=use_ignore, preserve_shape=preserve_shape,
                normalization=normalization, out_grad=out_grad, smooth_alpha=smooth_alpha)


Softmax = SoftmaxOutput


def LinearRegressionOutput(data=None, label=None, grad_scale=None, name=None, attr=None,
                           **kwargs):
    """Identity forward; gradient ``(out - label) * grad_scale / outputs_per_sample``."""
    return make("LinearRegressionOutput", (), name, attr, kwargs, data=data, label=label,
                grad_scale=grad_scale)


def LogisticRegressionOutput(data=None, label=None, grad_scale=None, name=None, attr=None,
                             **kwargs):
    """Sigmoid forward; gradient ``(sigmoid(x) - label) * grad_scale / outputs_per_sample``."""
    return make("LogisticRegressionOutput", (), name, attr, kwargs, data=data, label=label,
                grad_scale=grad_scale)


def MAERegressionOutput(data=None, label=None, grad_scale=None, name=None, attr=None, **kwargs):
    """Identity forward; gradient ``sign(out - label) * grad_scale / outputs_per_sample``."""
    return make("MAERegressionOutput", (), name, attr, kwargs, data=data, label=label,
                grad_scale=grad_scale)


def MakeLoss(data=None, grad_scale=None, valid_thresh=None, normalization=None, name=None,
             attr=None, **kwargs):
    """Treat ``data`` as a loss: identity forward, constant gradient ``grad_scale``
    (divided by the batch size or the count above ``valid_thresh`` per ``normalization``)."""
    return make("MakeLoss", (), name, attr, kwargs, data=data, grad_scale=grad_scale,
                valid_thresh=valid_thresh, normalization=normalization)


def make_loss(data=None, name=None, attr=None, **kwargs):
    """Lower-case make_loss: identity forward, gradient of ones."""
    return MakeLoss(data=data, name=name, attr=attr, **kwargs)


def BlockGrad(data=None, name=None, attr=None, **kwargs):
    """Identity forward, zero gradient: stops backpropagation through ``data``."""
    return make("BlockGrad", (), name, attr, kwargs, data=data)


stop_gradient = BlockGrad


def Flatten(data=None, name=None, attr=None, **kwargs):
    """Collapse every axis after the first: ``(d0, d1, ..., dn) -> (d0, d1*...*dn)``."""
    return make("Flatten", (), name, attr, kwargs, data=data)


flatten = Flatten


def Reshape(data=None, shape=None, reverse=None, target_shape=None, keep_highest=None,
            name=None, attr=None, **kwargs):
    """Reshape with MXNet's codes: 0 copy a dim, -1 infer, -2 copy the rest, -3 merge two,
    -4 split one into two. ``reverse`` reads the codes right to left."""
    return make("Reshape", (), name, attr, kwargs, data=data, shape=shape, reverse=reverse,
                target_shape=target_shape, keep_highest=keep_highest)


reshape = Reshape


def dot(lhs=None, rhs=None, transpose_a=None, transpose_b=None, forward_stype=None, name=None,
        attr=None, **kwargs):
    """Matrix product (N-D: contract lhs's last axis with rhs's first)."""
    return make("dot", (), name, attr, kwargs, lhs=lhs, rhs=rhs, transpose_a=transpose_a,
                transpose_b=transpose_b, forward_stype=forward_stype)


def _reduction(op):
    def reduce(data=None, axis=None, keepdims=None, exclude=None, name=None, attr=None,
               **kwargs):
        return make(op, (), name, attr, kwargs, data=data, axis=axis, keepdims=keepdims,
                    exclude=exclude)

    return reduce


def sum(data=None, axis=None, keepdims=None, exclude=None, name=None, attr=None, **kwargs):  # noqa: A001
    """Sum over ``axis`` (all axes by default: the result then has shape ``(1,)``)."""
    return _reduction("sum")(data, axis, keepdims, exclude, name, attr, **kwargs)


sum_axis = sum


def mean(data=None, axis=None, keepdims=None, exclude=None, name=None, attr=None, **kwargs):
    """Mean over ``axis`` (all axes by default)."""
    return _reduction("mean")(data, axis, keepdims, exclude, name, attr, **kwargs)


def max(data=None, axis=None, keepdims=None, exclude=None, name=None, attr=None, **kwargs):  # noqa: A001
    """Maximum over ``axis``; the gradient goes to the maximal elements."""
    return _reduction("max")(data, axis, keepdims, exclude, name, attr, **kwargs)


def min(data=None, axis=None, keepdims=None, exclude=None, name=None, attr=None, **kwargs):  # noqa: A001
    """Minimum over ``axis``; the gradient goes to the minimal elements."""
    return _reduction("min")(data, axis, keepdims, exclude, name, attr, **kwargs)


def add_n(*args, name=None, attr=None, **kwargs):
    """Sum of any number of same-shape symbols."""
    return make("add_n", args, name, attr, kwargs)


ElementWiseSum = add_n


def zeros_like(data=None, name=None, attr=None, **kwargs):
    """Zeros of data's shape."""
    return make("zeros_like", (), name, attr, kwargs, data=data)


def ones_like(data=None, name=None, attr=None, **kwargs):
    """Ones of data's shape."""
    return make("ones_like", (), name, attr, kwargs, data=data)


def exp(data=None, name=None, attr=None, **kwargs):
    """Elementwise e**x."""
    return make("exp", (), name, attr, kwargs, data=data)


def log(data=None, name=None, attr=None, **kwargs):
    """Elementwise natural logarithm."""
    return make("log", (), name, attr, kwargs, data=data)


def log1p(data=None, name=None, attr=None, **kwargs):
    """Elementwise log(1 + x), accurate near 0."""
    return make("log1p", (), name, attr, kwargs, data=data)


def sqrt(data=None, name=None, attr=None, **kwargs):
    """Elementwise square root."""
    return make("sqrt", (), name, attr, kwargs, data=data)


def rsqrt(data=None, name=None, attr=None, **kwargs):
    """Elementwise 1/sqrt(x)."""
    return make("rsqrt", (), name, attr, kwargs, data=data)


def square(data=None, name=None, attr=None, **kwargs):
    """Elementwise x*x."""
    return make("square", (), name, attr, kwargs, data=data)


def abs(data=None, name=None, attr=None, **kwargs):  # noqa: A001
    """Elementwise absolute value."""
    return make("abs", (), name, attr, kwargs, data=data)


def negative(data=None, name=None, attr=None, **kwargs):
    """Elementwise -x."""
    return make("negative", (), name, attr, kwargs, data=data)


def reciprocal(data=None, name=None, attr=None, **kwargs):
    """Elementwise 1/x."""
    return make("reciprocal", (), name, attr, kwargs, data=data)


def sign(data=None, name=None, attr=None, **kwargs):
    """Elementwise sign (-1, 0, 1); zero gradient."""
    return make("sign", (), name, attr, kwargs, data=data)


def floor(data=None, name=None, attr=None, **kwargs):
    """Elementwise floor; zero gradient."""
    return make("floor", (), name, attr, kwargs, data=data)


def ceil(data=None, name=None, attr=None, **kwargs):
    """Elementwise ceil; zero gradient."""
    return make("ceil", (), name, attr, kwargs, data=data)


def round(data=None, name=None, attr=None, **kwargs):  # noqa: A001
    """Elementwise round half away from zero; zero gradient."""
    return make("round", (), name, attr, kwargs, data=data)


def relu(data=None, name=None, attr=None, **kwargs):
    """Elementwise max(x, 0)."""
    return make("relu", (), name, attr, kwargs, data=data)


def sigmoid(data=None, name=None, attr=None, **kwargs):
    """Elementwise 1 / (1 + e**-x)."""
    return make("sigmoid", (), name, attr, kwargs, data=data)


def tanh(data=None, name=None, attr=None, **kwargs):
    """Elementwise hyperbolic tangent."""
    return make("tanh", (), name, attr, kwargs, data=data)


def softsign(data=None, name=None, attr=None, **kwargs):
    """Elementwise x / (1 + |x|)."""
    return make("softsign", (), name, attr, kwargs, data=data)


def clip(data=None, a_min=None, a_max=None, name=None, attr=None, **kwargs):
    """Clamp to [a_min, a_max]; gradient 1 inside the interval, 0 outside."""
    return make("clip", (), name, attr, kwargs, data=data, a_min=a_min, a_max=a_max)


def _binary_or_scalar(op, scalar_op, rscalar_op, lhs, rhs, name):
    from ..symbol import Symbol

    if isinstance(lhs, Symbol) and isinstance(rhs, Symbol):
        return make(op, (lhs, rhs), name)
    if isinstance(lhs, Symbol) and isinstance(rhs, numbers.Number):
        return make(scalar_op, (lhs,), name, scalar=float(rhs))
    if isinstance(rhs, Symbol) and isinstance(lhs, numbers.Number):
        return make(rscalar_op, (rhs,), name, scalar=float(lhs))
    raise TypeError(f"{op}: expected Symbols or numbers, got {type(lhs)} and {type(rhs)}")


def maximum(left, right, name=None):
    """Elementwise maximum of two symbols, or of a symbol and a number."""
    return _binary_or_scalar("_maximum", "_maximum_scalar", "_maximum_scalar", left, right, name)


def minimum(left, right, name=None):
    """Elementwise minimum of two symbols, or of a symbol and a number."""
    return _binary_or_scalar("_minimum", "_minimum_scalar", "_minimum_scalar", left, right, name)


def power(base, exp, name=None):  # noqa: A002
    """``base ** exp`` for symbols and numbers on either side."""
    return _binary_or_scalar("_power", "_power_scalar", "_rpower_scalar", base, exp, name)


pow = power  # noqa: A001


def hypot(left, right, name=None):
    """sqrt(left**2 + right**2)."""
    return _binary_or_scalar("_hypot", "_hypot_scalar", "_hypot_scalar", left, right, name)


def broadcast_add(lhs=None, rhs=None, name=None, attr=None, **kwargs):
    """lhs + rhs with numpy broadcasting."""
    return make("broadcast_add", (), name, attr, kwargs, lhs=lhs, rhs=rhs)


broadcast_plus = broadcast_add


def broadcast_sub(lhs=None, rhs=None, name=None, attr=None, **kwargs):
    """lhs - rhs with numpy broadcasting."""
    return make("broadcast_sub", (), name, attr, kwargs, lhs=lhs, rhs=rhs)


broadcast_minus = broadcast_sub


def broadcast_mul(lhs=None, rhs=None, name=None, attr=None, **kwargs):
    """lhs * rhs with numpy broadcasting."""
    return make("broadcast_mul", (), name, attr, kwargs, lhs=lhs, rhs=rhs)


def broadcast_div(lhs=None, rhs=None, name=None, attr=None, **kwargs):
    """lhs / rhs with numpy broadcasting."""
    return make("broadcast_div", (), name, attr, kwargs, lhs=lhs, rhs=rhs)


def broadcast_power(lhs=None, rhs=None, name=None, attr=None, **kwargs):
    """lhs ** rhs with numpy broadcasting."""
    return make("broadcast_power", (), name, attr, kwargs, lhs=lhs, rhs=rhs)


def broadcast_maximum(lhs=None, rhs=None, name=None, attr=None, **kwargs):
    """Elementwise maximum with numpy broadcasting."""
    return make("broadcast_maximum", (), name, attr, kwargs, lhs=lhs, rhs=rhs)


def broadcast_minimum(lhs=None, rhs=None, name=None, attr=None, **kwargs):
    """Elementwise minimum with numpy broadcasting."""
    return make("broadcast_minimum", (), name, attr, kwargs, lhs=lhs, rhs=rhs)


def elemwise_add(lhs=None, rhs=None, name=None, attr=None, **kwargs):
    """lhs + rhs (equal shapes)."""
    return make("elemwise_add", (), name, attr, kwargs, lhs=lhs, rhs=rhs)


def elemwise_sub(lhs=None, rhs=None, name=None, attr=None, **kwargs):
    """lhs - rhs (equal shapes)."""
    return make("elemwise_sub", (), name, attr, kwargs, lhs=lhs, rhs=rhs)


def elemwise_mul(lhs=None, rhs=None, name=None, attr=None, **kwargs):
    """lhs * rhs (equal shapes)."""
    return make("elemwise_mul", (), name, attr, kwargs, lhs=lhs, rhs=rhs)


def elemwise_div(lhs=None, rhs=None, name=None, attr=None, **kwargs):
    """lhs / rhs (equal shapes)."""
    return make("elemwise_div", (), name, attr, kwargs, lhs=lhs, rhs=rhs)


def Convolution(data=None, weight=None, bias=None, kernel=None, stride=None, dilate=None,
                pad=None, num_filter=None, num_group=None, workspace=None, no_bias=None,
                cudnn_tune=None, cudnn_off=None, layout=None, name=None, attr=None, **kwargs):
    """2-D cross-correlation of NCHW ``data`` (MXNet's Convolution, as in caffe).

    Output ``(N, num_filter, OH, OW)`` with ``OH = floor((H + 2*pad - (dilate*(k-1)+1)) /
    stride) + 1``. Missing ``weight``/``bias`` become ``<name>_weight`` of shape
    ``(num_filter, C/num_group, kh, kw)`` and ``<name>_bias`` of shape ``(num_filter,)``.
    ``workspace``, ``cudnn_tune`` and ``cudnn_off`` are accepted and ignored; ``layout``
    must be NCHW.
    """
    return make("Convolution", (), name, attr, kwargs, data=data, weight=weight, bias=bias,
                kernel=kernel, stride=stride, dilate=dilate, pad=pad, num_filter=num_filter,
                num_group=num_group, workspace=workspace, no_bias=no_bias,
                cudnn_tune=cudnn_tune, cudnn_off=cudnn_off, layout=layout)


def Pooling(data=None, kernel=None, pool_type=None, global_pool=None, cudnn_off=None,
            pooling_convention=None, stride=None, pad=None, p_value=None,
            count_include_pad=None, layout=None, name=None, attr=None, **kwargs):
    """2-D pooling of NCHW ``data``: ``pool_type`` max, avg or sum.

    ``pooling_convention='valid'`` gives ``1 + floor((H + 2*pad - k) / stride)`` outputs,
    ``'full'`` rounds up instead; ``global_pool=True`` pools each whole plane to 1x1. A max
    never picks padding and its gradient goes to the first maximal cell of the window; avg
    divides by the window clipped to the padded input (``count_include_pad``, default True)
    or by the cells inside the input.
    """
    return make("Pooling", (), name, attr, kwargs, data=data, kernel=kernel,
                pool_type=pool_type, global_pool=global_pool, cudnn_off=cudnn_off,
                pooling_convention=pooling_convention, stride=stride, pad=pad,
                p_value=p_value, count_include_pad=count_include_pad, layout=layout)
