"""The converter tables: one entry per symgraph op (export) and per ONNX op type (import).

Export entries are keyed by MXNet op name; a key is matched through the op registry, so an
alias (``pad`` for ``Pad``) finds its op and an op another family registers later is
picked up as soon as it exists. ``drops`` lists inputs the exported graph does not read
(training-only labels), so their variables never become ONNX inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from symgraph.ops.registry import get_op, has_op


@dataclass(frozen=True)
class Export:
    op: str
    convert: Callable
    drops: tuple = ()


EXPORTERS: dict[str, Export] = {}
IMPORTERS: dict[str, Callable] = {}


def exporter(*ops: str, drops: tuple = ()):
    """Decorator: ``fn(ctx, n)`` converts each op in ``ops``."""

    def deco(fn):
        for op in ops:
            if op in EXPORTERS:
                raise ValueError(f"ONNX exporter for {op} defined twice")
            EXPORTERS[op] = Export(op, fn, tuple(drops))
        return fn

    return deco


def importer(*op_types: str):
    """Decorator: ``fn(ictx, node) -> list of Symbols`` builds each ONNX op type."""

    def deco(fn):
        for op_type in op_types:
            if op_type in IMPORTERS:
                raise ValueError(f"ONNX importer for {op_type} defined twice")
            IMPORTERS[op_type] = fn
        return fn

    return deco


def _load_tables() -> None:
    from runtime.onnx import (  # noqa: F401  (each module registers its entries)
        export_array,
        export_elementwise,
        export_nn,
        export_reduce,
        export_sort,
        import_ops,
    )


def find_exporter(op: str) -> Export | None:
    """The entry for a registered op's canonical name (table keys may be aliases)."""
    _load_tables()
    if op in EXPORTERS:
        return EXPORTERS[op]
    for key, entry in EXPORTERS.items():
        if has_op(key) and get_op(key).name == op:
            return entry
    return None


def registered_without_export() -> list[str]:
    """Registered ops (internal gradient ops included) that have no export entry."""
    from symgraph.ops.registry import all_ops

    return [op.name for op in all_ops() if find_exporter(op.name) is None]
