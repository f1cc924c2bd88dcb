"""Dead-node elimination, including nodes that are reachable but whose *values* are dead.

``topo_order`` already drops nodes no head reaches, so a plain reachability sweep would do
nothing. What stays alive by accident is computation read only for its *shape*:
``zeros_like(f(x))`` keeps ``f`` alive although only ``x``'s shape matters (gradient graphs
are full of these, e.g. ``zeros_like`` of an unused argument's consumer, and
``reshape_like(dx, data)``). A same-shape elementwise op has its output shape equal to each
input's shape, so the shape-only input can move down to the op's first input, and the op
(and whatever only it used, head-gradient variables included) becomes unreachable.

Variables that lose their last reader disappear from the optimized graph; callers keep
the original symbol's argument list for binding. Hidden outputs of multi-output nodes
cannot be dropped without op support (the op decides its output count), so they stay.
"""

from __future__ import annotations

from ..graph import Entry, Node
from ..ops.elementwise_base import ElementwiseOp
from ..ops.registry import OpDef
from .rewrite import rebuild

# op name -> input positions read only for their shape (and dtype)
SHAPE_ONLY_INPUTS = {
    "zeros_like": (0,),
    "ones_like": (0,),
    "reshape_like": (1,),
    "broadcast_like": (1,),
}


def _keeps_shape_and_dtype(opdef: OpDef, node: Node) -> bool:
    """True if the output has the shape and dtype of input 0 whatever the values are."""
    if node.is_variable or not opdef.is_elementwise or getattr(opdef, "broadcast", True):
        return False
    if node.num_outputs() != 1 or not node.inputs:
        return False
    return type(opdef).infer_type in (OpDef.infer_type, ElementwiseOp.infer_type)


def shape_anchor(entry: Entry) -> Entry:
    """The cheapest entry known (without inference) to have ``entry``'s shape and dtype."""
    while not entry.node.is_variable and _keeps_shape_and_dtype(entry.node.opdef, entry.node):
        entry = entry.node.inputs[0]
    return entry


def _reanchor(node: Node, new_inputs):
    positions = SHAPE_ONLY_INPUTS.get(node.op)
    if not positions:
        return None
    inputs = list(new_inputs)
    for pos in positions:
        inputs[pos] = shape_anchor(inputs[pos])
    if all(a == b for a, b in zip(inputs, node.inputs)):
        return None
    copy = Node(node.op, node.name, dict(node.attrs), tuple(inputs), node.params)
    return [Entry(copy, i) for i in range(copy.num_outputs())]


def eliminate_dead_nodes(heads) -> tuple[Entry, ...]:
    """Graph computing the same head values with shape-only uses moved off dead work."""
    return rebuild(tuple(heads), _reanchor)
