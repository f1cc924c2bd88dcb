"""``sg.model``: MXNet's ``mx.model`` checkpoint helpers and ``BatchEndParam``.

The implementations live in :mod:`runtime.checkpoint` (file formats) and
:mod:`runtime.callback`; this module only gives them MXNet's import path.
"""

from __future__ import annotations

from runtime.callback import BatchEndParam
from runtime.checkpoint import load_checkpoint, load_params, save_checkpoint

__all__ = ["BatchEndParam", "save_checkpoint", "load_checkpoint", "load_params"]
