"""``sg.test_utils``: MXNet's ``mx.test_utils.get_mnist`` (offline-aware, see datasets)."""

from __future__ import annotations

from .datasets import get_mnist

__all__ = ["get_mnist"]
