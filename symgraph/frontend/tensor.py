"""Front-end functions of the array ops (layout, joins, slices, broadcasts, softmax, argmax,
one_hot, Embedding), Dropout, and the registered ops core.py has no function for."""

from __future__ import annotations

from .common import make

__all__ = [
    "transpose", "expand_dims", "squeeze", "SwapAxis", "swapaxes", "Concat", "concat",
    "SliceChannel", "split", "slice_axis", "broadcast_to", "broadcast_axis", "broadcast_axes",
    "softmax", "log_softmax", "argmax", "argmin", "one_hot", "Embedding", "Dropout",
    "broadcast_equal", "broadcast_not_equal", "broadcast_greater", "broadcast_greater_equal",
    "broadcast_lesser", "broadcast_lesser_equal", "broadcast_mod", "broadcast_like",
    "reshape_like", "trunc", "identity", "max_axis", "min_axis",
]


# ---- layout -----------------------------------------------------------------------------------
def transpose(data=None, axes=None, name=None, attr=None, **kwargs):
    """Permute the axes of ``data``; ``axes=()`` (default) reverses them, as numpy's ``.T``."""
    return make("transpose", (), name, attr, kwargs, data=data, axes=axes)


def expand_dims(data=None, axis=None, name=None, attr=None, **kwargs):
    """Insert a size-1 axis at position ``axis`` (``-1`` appends one at the end)."""
    return make("expand_dims", (), name, attr, kwargs, data=data, axis=axis)


def squeeze(data=None, axis=None, name=None, attr=None, **kwargs):
    """Remove size-1 axes: all of them, or those listed in ``axis`` (which must be 1).

    Removing every axis leaves shape ``(1,)``.
    """
    return make("squeeze", (), name, attr, kwargs, data=data, axis=axis)


def SwapAxis(data=None, dim1=None, dim2=None, name=None, attr=None, **kwargs):
    """Exchange axes ``dim1`` and ``dim2`` (both default to 0)."""
    return make("SwapAxis", (), name, attr, kwargs, data=data, dim1=dim1, dim2=dim2)


swapaxes = SwapAxis


# ---- joins and cuts -------------------------------------------------------------------------
def Concat(*data, dim=None, name=None, attr=None, **kwargs):
    """Concatenate the input symbols along ``dim`` (default 1); every other dim must match.

    Inputs are named ``arg0, arg1, ...``; ``num_args`` is set from the count.
    """
    kwargs.pop("num_args", None)
    return make("Concat", data, name, attr, kwargs, dim=dim)


concat = Concat


def SliceChannel(data=None, num_outputs=None, axis=None, squeeze_axis=None, name=None,
                 attr=None, **kwargs):
    """Split ``data`` into ``num_outputs`` equal parts along ``axis`` (default 1).

    Returns a symbol with outputs ``output0..``; ``squeeze_axis`` removes the split axis
    when each part has size 1 there.
    """
    return make("SliceChannel", (), name, attr, kwargs, data=data, num_outputs=num_outputs,
                axis=axis, squeeze_axis=squeeze_axis)


split = SliceChannel


def slice_axis(data=None, axis=None, begin=None, end=None, name=None, attr=None, **kwargs):
    """``data[..., begin:end, ...]`` along ``axis``; negative bounds count from the end and
    ``end=None`` means the axis length. The gradient is zero outside the slice."""
    if end is None:
        kwargs["end"] = "None"
    return make("slice_axis", (), name, attr, kwargs, data=data, axis=axis, begin=begin,
                end=end)


# ---- broadcasts ---------------------------------------------------------------------------------
def broadcast_to(data=None, shape=None, name=None, attr=None, **kwargs):
    """Broadcast the size-1 axes of ``data`` to ``shape`` (a 0 keeps the input's dim)."""
    return make("broadcast_to", (), name, attr, kwargs, data=data, shape=shape)


def broadcast_axis(data=None, axis=None, size=None, name=None, attr=None, **kwargs):
    """Broadcast the size-1 axes listed in ``axis`` to the matching entries of ``size``."""
    return make("broadcast_axis", (), name, attr, kwargs, data=data, axis=axis, size=size)


broadcast_axes = broadcast_axis


def broadcast_like(lhs=None, rhs=None, name=None, attr=None, **kwargs):
    """Broadcast ``lhs`` to the shape of ``rhs``."""
    return make("broadcast_like", (), name, attr, kwargs, lhs=lhs, rhs=rhs)


def reshape_like(lhs=None, rhs=None, name=None, attr=None, **kwargs):
    """``lhs`` reshaped to the shape of ``rhs`` (same number of elements)."""
    return make("reshape_like", (), name, attr, kwargs, lhs=lhs, rhs=rhs)


def _broadcast_binary(op, doc):
    def function(lhs=None, rhs=None, name=None, attr=None, **kwargs):
        return make(op, (), name, attr, kwargs, lhs=lhs, rhs=rhs)

    function.__name__ = function.__qualname__ = op
    function.__doc__ = doc
    return function


