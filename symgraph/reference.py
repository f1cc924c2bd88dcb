"""The numpy reference interpreter: the oracle compiled executors are tested against.

It evaluates any graph (forward graphs and gradient graphs alike) node by node with each
op's ``reference`` rule. It is deliberately simple and slow; users train with the JIT.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import ExecutorError
from .graph import Entry, topo_order


@dataclass
class RefContext:
    """What a reference rule may need beyond its inputs."""

    is_train: bool = False
    seed: int = 0
    node_name: str = ""
    aux_updates: dict = field(default_factory=dict)
    node: object = None

    def update_aux(self, index: int, value) -> None:
        """Record the new value of the node's mutated input ``index`` (an aux state)."""
        self.aux_updates[self.node.inputs[index].node.name] = np.asarray(value)


def evaluate(heads, values: dict[str, np.ndarray], is_train: bool = False, seed: int = 0,
             keep_all: bool = False):
    """Evaluate ``heads`` given arrays for the variables (by name).

    Returns the head arrays (and, with ``keep_all``, the dict of every entry's value).
    Aux updates (BatchNorm moving stats) are reported in ``ctx.aux_updates`` of the run
    and returned in the dict under the variable names when ``keep_all``.
    """
    heads = list(heads)
    env: dict[Entry, np.ndarray] = {}
    ctx = RefContext(is_train=is_train, seed=seed)
    for node in topo_order(heads):
        if node.is_variable:
            if node.name not in values:
                raise ExecutorError(f"reference: no value for variable '{node.name}'")
            env[Entry(node, 0)] = np.asarray(values[node.name])
            continue
        ctx.node_name, ctx.node = node.name, node
        inputs = [env[e] for e in node.inputs]
        outputs = node.opdef.reference(node.params, inputs, ctx)
        for index, value in enumerate(outputs):
            env[Entry(node, index)] = np.asarray(value)
    results = [env[h] for h in heads]
    if keep_all:
        return results, env, ctx.aux_updates
    return results
