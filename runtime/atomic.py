"""Crash-safe writes for runtime files (params, states, datasets).

The one implementation lives in ``symgraph/fileio.py`` (symbol JSON needs it too, and the
symbolic core may not import runtime); this module is the runtime's name for it.
"""

from symgraph.fileio import (  # noqa: F401
    _UMASK,
    atomic_write,
    atomic_write_text,
    clean_stale_temps,
)

__all__ = ["atomic_write", "atomic_write_text", "clean_stale_temps"]
