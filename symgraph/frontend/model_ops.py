"""Front-end functions of the ops MXNet 1.x models use beyond the core layers: transposed
convolution, upsampling, padding, normalization layers, casts, gathers, slices, copies,
losses and sorting."""

from __future__ import annotations

from .common import make

_UNSET = object()  # distinguishes "not given" from an explicit axis=None (flatten)


def _axis(axis):
    """MXNet passes an explicit ``axis=None`` on as "None" (sort the flattened input)."""
    return None if axis is _UNSET else ("None" if axis is None else axis)

__all__ = [
    "Deconvolution", "UpSampling", "Pad", "pad", "LRN", "InstanceNorm", "LayerNorm",
    "L2Normalization", "Cast", "cast", "where", "batch_dot", "take", "pick", "slice", "crop",
    "slice_like", "tile", "repeat", "stack", "smooth_l1", "softmax_cross_entropy", "topk",
    "sort", "argsort",
]


# ---- layers --------------------------------------------------------------------------------------
def Deconvolution(data=None, weight=None, bias=None, kernel=None, stride=None, dilate=None,
                  pad=None, adj=None, target_shape=None, num_filter=None, num_group=None,
                  workspace=None, no_bias=None, cudnn_tune=None, cudnn_off=None, layout=None,
                  name=None, attr=None, **kwargs):
    """Transposed 2-D convolution (NCHW); weight ``(C, num_filter / num_group, kh, kw)``.

    Output ``stride (x - 1) + dilate (k - 1) + 1 - 2 pad + adj`` per spatial axis, or
    ``target_shape`` (pad and adj are then derived). ``no_bias`` defaults to True.
    """
    return make("Deconvolution", (), name, attr, kwargs, data=data, weight=weight, bias=bias,
                kernel=kernel, stride=stride, dilate=dilate, pad=pad, adj=adj,
                target_shape=target_shape, num_filter=num_filter, num_group=num_group,
                workspace=workspace, no_bias=no_bias, cudnn_tune=cudnn_tune,
                cudnn_off=cudnn_off, layout=layout)


def UpSampling(*data, scale=None, num_filter=None, sample_type=None, multi_input_mode=None,
               num_args=None, workspace=None, name=None, attr=None, **kwargs):
    """Upsample NCHW data by ``scale``: ``sample_type='nearest'`` (any number of inputs,
    each grown to the first's size times scale, then concatenated along channels or summed)
    or ``'bilinear'`` (one input and a ``weight`` (C, 1, k, k), k = 2 scale - scale % 2)."""
    if num_args is None:
        num_args = len(data) if sample_type != "bilinear" else 2
    return make("UpSampling", data, name, attr, kwargs, scale=scale, num_filter=num_filter,
                sample_type=sample_type, multi_input_mode=multi_input_mode, num_args=num_args,
                workspace=workspace)


def Pad(data=None, mode=None, pad_width=None, constant_value=None, name=None, attr=None,
        **kwargs):
    """Pad the spatial axes of 4-D/5-D data: ``mode`` constant (``constant_value``), edge
    or reflect; ``pad_width`` gives (before, after) for every axis, batch and channel 0."""
    return make("Pad", (), name, attr, kwargs, data=data, mode=mode, pad_width=pad_width,
                constant_value=constant_value)


pad = Pad


def LRN(data=None, alpha=None, beta=None, knorm=None, nsize=None, name=None, attr=None,
        **kwargs):
    """Local response normalization over ``nsize`` neighbouring channels."""
    return make("LRN", (), name, attr, kwargs, data=data, alpha=alpha, beta=beta, knorm=knorm,
                nsize=nsize)


def InstanceNorm(data=None, gamma=None, beta=None, eps=None, name=None, attr=None, **kwargs):
    """Normalize each (sample, channel) over space; gamma/beta scale and shift per channel."""
    return make("InstanceNorm", (), name, attr, kwargs, data=data, gamma=gamma, beta=beta,
                eps=eps)


def LayerNorm(data=None, gamma=None, beta=None, axis=None, eps=None, output_mean_var=None,
              name=None, attr=None, **kwargs):
    """Normalize over ``axis`` (default -1), then scale/shift by gamma/beta of that size."""
    return make("LayerNorm", (), name, attr, kwargs, data=data, gamma=gamma, beta=beta,
                axis=axis, eps=eps, output_mean_var=output_mean_var)


def L2Normalization(data=None, eps=None, mode=None, name=None, attr=None, **kwargs):
    """``x / sqrt(sum x^2 + eps)`` per instance (default), channel position or spatial map."""
    return make("L2Normalization", (), name, attr, kwargs, data=data, eps=eps, mode=mode)


