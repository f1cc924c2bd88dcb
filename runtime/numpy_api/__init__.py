"""``sg.np``: MXNet 2's ``mx.np`` (numpy spelling) over the same NDArray and op registry.

``sg.np.ndarray`` is :class:`runtime.ndarray.NDArray`. Functions named like numpy map onto
the registered ops (``np.tanh`` -> ``tanh``), so they are traced inside ``record()`` and
Blocks exactly like ``sg.nd``'s.
"""

from __future__ import annotations

import numpy as _onp

from runtime.ndarray.functions import (  # noqa: F401
    arange,
    array,
    dot,
    empty,
    full,
    maximum,
    minimum,
    namespace_getattr,
    ones,
    zeros,
)
from runtime.ndarray.invoke import call as _call
from runtime.ndarray.ndarray import NDArray, as_ndarray
from runtime.numpy_api import random  # noqa: F401

ndarray = NDArray
float32, float64, int32, int64, uint8 = (_onp.float32, _onp.float64, _onp.int32, _onp.int64,
                                         _onp.uint8)
pi, e, inf, nan, newaxis = _onp.pi, _onp.e, _onp.inf, _onp.nan, None

# numpy name -> registered op (the rest share their name with an op)
_RENAMED = {"multiply": "broadcast_mul", "add": "broadcast_add", "subtract": "broadcast_sub",
            "divide": "broadcast_div", "true_divide": "broadcast_div", "power": "broadcast_power",
            "equal": "broadcast_equal", "not_equal": "broadcast_not_equal",
            "greater": "broadcast_greater", "less": "broadcast_lesser",
            "absolute": "abs", "concatenate": "Concat"}


def asarray(value, dtype=None, ctx=None, device=None):
    return as_ndarray(value, device or ctx, dtype)


def reshape(a, newshape, order="C"):
    return as_ndarray(a).reshape(newshape)


def concatenate(seq, axis=0):
    return _call("Concat", list(seq), {"dim": axis})


def stack(arrays, axis=0):
    return _call("Concat", [as_ndarray(a).expand_dims(axis) for a in arrays], {"dim": axis})


__getattr__ = namespace_getattr(globals(), "sg.np", _RENAMED)
