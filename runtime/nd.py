"""``sg.nd``: the slice of ``mx.nd`` that Module-era scripts use.

symgraph's arrays are plain numpy arrays, so ``array``/``zeros``/``ones`` return
``np.ndarray`` (float32 by default, MXNet's default dtype) and ``save``/``load`` read and
write MXNet's binary NDArray-list files (see :mod:`runtime.ndarray_io`).
"""

from __future__ import annotations

import numpy as np

from .ndarray_io import load, save

__all__ = ["array", "zeros", "ones", "save", "load"]


def array(source_array, ctx=None, dtype=None):
    """A float32 copy of ``source_array`` (or ``dtype`` if given), as ``mx.nd.array``."""
    if hasattr(source_array, "asnumpy"):
        source_array = source_array.asnumpy()
    return np.array(source_array, dtype=np.float32 if dtype is None else dtype)


def zeros(shape, ctx=None, dtype=np.float32, **kwargs):
    """Zeros of ``shape`` (float32 by default); ``ctx`` accepted for MXNet scripts."""
    return np.zeros(shape, dtype=dtype)


def ones(shape, ctx=None, dtype=np.float32, **kwargs):
    """Ones of ``shape`` (float32 by default); ``ctx`` accepted for MXNet scripts."""
    return np.ones(shape, dtype=dtype)
