"""Inference-only pass: a BatchNorm right after a Convolution or FullyConnected folds into
that layer's weights, so an inference forward pays nothing for the normalization.

In inference BatchNorm is affine per channel, ``y = (z - mm) * s + beta`` with
``s = gamma / sqrt(mv + eps)`` (gamma = 1 under ``fix_gamma``), and ``z = W * x + b`` is
linear per output channel, so ``y = (W * s) * x + ((b - mm) * s + beta)``. The pass writes
that with registered ops on the layer's variables: the new weights are computed from the
live parameters at run time (per weight element, not per activation), so loading new
parameters into an executor still works. Results equal the unfolded graph up to float
rounding (one multiplication is re-associated).

It only applies where it is valid: the layer's output feeds this BatchNorm alone and is
not a head, the BatchNorm's mean/var outputs are unused, and its axis is the layer's
channel axis (1 for NCHW convolution; the last axis for FullyConnected). It must never
run on a graph used for training, where BatchNorm uses batch statistics.
"""

from __future__ import annotations

from ..graph import Entry, make_op_node, topo_order
from .rewrite import rebuild

FOLDABLE = ("Convolution", "FullyConnected")


def _consumers(heads) -> dict:
    """Entry -> number of uses (inputs of nodes, plus heads)."""
    uses: dict = {}
    for node in topo_order(heads):
        for entry in node.inputs:
            uses[entry] = uses.get(entry, 0) + 1
    for head in heads:
        uses[head] = uses.get(head, 0) + 1
    return uses


def _channel_axis_matches(layer, bn) -> bool:
    axis = bn.params.axis
    if layer.op == "Convolution":
        return axis in (1, -3)
    if layer.params.flatten:
        return axis in (1, -1)
    return axis == -1


def _foldable(node, uses) -> bool:
    if node.is_variable or node.op != "BatchNorm":
        return False
    layer_entry = node.inputs[0]
    layer = layer_entry.node
    if layer.is_variable or layer.op not in FOLDABLE or layer_entry.index != 0:
        return False
    if uses.get(layer_entry, 0) != 1:
        return False
    if any(uses.get(Entry(node, i), 0) for i in (1, 2)):
        return False
    return _channel_axis_matches(layer, node)


def _op(name, op, *inputs, **attrs):
    text = {k: str(v) for k, v in attrs.items()}
    return Entry(make_op_node(op, name, inputs, text), 0)


def _folded(bn, layer, inputs):
    """The layer node (named like the BatchNorm) with scaled weights and a new bias."""
    _, gamma, beta, moving_mean, moving_var = inputs
    base = f"{bn.name}_fold"
    invstd = _op(f"{base}_invstd", "rsqrt",
                 _op(f"{base}_var_eps", "_plus_scalar", moving_var, scalar=bn.params.eps))
    scale = invstd if bn.params.fix_gamma else _op(f"{base}_scale", "elemwise_mul", invstd,
                                                   gamma)
    data, weight = layer.inputs[0], layer.inputs[1]
    ones = (1,) * (3 if layer.op == "Convolution" else 1)
    column = _op(f"{base}_column", "Reshape", scale, shape=(-1,) + ones)
    new_weight = _op(f"{base}_weight", "broadcast_mul", weight, column)
    shifted = moving_mean
    has_bias = not layer.params.no_bias
    if has_bias:
        shifted = _op(f"{base}_centre", "elemwise_sub", moving_mean, layer.inputs[2])
    new_bias = _op(f"{base}_bias", "elemwise_sub", beta,
                   _op(f"{base}_shift", "elemwise_mul", shifted, scale))
    attrs = dict(layer.attrs)
    attrs["no_bias"] = "False"
    node = make_op_node(layer.op, bn.name, (data, new_weight, new_bias), attrs)
    return [Entry(node, 0), Entry(bn, 1), Entry(bn, 2)]


def fold_batchnorm(heads) -> tuple[Entry, ...]:
    """Heads of the inference graph with every foldable BatchNorm merged into its layer."""
    heads = tuple(heads)
    uses = _consumers(heads)

    def visit(node, new_inputs):
        if not _foldable(node, uses):
            return None
        layer = new_inputs[0].node
        return _folded(node, layer, new_inputs)

    return rebuild(heads, visit)
