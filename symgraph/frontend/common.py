"""The one helper every front-end function calls."""

from __future__ import annotations

from ..compose import create


def make(op_name: str, inputs: tuple = (), name=None, attr=None, kwargs=None, **named):
    """Create an op from positional inputs plus named inputs/params (None = not given)."""
    merged = dict(kwargs or {})
    merged.update({k: v for k, v in named.items() if v is not None})
    return create(op_name, tuple(inputs), merged, name=name, attr=attr)
