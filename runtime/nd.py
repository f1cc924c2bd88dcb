"""``sg.nd``: MXNet's ``mx.nd`` namespace over :class:`runtime.ndarray.NDArray`.

``array``/``zeros``/``ones`` return NDArrays (float32 by default, MXNet's default dtype);
every registered op is a function here (``nd.FullyConnected``, ``nd.relu``, ...), traced
inside ``autograd.record()`` and Block calls, run eagerly otherwise. ``save``/``load`` read
and write MXNet's binary NDArray-list files (see :mod:`runtime.ndarray_io`).
"""

from __future__ import annotations

import numpy as np

from runtime import ndarray_io
from runtime.ndarray.functions import (  # noqa: F401
    arange,
    array,
    concat,
    dot,
    empty,
    full,
    maximum,
    minimum,
    namespace_getattr,
    ones,
    stack,
    waitall,
    zeros,
)
from runtime.ndarray.ndarray import NDArray

__all__ = ["NDArray", "array", "zeros", "ones", "full", "empty", "arange", "concat", "stack",
           "dot", "maximum", "minimum", "waitall", "save", "load"]


def _plain(value):
    return np.asarray(value) if isinstance(value, NDArray) else value


def save(fname, data):
    """Write arrays (NDArray or numpy; one, a list or a dict) in MXNet's format."""
    if isinstance(data, dict):
        data = {k: _plain(v) for k, v in data.items()}
    elif isinstance(data, (list, tuple)):
        data = [_plain(v) for v in data]
    else:
        data = _plain(data)
    ndarray_io.save(fname, data)


def load(fname):
    """Read an MXNet NDArray-list file: a dict (named) or list of NDArrays."""
    loaded = ndarray_io.load(fname)
    if isinstance(loaded, dict):
        return {k: NDArray(v) for k, v in loaded.items()}
    return [NDArray(v) for v in loaded]


__getattr__ = namespace_getattr(globals(), "sg.nd")
