"""``gluon.utils``: splitting a batch over devices, global-norm clipping."""

from __future__ import annotations

import math

import numpy as np

from runtime.ndarray.ndarray import NDArray, as_ndarray


def split_data(data, num_slice, batch_axis=0, even_split=True):
    data = as_ndarray(data)
    size = data.shape[batch_axis]
    if even_split and size % num_slice:
        raise ValueError(f"data with shape {data.shape} cannot be evenly split into "
                         f"{num_slice} slices along axis {batch_axis}. Use a batch size "
                         "that's multiple of the number of devices or set even_split=False")
    if size < num_slice:
        raise ValueError(f"Too many slices for data with shape {data.shape}: {num_slice}")
    step = size // num_slice
    bounds = [i * step for i in range(num_slice)] + [size]
    values = data._value()
    return [NDArray(np.take(values, range(lo, hi), axis=batch_axis) if batch_axis else
                    values[lo:hi], data.context) for lo, hi in zip(bounds, bounds[1:])]


def split_and_load(data, ctx_list, batch_axis=0, even_split=True):
    """Slices of ``data`` along ``batch_axis``, one per device of ``ctx_list``."""
    if not isinstance(ctx_list, (list, tuple)):
        ctx_list = [ctx_list]
    if len(ctx_list) == 1:
        return [as_ndarray(data).as_in_context(ctx_list[0])]
    slices = split_data(data, len(ctx_list), batch_axis, even_split)
    return [NDArray(s._data, ctx) for s, ctx in zip(slices, ctx_list)]


def clip_global_norm(arrays, max_norm, check_isfinite=True):
    """Scale ``arrays`` in place so their joint L2 norm is at most ``max_norm``."""
    total = math.sqrt(sum(float(np.sum(np.square(np.asarray(a, np.float64))))
                          for a in arrays))
    if check_isfinite and not math.isfinite(total):
        import warnings

        warnings.warn("nan or inf is detected. Clipping results will be undefined.",
                      stacklevel=2)
    scale = max_norm / (total + 1e-8)
    if scale < 1.0:
        for array in arrays:
            array._value()[...] *= scale
    return total
