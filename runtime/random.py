"""One project-wide random source, so a single ``seed()`` makes a run reproducible.

Initializers and Dropout masks draw from :func:`get_rng`; NDArrayIter shuffles with numpy's
global RNG exactly as MXNet does, so :func:`seed` seeds both (MXNet users are used to
calling ``mx.random.seed`` *and* ``np.random.seed``; here one call covers both).
"""

from __future__ import annotations

import numpy as np

_DEFAULT_SEED = 0

_state = {"rng": np.random.default_rng(_DEFAULT_SEED)}


def seed(seed_state: int, ctx: str = "all") -> None:
    """Reseed the project generator and numpy's global RNG (``ctx`` accepted for MXNet)."""
    if not isinstance(seed_state, (int, np.integer)):
        raise ValueError(f"seed_state must be an integer, got {seed_state!r}")
    _state["rng"] = np.random.default_rng(int(seed_state))
    np.random.seed(int(seed_state) % (2**32))


def get_rng() -> np.random.Generator:
    """The generator every symgraph component must draw from (never a private one)."""
    return _state["rng"]
