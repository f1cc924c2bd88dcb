"""Graph builders and checks shared by the symgraph tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import strategies as st

import symgraph as sg
from symgraph.compose import create
from symgraph.graph import topo_order
from symgraph.reference import evaluate

S = sg.sym
GOLDEN = Path(__file__).resolve().parents[1] / "golden"
MLP_ARGS = ["data", "fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias", "softmax_label"]


def letter_mlp():
    """The letter-recognition MLP of the issue: 16 features, 64 hidden, 26 classes."""
    data = S.Variable("data")
    fc1 = S.FullyConnected(data=data, name="fc1", num_hidden=64)
    act = S.Activation(data=fc1, name="relu1", act_type="relu")
    fc2 = S.FullyConnected(data=act, name="fc2", num_hidden=26)
    return S.SoftmaxOutput(data=fc2, name="softmax")


def random_inputs(symbol, shapes: dict, seed: int = 0, dtype="float64") -> dict:
    """Random arrays for every argument, shapes from inference given ``shapes``."""
    rng = np.random.default_rng(seed)
    arg_shapes, _, _ = symbol.infer_shape(**shapes)
    return {name: rng.uniform(-1, 1, size=shape).astype(dtype)
            for name, shape in zip(symbol.list_arguments(), arg_shapes)}


def run(symbol, values: dict) -> list[np.ndarray]:
    return evaluate(symbol.outputs, values)


def node_count(symbol) -> int:
    return len(topo_order(symbol.outputs))


UNARY = ("tanh", "sigmoid", "exp_small", "neg", "abs", "relu", "mul1", "plus0",
         "copy", "blockgrad", "ones", "zeros", "add_n1", "scalar")
BINARY = ("add", "sub", "mul", "maximum", "zero_minus", "one_times", "over_one")


def _unary(kind: str, x, scalar: float):
    table = {
        "tanh": lambda: S.tanh(x), "sigmoid": lambda: S.sigmoid(x),
        "exp_small": lambda: S.exp(S.tanh(x)), "neg": lambda: -x, "abs": lambda: abs(x),
        "relu": lambda: S.relu(x), "mul1": lambda: x * 1, "plus0": lambda: x + 0,
        "copy": lambda: create("_copy", (x,), {}), "blockgrad": lambda: S.BlockGrad(x),
        "ones": lambda: S.ones_like(x), "zeros": lambda: S.zeros_like(x),
        "add_n1": lambda: S.add_n(x), "scalar": lambda: x * scalar + scalar,
    }
    return table[kind]()


def _binary(kind: str, a, b):
    table = {"add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b,
             "maximum": lambda: S.maximum(a, b), "zero_minus": lambda: S.zeros_like(b) - a,
             "one_times": lambda: S.ones_like(b) * a, "over_one": lambda: a / S.ones_like(b)}
    return table[kind]()


@st.composite
def random_graphs(draw, max_ops: int = 12):
    """A random same-shape elementwise graph over up to three (4, 3) variables.

    Steps pick existing expressions (so subexpressions get shared and repeated, which
    is what CSE and simplify look for) and apply unary, binary or FC layers.
    """
    names = ["a", "b", "c"][: draw(st.integers(1, 3))]
    pool = [S.Variable(n) for n in names]
    for step in range(draw(st.integers(1, max_ops))):
        kind = draw(st.sampled_from(("unary", "unary", "binary", "fc")))
        x = draw(st.sampled_from(pool))
        if kind == "unary":
            scalar = draw(st.sampled_from((-1.0, 0.0, 0.5, 1.0, 2.0)))
            pool.append(_unary(draw(st.sampled_from(UNARY)), x, scalar))
        elif kind == "binary":
            pool.append(_binary(draw(st.sampled_from(BINARY)), x, draw(st.sampled_from(pool))))
        else:
            pool.append(S.FullyConnected(x, num_hidden=3, name=f"fc{step}"))
    heads = draw(st.lists(st.sampled_from(pool[len(names):] or pool), min_size=1,
                          max_size=3, unique_by=id))
    return S.Group(heads)


def graph_values(symbol, seed: int = 0) -> dict:
    """float64 values for every input of a random graph (data variables are (4, 3))."""
    rng = np.random.default_rng(seed)
    known = {n: (4, 3) for n in symbol.list_inputs() if n in ("a", "b", "c")}
    arg_shapes, _, _ = symbol.infer_shape(**known)
    return {name: rng.uniform(-2, 2, size=shape)
            for name, shape in zip(symbol.list_arguments(), arg_shapes)}
