"""Reverse-mode symbolic differentiation: the gradient is another graph of registered ops.

Only nodes on a path from a requested argument to a head are differentiated (no work for
gradients nobody asked for); absent gradients stay ``None`` (JAX's Zero) instead of being
materialized; fan-in is summed with ``add_n``. Loss ops (SoftmaxOutput, the regression
outputs, MakeLoss) ignore their head gradient, so graphs ending in them need none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import GraphError, NotDifferentiableError
from .graph import Entry, Node, make_op_node, make_variable, topo_order


@dataclass
class _Namer:
    counts: dict = field(default_factory=dict)

    def name(self, base: str) -> str:
        count = self.counts.get(base, 0)
        self.counts[base] = count + 1
        return base if count == 0 else f"{base}{count}"


@dataclass
class GradContext:
    """What an op's gradient rule sees: its node, entries, head gradients, what is needed."""

    node: Node
    out_grads: list
    needs: list
    namer: _Namer

    @property
    def inputs(self) -> list[Entry]:
        return list(self.node.inputs)

    @property
    def outputs(self) -> list[Entry]:
        return [Entry(self.node, i) for i in range(self.node.num_outputs())]

    def op(self, op_name: str, *inputs: Entry, **attrs) -> Entry:
        return self.op_multi(op_name, *inputs, **attrs)[0]

    def op_multi(self, op_name: str, *inputs: Entry, **attrs) -> list[Entry]:
        text = {k: _attr_text(v) for k, v in attrs.items() if v is not None}
        name = self.namer.name(f"{self.node.name}_backward_{op_name.strip('_').lower()}")
        node = make_op_node(op_name, name, inputs, text)
        return [Entry(node, i) for i in range(node.num_outputs())]


def _attr_text(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        value = tuple(value)
    return str(value)


def _sum(entries, namer: _Namer):
    if not entries:
        return None
    if len(entries) == 1:
        return entries[0]
    first = entries[0]
    name = namer.name(f"{first.node.name}_sum_grad")
    node = make_op_node("add_n", name, entries, {"num_args": str(len(entries))})
    return Entry(node, 0)


def _depends_on(nodes: list[Node], wrt_ids: set[int]) -> set[int]:
    """Ids of nodes whose value depends on any requested variable."""
    dep = set(wrt_ids)
    for node in nodes:
        if any(id(e.node) in dep for e in node.inputs):
            dep.add(id(node))
    return dep


def gradient_entries(heads, wrt: list[Node], head_grads: list) -> list:
    """Gradient entry (or None for zero) of each ``wrt`` variable."""
    nodes = topo_order(heads)
    dep = _depends_on(nodes, {id(w) for w in wrt})
    namer = _Namer()
    grads: dict[Entry, list[Entry]] = {}
    for head, hgrad in zip(heads, head_grads):
        if hgrad is not None:
            grads.setdefault(head, []).append(hgrad)
    for node in reversed(nodes):
        if node.is_variable or id(node) not in dep:
            continue
        out_grads = [_sum(grads.get(Entry(node, i), []), namer)
                     for i in range(node.num_outputs())]
        opdef = node.opdef
        if all(g is None for g in out_grads) and not opdef.ignores_head_grad:
            continue
        if not opdef.differentiable:
            raise NotDifferentiableError(
                f"cannot differentiate through {node.op} node '{node.name}'")
        needs = [id(e.node) in dep for e in node.inputs]
        ctx = GradContext(node, out_grads, needs, namer)
        in_grads = opdef.gradient(node.params, ctx)
        for entry, grad, need in zip(node.inputs, in_grads, needs):
            if need and grad is not None:
                grads.setdefault(entry, []).append(grad)
    return [_sum(grads.get(Entry(w, 0), []), namer) for w in wrt]


def head_gradient_variables(heads) -> list:
    """A head-gradient variable for each head whose op reads it (not loss heads)."""
    result = []
    for head in heads:
        node = head.node
        if not node.is_variable and node.opdef.ignores_head_grad:
            result.append(None)
        else:
            result.append(Entry(make_variable(f"{head.label}_head_grad"), 0))
    return result


def zeros_like(entry: Entry, namer_name: str) -> Entry:
    node = make_op_node("zeros_like", namer_name, [entry], {})
    return Entry(node, 0)


def grad(symbol, wrt=None):
    """The gradient of ``symbol``'s heads w.r.t. the named arguments, as a Symbol.

    Its outputs are one gradient per name in ``wrt`` (all arguments by default), in order;
    its inputs are the forward inputs plus ``<output>_head_grad`` variables for heads that
    are not loss ops. Gradients that are identically zero become ``zeros_like`` nodes.
    """
    from .symbol import Symbol

    nodes = {n.name: n for n in topo_order(symbol.outputs) if n.is_variable}
    names = symbol.list_arguments() if wrt is None else list(wrt)
    for name in names:
        if name not in nodes:
            raise GraphError(f"grad: '{name}' is not an argument of the symbol; arguments are "
                             f"{', '.join(symbol.list_arguments())}")
    wrt_nodes = [nodes[n] for n in names]
    entries = gradient_entries(symbol.outputs, wrt_nodes, head_gradient_variables(symbol.outputs))
    result = []
    for name, node, entry in zip(names, wrt_nodes, entries):
        if entry is None:
            entry = zeros_like(Entry(node, 0), f"{name}_zero_grad")
        result.append(entry)
    return Symbol(result)
