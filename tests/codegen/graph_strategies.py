"""Hypothesis building blocks for random elementwise graphs (compiled-graph and fusion tests)."""

from hypothesis import strategies as st

import symgraph as sg
from symgraph.frontend.common import make

UNARY = ["exp", "tanh", "sigmoid", "relu", "square", "abs", "softsign"]


def grow_elementwise(draw, nodes, binary, max_ops):
    """Append 2..max_ops random unary, binary (from ``binary``) or scalar ops on ``nodes``.

    A ``broadcast_*`` op gets a right operand summed to one row, so it really broadcasts.
    """
    for _ in range(draw(st.integers(2, max_ops))):
        kind = draw(st.sampled_from(["unary", "binary", "scalar"]))
        x = nodes[draw(st.integers(0, len(nodes) - 1))]
        if kind == "unary":
            nodes.append(getattr(sg.sym, draw(st.sampled_from(UNARY)))(x))
        elif kind == "binary":
            y = nodes[draw(st.integers(0, len(nodes) - 1))]
            op = draw(st.sampled_from(binary))
            if op.startswith("broadcast_"):
                y = sg.sym.sum(y, axis=0, keepdims=True)
            nodes.append(make(op, (x, y)))
        else:
            nodes.append(x * draw(st.floats(-2, 2)) + draw(st.floats(-1, 1)))
    return nodes
