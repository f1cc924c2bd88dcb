"""Constant folding for values that existing ops can represent.

There is no ``_constant`` op (an op holding an array), so a folded value must be written
with registered ops. A *constant-valued* entry is one whose value does not depend on any
variable's values, only on a shape: ``zeros_like(a)``, ``ones_like(a)``, and same-shape
(non-broadcast, deterministic, single-output) elementwise ops whose inputs are all
constant-valued. Such a value is one number ``c`` repeated over the anchor ``a``'s shape,
so it is computed once with the op's numpy ``reference`` on one-element arrays and the
node is replaced by its canonical form:

* ``c == 0`` -> ``zeros_like(a)``, ``c == 1`` -> ``ones_like(a)``,
* any other finite ``c`` -> ``_plus_scalar(zeros_like(a), scalar=c)``.

Non-finite results are left alone. Evaluating in float64 can differ from the float32
chain by one rounding at most. Folding arrays of differing values (``arange``, a loaded
table) would need a ``_constant`` op; that belongs to the op registry's owners.
"""

from __future__ import annotations

import math

import numpy as np

from ..graph import Entry, Node, make_op_node
from .cse import is_random
from .dce import shape_anchor
from .rewrite import rebuild

FILL_VALUES = {"zeros_like": 0.0, "ones_like": 1.0}


def _is_foldable_op(node: Node) -> bool:
    if node.is_variable or is_random(node):
        return False
    opdef = node.opdef
    if not opdef.is_elementwise or getattr(opdef, "broadcast", True):
        return False
    return node.num_outputs() == 1 and bool(node.inputs)


def canonical_value(entry: Entry):
    """``(value, anchor)`` if ``entry`` is already a canonical constant, else None."""
    node = entry.node
    if node.op in FILL_VALUES:
        return FILL_VALUES[node.op], node.inputs[0]
    if node.op == "_plus_scalar" and node.inputs[0].node.op == "zeros_like":
        return node.params.scalar, node.inputs[0].node.inputs[0]
    return None


def _evaluate(node: Node, values: list[float]) -> float:
    inputs = [np.full((1,), v, dtype=np.float64) for v in values]
    with np.errstate(all="ignore"):
        out = node.opdef.reference(node.params, inputs, _FoldContext(node.name))
    return float(np.asarray(out[0]).reshape(-1)[0])


class _FoldContext:
    """The reference context of a fold: inference mode, nothing random."""

    is_train = False
    seed = 0

    def __init__(self, node_name: str):
        self.node_name = node_name
        self.aux_updates = {}


def constant_entry(value: float, anchor: Entry, name: str) -> Entry:
    """The canonical graph for ``value`` everywhere over ``anchor``'s shape."""
    anchor = shape_anchor(anchor)
    if value in FILL_VALUES.values():
        op = "zeros_like" if value == 0.0 else "ones_like"
        return Entry(make_op_node(op, name, [anchor], {}), 0)
    zeros = make_op_node("zeros_like", f"{name}_zeros", [anchor], {})
    node = make_op_node("_plus_scalar", name, [Entry(zeros, 0)], {"scalar": repr(value)})
    return Entry(node, 0)


def fold_constants(heads) -> tuple[Entry, ...]:
    """Graph with constant-valued elementwise subgraphs replaced by canonical constants."""

    def visit(node: Node, new_inputs):
        if not _is_foldable_op(node):
            return None
        current = Entry(node, 0)
        if canonical_value(current) is not None:
            return None
        known = [canonical_value(e) for e in new_inputs]
        if any(k is None for k in known):
            return None
        value = _evaluate(node, [k[0] for k in known])
        if not math.isfinite(value):
            return None
        return [constant_entry(value, known[0][1], node.name)]

    return rebuild(tuple(heads), visit)
