"""``sg.mod`` / ``sg.module``: MXNet's ``mx.mod`` namespace (Module and its base class)."""

from __future__ import annotations

from runtime.base_module import BaseModule
from runtime.module import Module

__all__ = ["BaseModule", "Module"]
