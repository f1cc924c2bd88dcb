"""``sg.mod`` / ``sg.module``: MXNet's ``mx.mod`` namespace (Module and its base class)."""

from __future__ import annotations

from .base_module import BaseModule
from .module import Module

__all__ = ["BaseModule", "Module"]
