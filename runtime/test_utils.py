"""``sg.test_utils``: MXNet's ``mx.test_utils.get_mnist`` (offline-aware, see datasets)."""

from __future__ import annotations

from .datasets import get_mnist

__all__ = ["get_mnist", "list_gpus"]


def list_gpus() -> list:
    """symgraph runs on the CPU: there are never GPUs."""
    return []
