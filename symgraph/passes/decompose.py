"""Replace composite ops (LayerNorm, InstanceNorm, softmax_cross_entropy, ...) by the graph
of registered ops their ``OpDef.decompose`` rule gives.

It runs first in the pipeline, so the passes after it (CSE, simplification, folding) and
codegen's fusion only ever see primitive ops: a LayerNorm becomes reductions and
broadcast elementwise ops that fuse like any others, with no kernel of its own. The
decomposed nodes are named ``<node>_<op>[k]`` so pictures and traces still say which
layer they came from. Decomposition is recursive (a composite may use composites).
"""

from __future__ import annotations

from ..errors import GraphError
from ..graph import Entry, make_op_node
from .rewrite import rebuild

MAX_DEPTH = 16


class Decomposer:
    """What an op's ``decompose`` rule sees: the node's inputs and a node factory."""

    def __init__(self, node_name: str, inputs):
        self.node_name = node_name
        self.inputs = list(inputs)
        self._counts: dict[str, int] = {}

    def _name(self, op_name: str) -> str:
        base = f"{self.node_name}_{op_name.strip('_').lower()}"
        count = self._counts.get(base, 0)
        self._counts[base] = count + 1
        return base if count == 0 else f"{base}{count}"

    def op(self, op_name: str, *inputs: Entry, **attrs) -> Entry:
        return self.op_multi(op_name, *inputs, **attrs)[0]

    def op_multi(self, op_name: str, *inputs: Entry, **attrs) -> list[Entry]:
        from ..ops.params import attr_string

        text = {k: attr_string(v) for k, v in attrs.items() if v is not None}
        node = make_op_node(op_name, self._name(op_name), inputs, text)
        return [Entry(node, i) for i in range(node.num_outputs())]


def expand(opdef, params, node_name: str, inputs, depth: int = 0) -> list[Entry]:
    """The entries computing a composite node's outputs from ``inputs`` (fully primitive)."""
    if depth > MAX_DEPTH:
        raise GraphError(f"{opdef.name} node '{node_name}': decomposition does not terminate")
    outputs = opdef.decompose(params, Decomposer(node_name, inputs))
    expected = opdef.num_outputs(params)
    if outputs is None or len(outputs) != expected:
        raise GraphError(f"{opdef.name} node '{node_name}': decomposition gave "
                         f"{0 if outputs is None else len(outputs)} outputs, expected {expected}")
    return list(outputs)


def decompose_composites(heads) -> tuple[Entry, ...]:
    """Graph with every composite node replaced by its decomposition."""

    def visit(node, new_inputs):
        if node.is_variable or not node.opdef.is_composite:
            return None
        outputs = expand(node.opdef, node.params, node.name, new_inputs)
        return list(decompose_composites(outputs))

    return rebuild(tuple(heads), visit)
