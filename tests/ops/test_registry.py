"""Registry completeness: every op implements its hooks, every user-facing op (and alias)
has a documented front-end function in ``symgraph.sym``."""

import inspect

import pytest

import symgraph.sym as S
from symgraph.ops.registry import all_ops, get_op, missing_hooks

# Underscore-named ops that users still reach by a public name (MXNet's ``identity``).
PUBLIC_UNDERSCORE = {"_copy": "identity"}


def user_facing():
    """(op, public names) for every op a user may call by name."""
    result = []
    for op in all_ops():
        names = [n for n in (op.name,) + tuple(op.aliases) if not n.startswith("_")]
        if op.name in PUBLIC_UNDERSCORE:
            names.append(PUBLIC_UNDERSCORE[op.name])
        if names:
            result.append((op, names))
    return result


@pytest.mark.parametrize("op", all_ops(), ids=lambda op: op.name)
def test_every_hook_is_implemented(op):
    assert missing_hooks(op) == []


@pytest.mark.parametrize("op,names", user_facing(), ids=lambda v: getattr(v, "name", ""))
def test_user_facing_ops_have_documented_front_ends(op, names):
    for name in names:
        function = getattr(S, name, None)
        assert callable(function), f"sg.sym.{name} is missing (op {op.name})"
        assert inspect.getdoc(function), f"sg.sym.{name} has no docstring"


@pytest.mark.parametrize("op,names", user_facing(), ids=lambda v: getattr(v, "name", ""))
def test_front_end_names_resolve_to_the_op(op, names):
    for name in names:
        if name in PUBLIC_UNDERSCORE.values():
            continue
        assert get_op(name) is op


def test_hint_is_lower_case():
    for op in all_ops():
        assert op.hint == op.hint.lower(), op.name