broadcast_mod = _broadcast_binary("broadcast_mod", "lhs mod rhs (sign of rhs), broadcasting.")
broadcast_equal = _broadcast_binary(
    "broadcast_equal", "1.0 where lhs == rhs else 0.0, broadcasting; zero gradient.")
broadcast_not_equal = _broadcast_binary(
    "broadcast_not_equal", "1.0 where lhs != rhs else 0.0, broadcasting; zero gradient.")
broadcast_greater = _broadcast_binary(
    "broadcast_greater", "1.0 where lhs > rhs else 0.0, broadcasting; zero gradient.")
broadcast_greater_equal = _broadcast_binary(
    "broadcast_greater_equal", "1.0 where lhs >= rhs else 0.0, broadcasting; zero gradient.")
broadcast_lesser = _broadcast_binary(
    "broadcast_lesser", "1.0 where lhs < rhs else 0.0, broadcasting; zero gradient.")
broadcast_lesser_equal = _broadcast_binary(
    "broadcast_lesser_equal", "1.0 where lhs <= rhs else 0.0, broadcasting; zero gradient.")


# ---- softmax family, argmax -------------------------------------------------------------------
def softmax(data=None, axis=None, temperature=None, dtype=None, use_length=None, name=None,
            attr=None, **kwargs):
    """``exp((x - max) / T) / sum`` along ``axis`` (default -1), with the usual gradient
    through the head gradient (unlike SoftmaxOutput)."""
    return make("softmax", (), name, attr, kwargs, data=data, axis=axis,
                temperature=temperature, dtype=dtype, use_length=use_length)


def log_softmax(data=None, axis=None, temperature=None, dtype=None, use_length=None,
                name=None, attr=None, **kwargs):
    """``x/T - logsumexp(x/T)`` along ``axis`` (default -1); stable for large inputs."""
    return make("log_softmax", (), name, attr, kwargs, data=data, axis=axis,
                temperature=temperature, dtype=dtype, use_length=use_length)


def argmax(data=None, axis=None, keepdims=None, name=None, attr=None, **kwargs):
    """Index of the first maximum along ``axis`` as a float (flattened input if None);
    no gradient flows through it."""
    return make("argmax", (), name, attr, kwargs, data=data, axis=axis, keepdims=keepdims)


def argmin(data=None, axis=None, keepdims=None, name=None, attr=None, **kwargs):
    """Index of the first minimum along ``axis`` as a float (flattened input if None)."""
    return make("argmin", (), name, attr, kwargs, data=data, axis=axis, keepdims=keepdims)


def one_hot(indices=None, depth=None, on_value=None, off_value=None, dtype=None, name=None,
            attr=None, **kwargs):
    """``indices.shape + (depth,)`` with ``on_value`` at each int(index) and ``off_value``
    elsewhere; out-of-range indices give all ``off_value``. ``dtype`` float32|float64."""
    return make("one_hot", (), name, attr, kwargs, indices=indices, depth=depth,
                on_value=on_value, off_value=off_value, dtype=dtype)


def Embedding(data=None, weight=None, input_dim=None, output_dim=None, dtype=None,
              sparse_grad=None, name=None, attr=None, **kwargs):
    """Look up rows of ``weight`` (``(input_dim, output_dim)``, auto-created as
    ``<name>_weight``) at the integer indices in ``data``; output ``data.shape +
    (output_dim,)``. Indices are clipped into range and get no gradient."""
    return make("Embedding", (), name, attr, kwargs, data=data, weight=weight,
                input_dim=input_dim, output_dim=output_dim, dtype=dtype,
                sparse_grad=sparse_grad)


def Dropout(data=None, p=None, mode=None, axes=None, cudnn_off=None, name=None, attr=None,
            **kwargs):
    """Inverted dropout: in training (or always, ``mode='always'``) zero each element with
    probability ``p`` and scale the rest by ``1/(1-p)``; identity otherwise. ``axes`` share
    one mask value along those axes. The mask is a deterministic hash of (seed, node
    name, element index), so a run is reproducible and the gradient reuses it."""
    return make("Dropout", (), name, attr, kwargs, data=data, p=p, mode=mode, axes=axes,
                cudnn_off=cudnn_off)


# ---- registered ops without a core.py function ------------------------------------------------
def trunc(data=None, name=None, attr=None, **kwargs):
    """Elementwise truncation toward zero; zero gradient."""
    return make("trunc", (), name, attr, kwargs, data=data)


def identity(data=None, name=None, attr=None, **kwargs):
    """A copy of ``data`` (MXNet's ``_copy``); gradient passes through."""
    return make("_copy", (), name, attr, kwargs, data=data)


def max_axis(data=None, axis=None, keepdims=None, exclude=None, name=None, attr=None,
             **kwargs):
    """Alias of ``max``: maximum over ``axis`` (all axes by default)."""
    return make("max", (), name, attr, kwargs, data=data, axis=axis, keepdims=keepdims,
                exclude=exclude)


def min_axis(data=None, axis=None, keepdims=None, exclude=None, name=None, attr=None,
             **kwargs):
    """Alias of ``min``: minimum over ``axis`` (all axes by default)."""
    return make("min", (), name, attr, kwargs, data=data, axis=axis, keepdims=keepdims,
                exclude=exclude)
