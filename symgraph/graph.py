"""The graph IR: immutable nodes, entries (node, output index), post-order traversal.

A :class:`Node` never changes after it is made; a pass that wants a different graph builds
new nodes. Variables are nodes whose ``op`` is ``"null"``, as in MXNet's JSON. Node identity
is object identity, so two variables named alike are still two nodes (the Symbol layer
rejects such duplicates where MXNet does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import networkx as nx

from .errors import GraphError
from .ops.params import Params
from .ops.registry import OpDef, get_op

VARIABLE = "null"


@dataclass(frozen=True, eq=False)
class Node:
    """One operation (or variable) with its string attrs and input entries."""

    op: str
    name: str
    attrs: Mapping[str, str] = field(default_factory=dict)
    inputs: tuple = ()
    params: Params | None = None

    def __post_init__(self):
        object.__setattr__(self, "attrs", MappingProxyType(dict(self.attrs)))

    @property
    def is_variable(self) -> bool:
        return self.op == VARIABLE

    @property
    def opdef(self) -> OpDef:
        return get_op(self.op)

    def num_outputs(self) -> int:
        return 1 if self.is_variable else self.opdef.num_outputs(self.params)

    def num_visible_outputs(self) -> int:
        return 1 if self.is_variable else self.opdef.num_visible_outputs(self.params)

    def output_names(self) -> list[str]:
        return [self.name] if self.is_variable else self.opdef.output_names(self.params)

    def input_names(self) -> list[str]:
        return [] if self.is_variable else self.opdef.input_names(self.params)

    def __repr__(self) -> str:
        return f"Node({self.op}, {self.name!r})"


@dataclass(frozen=True)
class Entry:
    """Output ``index`` of ``node``; what edges and symbol heads point to."""

    node: Node
    index: int = 0

    @property
    def label(self) -> str:
        """MXNet's output name: the variable name, or ``<node>_<outname>``."""
        if self.node.is_variable:
            return self.node.name
        return f"{self.node.name}_{self.node.output_names()[self.index]}"


def make_op_node(op_name: str, name: str, inputs: Iterable[Entry], attrs: dict) -> Node:
    """Create an op node after parsing and validating its attributes."""
    opdef = get_op(op_name)
    params = opdef.parse(attrs, name)
    node = Node(opdef.name, name, attrs, tuple(inputs), params)
    expected = len(opdef.input_names(params))
    if len(node.inputs) != expected:
        raise GraphError(
            f"{opdef.name} node '{name}' takes {expected} inputs "
            f"({', '.join(opdef.input_names(params))}), got {len(node.inputs)}"
        )
    return node


def make_variable(name: str, attrs: dict | None = None) -> Node:
    return Node(VARIABLE, name, attrs or {}, ())


def topo_order(heads: Iterable[Entry]) -> list[Node]:
    """Post-order DFS from the heads, inputs left to right: MXNet's node order.

    Iterative, so deep graphs do not hit Python's recursion limit; a node met again while
    still on the stack is a cycle.
    """
    order: list[Node] = []
    done: set[int] = set()
    on_stack: set[int] = set()
    for head in heads:
        stack = [(head.node, 0)]
        while stack:
            node, next_input = stack.pop()
            if id(node) in done:
                continue
            on_stack.add(id(node))
            if next_input < len(node.inputs):
                stack.append((node, next_input + 1))
                child = node.inputs[next_input].node
                if id(child) in on_stack:
                    raise GraphError(f"cycle in the graph through node '{child.name}'")
                if id(child) not in done:
                    stack.append((child, 0))
                continue
            on_stack.discard(id(node))
            done.add(id(node))
            order.append(node)
    return order


def to_networkx(heads: Iterable[Entry]) -> nx.MultiDiGraph:
    """The graph as networkx, for analyses (dominators, reachability) and pictures."""
    graph = nx.MultiDiGraph()
    for node in topo_order(heads):
        graph.add_node(id(node), node=node)
        for pos, entry in enumerate(node.inputs):
            graph.add_edge(id(entry.node), id(node), index=entry.index, position=pos)
    return graph


def consumers(nodes: list[Node]) -> dict[int, list[tuple[Node, int]]]:
    """For each node id, the (consumer, input position) pairs that read it."""
    users: dict[int, list[tuple[Node, int]]] = {id(n): [] for n in nodes}
    for node in nodes:
        for pos, entry in enumerate(node.inputs):
            users[id(entry.node)].append((node, pos))
    return users


def format_attrs(attrs: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(attrs.items()))


def dump(heads: Iterable[Entry], shapes: dict | None = None) -> str:
    """Readable text form, one line per node, Jaxpr-like:

    ``%fc1 = FullyConnected[num_hidden=64](%data, %fc1_weight, %fc1_bias)``
    """
    heads = list(heads)
    lines = []
    for node in topo_order(heads):
        if node.is_variable:
            lines.append(f"%{node.name} = var" + _shape_note(shapes, Entry(node, 0)))
            continue
        args = ", ".join(_entry_ref(e) for e in node.inputs)
        attrs = {k: v for k, v in node.attrs.items() if not k.startswith("__")}
        bracket = f"[{format_attrs(attrs)}]" if attrs else ""
        note = _shape_note(shapes, Entry(node, 0))
        lines.append(f"%{node.name} = {node.op}{bracket}({args}){note}")
    lines.append("return " + ", ".join(_entry_ref(h) for h in heads))
    return "\n".join(lines)


def _entry_ref(entry: Entry) -> str:
    suffix = f".{entry.index}" if entry.index else ""
    return f"%{entry.node.name}{suffix}"


def _shape_note(shapes, entry) -> str:
    if not shapes or entry not in shapes:
        return ""
    return f"  # {shapes[entry]}"
