"""Replace variables by other expressions: what ``sym(data=other)`` does."""

from __future__ import annotations

from ..compose import single_entry
from ..errors import GraphError
from .rewrite import rebuild


def substitute_variables(heads, replacements: dict):
    """Copy of the graph with each variable named in ``replacements`` swapped out."""
    names = set()

    def visit(node, new_inputs):
        if node.is_variable and node.name in replacements:
            names.add(node.name)
            return [single_entry(replacements[node.name], f"substituting '{node.name}'")]
        return None

    result = rebuild(heads, visit)
    unknown = set(replacements) - names
    if unknown:
        raise GraphError(f"cannot substitute {sorted(unknown)}: no such variable in the symbol")
    return result
