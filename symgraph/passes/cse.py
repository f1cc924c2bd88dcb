"""Common-subexpression elimination: one node per distinct (op, params, inputs).

Two op nodes compute the same value when they apply the same op with the same parsed
parameters to the same input entries. Parsed params are compared (not attr strings), so
``scalar="1"`` and ``scalar="1.0"`` match; hidden ``__x__`` attrs (lr_mult, ctx_group)
do not change values and are ignored. Variables are never merged (two variables are two
inputs, even when named alike), nor are ops that draw random numbers: two Dropout masks
are two samples. The first node in topological order survives, with its name.
"""

from __future__ import annotations

from ..graph import Entry, Node
from .rewrite import rebuild

RANDOM_OPS = frozenset({"Dropout", "_random_uniform", "_random_normal", "_sample_uniform",
                        "_sample_normal", "_shuffle", "RNN"})


def is_random(node: Node) -> bool:
    """Ops whose output is a fresh sample each time they run."""
    if node.is_variable:
        return False
    if node.op == "LeakyReLU" and node.params.act_type == "rrelu":
        return True  # samples its slopes in training
    return node.op in RANDOM_OPS or getattr(node.opdef, "is_random", False)


def node_key(node: Node, inputs) -> tuple:
    """What determines the node's value: op, parameters, visible non-hidden attrs, inputs."""
    known = {name for name, _ in node.params.values} if node.params else set()
    extra = tuple(sorted((k, v) for k, v in node.attrs.items()
                         if not k.startswith("__") and k not in known))
    params = node.params.values if node.params else ()
    refs = tuple((id(e.node), e.index) for e in inputs)
    return (node.op, params, extra, refs)


def eliminate_common_subexpressions(heads) -> tuple[Entry, ...]:
    """Graph where equal computations are done once and shared."""
    seen: dict[tuple, list[Entry]] = {}

    def visit(node: Node, new_inputs):
        if node.is_variable or is_random(node):
            return None
        try:
            key = node_key(node, new_inputs)
            hash(key)
        except TypeError:  # an unhashable parameter value: leave the node alone
            return None
        if key in seen:
            return seen[key]
        if all(a == b for a, b in zip(new_inputs, node.inputs)):
            seen[key] = [Entry(node, i) for i in range(node.num_outputs())]
            return None
        copy = Node(node.op, node.name, dict(node.attrs), tuple(new_inputs), node.params)
        seen[key] = [Entry(copy, i) for i in range(copy.num_outputs())]
        return seen[key]

    return rebuild(tuple(heads), visit)
