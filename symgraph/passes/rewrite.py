"""The one rewriting mechanism every pass uses: rebuild a graph bottom-up.

``rebuild(heads, visit)`` walks nodes in topological order; ``visit(node, new_inputs)``
returns the entries that replace the node's outputs (or None to keep an identical copy).
Nodes whose inputs did not change are reused as they are, so passes stay cheap and
untouched subgraphs keep their identity.
"""

from __future__ import annotations

from ..graph import Entry, Node, topo_order


def rebuild(heads, visit) -> tuple[Entry, ...]:
    mapping: dict[int, list[Entry]] = {}
    for node in topo_order(heads):
        new_inputs = tuple(mapping[id(e.node)][e.index] for e in node.inputs)
        replaced = visit(node, new_inputs)
        if replaced is None:
            replaced = _copy_if_changed(node, new_inputs)
        mapping[id(node)] = list(replaced)
    return tuple(mapping[id(h.node)][h.index] for h in heads)


def _copy_if_changed(node: Node, new_inputs) -> list[Entry]:
    if all(a is b or a == b for a, b in zip(new_inputs, node.inputs)):
        return [Entry(node, i) for i in range(node.num_outputs())]
    copy = Node(node.op, node.name, dict(node.attrs), new_inputs, node.params)
    return [Entry(copy, i) for i in range(copy.num_outputs())]
