"""Algebraic simplification with shape-free rules that keep every value bit for bit.

Only identities that hold without knowing shapes are used. Same-shape (non-broadcast)
elementwise ops guarantee their operands have the output's shape, so ``x * ones_like(y)``
is ``x``; the broadcast versions could grow ``x`` and are left alone. Rules that are only
true for finite values (``x * 0 == 0``, ``x - x == 0``) are not applied, since a NaN or an
infinity would change. ``reshape_like(x, y)`` needs shapes to decide and is kept.
"""

from __future__ import annotations

from ..graph import Entry, Node
from .rewrite import rebuild

# scalar op -> the scalar that makes it the identity
SCALAR_IDENTITY = {
    "_mul_scalar": 1.0,
    "_div_scalar": 1.0,
    "_plus_scalar": 0.0,
    "_minus_scalar": 0.0,
    "_power_scalar": 1.0,
}
# binary op -> {operand position that may be a neutral constant: fill op making it neutral}
BINARY_IDENTITY = {
    "elemwise_mul": {0: "ones_like", 1: "ones_like"},
    "elemwise_add": {0: "zeros_like", 1: "zeros_like"},
    "elemwise_sub": {1: "zeros_like"},
    "elemwise_div": {1: "ones_like"},
}
NEGATIONS = ("negative",)


def _is_negation(node: Node) -> bool:
    if node.is_variable:
        return False
    if node.op in NEGATIONS:
        return True
    return node.op == "_mul_scalar" and node.params.scalar == -1.0


def _scalar_identity(node: Node, inputs):
    if SCALAR_IDENTITY.get(node.op) == node.params.scalar:
        return inputs[0]
    return None


def _binary_identity(node: Node, inputs):
    for pos, fill in BINARY_IDENTITY.get(node.op, {}).items():
        if inputs[pos].node.op == fill:
            return inputs[1 - pos]
    return None


def _double_negation(node: Node, inputs):
    inner = inputs[0].node
    if _is_negation(node) and _is_negation(inner):
        return inner.inputs[0]
    return None


def _idempotent_chain(node: Node, inputs):
    """BlockGrad(BlockGrad(x)) is BlockGrad(x); _copy(x) is x."""
    if node.op == "_copy":
        return inputs[0]
    if node.op == "BlockGrad" and inputs[0].node.op == "BlockGrad":
        return inputs[0]
    return None


def _single_sum(node: Node, inputs):
    if node.op == "add_n" and len(inputs) == 1:
        return inputs[0]
    return None


RULES = (_idempotent_chain, _single_sum, _double_negation, _binary_identity)


def simplify_node(node: Node, inputs) -> Entry | None:
    """The entry that can replace ``node``'s (single) output, or None."""
    if node.is_variable or node.num_outputs() != 1:
        return None
    if node.op in SCALAR_IDENTITY and _scalar_identity(node, inputs) is not None:
        return inputs[0]
    for rule in RULES:
        found = rule(node, inputs)
        if found is not None:
            return found
    return None


def simplify_algebra(heads) -> tuple[Entry, ...]:
    """Graph with identity operations removed (repeated until none applies)."""

    def visit(node: Node, new_inputs):
        found = simplify_node(node, new_inputs)
        return None if found is None else [found]

    return rebuild(tuple(heads), visit)
