"""One project-wide random source, so a single ``seed()`` makes a run reproducible.

Initializers draw from :func:`get_rng`; NDArrayIter shuffles with numpy's global RNG
exactly as MXNet does, so :func:`seed` seeds both (MXNet users are used to calling
``mx.random.seed`` *and* ``np.random.seed``; here one call covers both).

Dropout masks are a counter hash of (executor seed + training step, node name, element);
each executor takes its seed from :func:`executor_seed` when it is created, so masks differ
between executors. That stream starts from OS entropy, so unseeded processes draw different
masks, and :func:`seed` restarts it deterministically: the same seed, then the same
executors created in the same order, give the same masks. (Initial values keep their fixed
default seed, as in MXNet.)
"""

from __future__ import annotations

import numpy as np

_DEFAULT_SEED = 0

_DROPOUT_STREAM = 0x44524F50  # keeps the executor-seed stream apart from get_rng's

_state = {"rng": np.random.default_rng(_DEFAULT_SEED),
          "executor": np.random.default_rng()}


def seed(seed_state: int, ctx: str = "all") -> None:
    """Reseed the project generator and numpy's global RNG (``ctx`` accepted for MXNet)."""
    if not isinstance(seed_state, (int, np.integer)):
        raise ValueError(f"seed_state must be an integer, got {seed_state!r}")
    _state["rng"] = np.random.default_rng(int(seed_state))
    _state["executor"] = np.random.default_rng([_DROPOUT_STREAM, int(seed_state) % 2**63])
    np.random.seed(int(seed_state) % (2**32))


def get_rng() -> np.random.Generator:
    """The generator every symgraph component must draw from (never a private one)."""
    return _state["rng"]


def executor_seed() -> int:
    """The next executor's random seed (its Dropout masks): see the module docstring."""
    return int(_state["executor"].integers(0, 2**62))