# ---- element types and selections ---------------------------------------------------------------
def Cast(data=None, dtype=None, name=None, attr=None, **kwargs):
    """Convert to ``dtype`` (float32 or float64); the gradient converts back."""
    return make("Cast", (), name, attr, kwargs, data=data, dtype=dtype)


cast = Cast


def where(condition=None, x=None, y=None, name=None, attr=None, **kwargs):
    """``x`` where ``condition`` is non-zero, else ``y``; a 1-D condition selects rows."""
    return make("where", (), name, attr, kwargs, condition=condition, x=x, y=y)


def batch_dot(lhs=None, rhs=None, transpose_a=None, transpose_b=None, forward_stype=None,
              name=None, attr=None, **kwargs):
    """``out[b] = lhs[b] @ rhs[b]`` for 3-D inputs (either side optionally transposed)."""
    return make("batch_dot", (), name, attr, kwargs, lhs=lhs, rhs=rhs, transpose_a=transpose_a,
                transpose_b=transpose_b, forward_stype=forward_stype)


def take(a=None, indices=None, axis=None, mode=None, name=None, attr=None, **kwargs):
    """Entries of ``a`` along ``axis`` at ``indices`` (mode clip or wrap)."""
    return make("take", (), name, attr, kwargs, a=a, indices=indices, axis=axis, mode=mode)


def pick(data=None, index=None, axis=None, keepdims=None, mode=None, name=None, attr=None,
         **kwargs):
    """One entry per position along ``axis`` (default -1), chosen by ``index``."""
    return make("pick", (), name, attr, kwargs, data=data, index=index, axis=axis,
                keepdims=keepdims, mode=mode)


def slice(data=None, begin=None, end=None, step=None, name=None, attr=None, **kwargs):  # noqa: A001
    """``data[b0:e0:s0, b1:e1:s1, ...]``; None entries take Python's defaults."""
    return make("slice", (), name, attr, kwargs, data=data, begin=begin, end=end, step=step)


crop = slice


def slice_like(data=None, shape_like=None, axes=None, name=None, attr=None, **kwargs):
    """``data`` cut (from index 0) to the sizes of ``shape_like`` on ``axes`` (all)."""
    return make("slice_like", (), name, attr, kwargs, data=data, shape_like=shape_like,
                axes=axes)


# ---- copies --------------------------------------------------------------------------------------
def tile(data=None, reps=None, name=None, attr=None, **kwargs):
    """numpy.tile: ``data`` repeated ``reps`` times along each axis."""
    return make("tile", (), name, attr, kwargs, data=data, reps=reps)


def repeat(data=None, repeats=None, axis=None, name=None, attr=None, **kwargs):
    """numpy.repeat: each element ``repeats`` times along ``axis`` (flattened if None)."""
    return make("repeat", (), name, attr, kwargs, data=data, repeats=repeats, axis=axis)


def stack(*data, axis=None, num_args=None, name=None, attr=None, **kwargs):
    """Join equal-shape inputs along a new axis ``axis`` (default 0)."""
    return make("stack", data, name, attr, kwargs, axis=axis)


# ---- losses --------------------------------------------------------------------------------------
def smooth_l1(data=None, scalar=None, name=None, attr=None, **kwargs):
    """Smooth L1 with sigma = ``scalar``: quadratic inside |x| < 1/sigma^2, linear outside."""
    return make("smooth_l1", (), name, attr, kwargs, data=data, scalar=scalar)


def softmax_cross_entropy(data=None, label=None, name=None, attr=None, **kwargs):
    """Summed cross entropy of softmax(data) rows against integer labels: shape (1,)."""
    return make("softmax_cross_entropy", (), name, attr, kwargs, data=data, label=label)


# ---- sorting -------------------------------------------------------------------------------------
def topk(data=None, axis=_UNSET, k=None, ret_typ=None, is_ascend=None, dtype=None, name=None,
         attr=None, **kwargs):
    """The ``k`` largest entries along ``axis`` (default -1; None: the flattened input):
    values, indices (default), both, or a mask."""
    return make("topk", (), name, attr, kwargs, data=data, axis=_axis(axis), k=k,
                ret_typ=ret_typ, is_ascend=is_ascend, dtype=dtype)


def sort(data=None, axis=_UNSET, is_ascend=None, name=None, attr=None, **kwargs):
    """Values sorted along ``axis`` (ascending by default; ties keep their order)."""
    return make("sort", (), name, attr, kwargs, data=data, axis=_axis(axis),
                is_ascend=is_ascend)


def argsort(data=None, axis=_UNSET, is_ascend=None, dtype=None, name=None, attr=None,
            **kwargs):
    """Indices (float ``dtype``) that sort ``data`` along ``axis``."""
    return make("argsort", (), name, attr, kwargs, data=data, axis=_axis(axis),
                is_ascend=is_ascend, dtype=dtype)
