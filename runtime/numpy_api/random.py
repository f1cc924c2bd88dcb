"""``sg.np.random``: seeding (one project-wide generator, see :mod:`runtime.random`)."""

from __future__ import annotations

import numpy as _onp

from runtime.ndarray.functions import _ctx
from runtime.ndarray.ndarray import NDArray
from runtime.random import get_rng, seed  # noqa: F401


def uniform(low=0.0, high=1.0, size=None, dtype=None, ctx=None, device=None):
    values = get_rng().uniform(low, high, size).astype(dtype or _onp.float32)
    return NDArray(_onp.asarray(values), _ctx(ctx, device))


def normal(loc=0.0, scale=1.0, size=None, dtype=None, ctx=None, device=None):
    values = get_rng().normal(loc, scale, size).astype(dtype or _onp.float32)
    return NDArray(_onp.asarray(values), _ctx(ctx, device))
