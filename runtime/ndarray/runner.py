"""Running a pending trace: one compiled executor per trace structure, reused every step.

The structure key holds what changes the compiled program: every node (op, attributes,
inputs), every leaf's shape, dtype and whether it needs a gradient, which arrays are
outputs, the head of ``backward()`` and the training mode. Values are not in it, so step
N+1 of a training loop finds step N's executor and costs one dictionary lookup plus the
copies below.

Leaf values are copied into the executor's arena and gradients out of it by
:func:`_load_leaves` / :func:`_store_grads`: the one place to swap for the executor's
external buffers (caller-owned arrays through a pointer table) once they exist.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from symgraph.graph import Entry, make_op_node, make_variable
from symgraph.symbol import Symbol

from . import state

_EXECUTORS: OrderedDict = OrderedDict()
_LOCK = threading.Lock()
MAX_EXECUTORS = 16  # each holds an arena; a training loop uses a handful (train, last batch, eval)


class _Compiled:
    """An executor plus how trace leaves and outputs map onto it."""

    def __init__(self, executor, leaf_names, grad_leaves, aux_leaves=()):
        self.lock = threading.Lock()  # one arena: two threads must not run it at once
        self.executor = executor
        self.leaf_names = leaf_names
        self.grad_leaves = grad_leaves
        self.aux_leaves = tuple(aux_leaves)  # (leaf index, name): states ops update in place


def _needs_grad(array) -> bool:
    return array._grad is not None and array._grad_req != "null"


def run(trace, head=None, head_grad=None) -> None:
    """Compute every alive array of ``trace``; with ``head`` (an array or a list of them),
    also backpropagate from it (``head_grad``: None for ones, or one per head)."""
    heads = [] if head is None else (list(head) if isinstance(head, (list, tuple)) else [head])
    head_grads = head_grad if isinstance(head_grad, (list, tuple)) else [head_grad] * len(heads)
    head_ids = {id(h) for h in heads}
    alive = [(a, e) for a, e in trace.alive() if id(a) not in head_ids]
    outputs = [entry for _, entry in alive]
    grads = (tuple(i for i, leaf in enumerate(trace.leaves) if _needs_grad(leaf))
             if heads else ())
    if heads and not grads:
        from .ndarray import AutogradError

        raise AutogradError("backward(): no array of this graph needs a gradient; call "
                            "attach_grad() on an input (or use a Block's parameters) inside "
                            "autograd.record()")
    head_entries = tuple(h._entry for h in heads)
    key = (tuple(trace.signature),
           tuple((leaf._shape, leaf._dtype) for leaf in trace.leaves),
           tuple(outputs), head_entries, grads, trace.is_train)
    compiled = _lookup(key, trace, outputs, head_entries, grads)
    with compiled.lock:
        _execute(compiled, trace, alive, heads, head_grads)
    if heads or not state.is_recording():
        trace.closed = True  # inside record() a read keeps the graph open for backward()


def _execute(compiled, trace, alive, heads, head_grads) -> None:
    exe = compiled.executor
    _load_leaves(exe, compiled.leaf_names, trace.leaves)
    if not heads:
        exe.forward(is_train=trace.is_train)
        results = exe.outputs
    else:
        grads = [np.ones(h._shape, h._dtype) if g is None else g
                 for h, g in zip(heads, head_grads)]
        if trace.is_train:
            exe.forward_backward(out_grads=grads)
        else:
            exe.forward(is_train=False)
            exe.backward(out_grads=grads)
        results = exe.outputs[len(heads):]
        for h, value in zip(heads, exe.outputs):
            h._data = value.copy()
        _store_grads(exe, compiled, trace.leaves)
    _store_aux(exe, compiled, trace.leaves)
    for (array, _), value in zip(alive, results):
        array._data = value.copy()


def _lookup(key, trace, outputs, head_entries, grads) -> _Compiled:
    with _LOCK:
        hit = _EXECUTORS.get(key)
        if hit is not None:
            _EXECUTORS.move_to_end(key)
            return hit
    compiled = _build(trace, outputs, head_entries, grads)
    with _LOCK:
        _EXECUTORS[key] = compiled
        while len(_EXECUTORS) > MAX_EXECUTORS:
            _EXECUTORS.popitem(last=False)
    return compiled


def _leaf_names(leaves) -> list[str]:
    names, used = [], set()
    for index, leaf in enumerate(leaves):
        name = leaf._label or f"_leaf{index}"
        if name in used:
            name = f"{name}_leaf{index}"
        used.add(name)
        names.append(name)
    return names


def build_symbol(trace, outputs, head_entries=(), leaf_names=None):
    """The trace as a Symbol: heads are the backward heads (if any), then the outputs."""
    leaf_names = leaf_names or _leaf_names(trace.leaves)
    variables = [Entry(make_variable(name, {}), 0) for name in leaf_names]
    nodes, used = [], {}
    for node in trace.nodes:
        inputs = [variables[ref[1]] if ref[0] == "leaf" else Entry(nodes[ref[1]], ref[2])
                  for ref in node.inputs]
        count = used.get(node.name, 0)
        used[node.name] = count + 1
        name = node.name if count == 0 else f"{node.name}{count}"
        nodes.append(make_op_node(node.opdef.name, name, inputs, dict(node.attrs)))
    heads = [Entry(nodes[index], out) for index, out in head_entries]
    for index, out in outputs:
        entry = Entry(nodes[index], out)
        if head_entries:
            block = make_op_node("BlockGrad", f"{nodes[index].name}_out{out}", [entry], {})
            entry = Entry(block, 0)
        heads.append(entry)
    return Symbol(heads)


def _build(trace, outputs, head_entries, grads) -> _Compiled:
    from runtime.executor import BINDER

    names = _leaf_names(trace.leaves)
    symbol = build_symbol(trace, outputs, head_entries, names)
    args = set(symbol.list_arguments())
    aux = set(symbol.list_auxiliary_states())
    used = args | aux
    reqs = {n: ("write" if i in grads else "null") for i, n in enumerate(names) if n in args}
    shapes = {n: trace.leaves[i]._shape for i, n in enumerate(names) if n in used}
    dtypes = {n: trace.leaves[i]._dtype for i, n in enumerate(names) if n in used}
    exe = BINDER.simple_bind(symbol, grad_req=reqs, type_dict=dtypes, **shapes)
    leaf_names = [n if n in used else None for n in names]
    grad_leaves = [(i, names[i]) for i in grads if names[i] in args]
    aux_leaves = [(i, n) for i, n in enumerate(names) if n in aux]
    return _Compiled(exe, leaf_names, grad_leaves, aux_leaves)


# ---- the copy boundary (swap for external buffers) ------------------------------------
def _load_leaves(exe, names, leaves) -> None:
    args, aux = exe.arg_dict, exe.aux_dict
    for name, leaf in zip(names, leaves):
        if name is not None:
            np.copyto(args[name] if name in args else aux[name], leaf._data, casting="unsafe")


def _store_aux(exe, compiled, leaves) -> None:
    """Aux states (BatchNorm's moving statistics) go back to the arrays they came from."""
    for index, name in compiled.aux_leaves:
        np.copyto(leaves[index]._data, exe.aux_dict[name], casting="unsafe")


def _store_grads(exe, compiled, leaves) -> None:
    for index, name in compiled.grad_leaves:
        leaf = leaves[index]
        grad = leaf._grad
        if leaf._grad_req == "add":
            grad._data += exe.grad_dict[name]
        else:
            np.copyto(grad._data, exe.grad_dict[name])
        leaf._fresh_grad = True
