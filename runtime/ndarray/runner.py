"""Running a pending trace: one compiled executor per trace structure, reused every step.

The structure key holds what changes the compiled program: every node (op, attributes,
inputs), every leaf's shape, dtype and whether it needs a gradient, which arrays are
outputs, the head of ``backward()`` and the training mode. Values are not in it, so step
N+1 of a training loop finds step N's executor and costs one dictionary lookup plus
copying the batch in.

Parameters' arrays (their values, gradients and aux states) are bound into the executor
(``Executor(args=, grads=, aux=)``): it reads the weights the Trainer updated in place,
writes gradients (``grad_req`` 'write' or 'add', compiled) and BatchNorm's running
statistics straight into the Parameter's buffers, so no copy happens per step. The key
holds the identity of those buffers, so each device's copy of a parameter (and each model
of the same structure) gets its own executor; a Parameter only replaces its buffers on
``initialize``/``cast``/``attach_grad``. Other leaves (batches, arrays the user made) are
copied in, and their gradients copied out, by :func:`_load_leaves` / :func:`_store_grads`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from runtime.ndarray import state
from symgraph.graph import Entry, make_op_node, make_variable
from symgraph.symbol import Symbol

_EXECUTORS: OrderedDict = OrderedDict()
_LOCK = threading.Lock()
MAX_EXECUTORS = 16  # each holds an arena; a training loop uses a handful (train, last batch, eval)


class _Compiled:
    """An executor plus how trace leaves and outputs map onto it."""

    def __init__(self, executor, copied, grad_leaves, aux_leaves, fresh):
        self.lock = threading.Lock()  # one arena: two threads must not run it at once
        self.executor = executor
        self.copied = tuple(copied)  # (leaf index, executor array): values copied in
        self.grad_leaves = tuple(grad_leaves)  # (leaf index, name): gradients copied out
        self.aux_leaves = tuple(aux_leaves)  # (leaf index, name): aux states copied back
        self.fresh = tuple(fresh)  # leaf indices whose gradients this run writes
        self._ones = {}  # head index -> the default head gradient (read, never written)

    def ones(self, index, head):
        ones = self._ones.get(index)
        if ones is None:
            ones = self._ones[index] = np.ones(head._shape, head._dtype)
        return ones


def _needs_grad(array) -> bool:
    return array._grad is not None and array._grad_req != "null"


def _owned(leaf) -> bool:
    """A Parameter's array (only those carry a label): bound into the executor."""
    return leaf._label is not None


def _leaf_key(leaves, with_grads) -> tuple:
    """(leaves needing gradients, identity of the buffers an executor binds): one pass
    over the leaves, since it runs every step."""
    grads, buffers = [], []
    for index, leaf in enumerate(leaves):
        grad = leaf._grad
        needs = with_grads and grad is not None and leaf._grad_req != "null"
        if needs:
            grads.append((index, leaf._grad_req))
        if leaf._label is not None:  # a Parameter's array: bound into the executor
            buffers.append((id(leaf._data), id(grad._data) if needs else None))
    return tuple(grads), tuple(buffers)


def run(trace, head=None, head_grad=None) -> None:
    """Compute every alive array of ``trace``; with ``head`` (an array or a list of them),
    also backpropagate from it (``head_grad``: None for ones, or one per head)."""
    heads = [] if head is None else (list(head) if isinstance(head, (list, tuple)) else [head])
    head_grads = head_grad if isinstance(head_grad, (list, tuple)) else [head_grad] * len(heads)
    head_ids = {id(h) for h in heads}
    alive = [(a, e) for a, e in trace.alive() if id(a) not in head_ids]
    outputs = tuple([entry for _, entry in alive])
    leaves = trace.leaves
    grad_reqs, buffers = _leaf_key(leaves, bool(heads))
    if heads and not grad_reqs:
        from runtime.ndarray.ndarray import AutogradError

        raise AutogradError("backward(): no array of this graph needs a gradient; call "
                            "attach_grad() on an input (or use a Block's parameters) inside "
                            "autograd.record()")
    head_entries = tuple([h._entry for h in heads])
    # the trie state names the whole recorded structure (ops, attributes, inputs, leaf
    # shapes and dtypes); the rest is what else changes the compiled program
    key = (trace.cursor, outputs, head_entries, grad_reqs, trace.is_train, buffers)
    compiled = _lookup(key, trace, outputs, head_entries, grad_reqs)
    with compiled.lock:
        _execute(compiled, trace, alive, heads, head_grads)
    if heads or not state.STATE.recording:
        trace.closed = True  # inside record() a read keeps the graph open for backward()


def _execute(compiled, trace, alive, heads, head_grads) -> None:
    exe = compiled.executor
    _load_leaves(compiled, trace.leaves)
    if not heads:
        exe.forward(is_train=trace.is_train)
        results = exe.outputs
    else:
        grads = [compiled.ones(index, h) if g is None else g
                 for index, (h, g) in enumerate(zip(heads, head_grads))]
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


def _lookup(key, trace, outputs, head_entries, grad_reqs) -> _Compiled:
    with _LOCK:
        hit = _EXECUTORS.get(key)
        if hit is not None:
            _EXECUTORS.move_to_end(key)
            return hit
    compiled = _build(trace, outputs, head_entries, tuple(i for i, _ in grad_reqs))
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
                  for ref in node.inputs]  # ("leaf", index, shape, dtype) / ("node", i, out)
        count = used.get(node.name, 0)
        used[node.name] = count + 1
        name = node.name if count == 0 else f"{node.name}{count}"
        nodes.append(make_op_node(node.opdef.name, name, inputs, dict(node.attrs)))
    heads = [Entry(nodes[index], out) for _, index, out in head_entries]
    for _, index, out in outputs:
        entry = Entry(nodes[index], out)
        if head_entries:
            block = make_op_node("BlockGrad", f"{nodes[index].name}_out{out}", [entry], {})
            entry = Entry(block, 0)
        heads.append(entry)
    return Symbol(heads)


def _build(trace, outputs, head_entries, grads) -> _Compiled:
    from runtime.executor import ExecutorError

    names = _leaf_names(trace.leaves)
    symbol = build_symbol(trace, outputs, head_entries, names)
    try:
        return _bind(symbol, trace.leaves, names, grads, share=True)
    except ExecutorError:  # a parameter buffer that cannot be shared: copy everything
        return _bind(symbol, trace.leaves, names, grads, share=False)


def _bind(symbol, leaves, names, grads, share) -> _Compiled:
    """The executor of ``symbol``, Parameters' buffers bound in when ``share``."""
    from codegen.compile_cache import compile_cached
    from runtime.executor import Executor

    args = set(symbol.list_arguments())
    aux = set(symbol.list_auxiliary_states())
    used = [(i, n) for i, n in enumerate(names) if n in args or n in aux]
    bound = {i for i, _ in used if share and _owned(leaves[i])}
    grads = [i for i in grads if names[i] in args]
    reqs = {n: "null" for n in args}
    for i in grads:
        reqs[names[i]] = leaves[i]._grad_req if i in bound else "write"
    shapes = {n: leaves[i]._shape for i, n in used}
    dtypes = {n: leaves[i]._dtype for i, n in used}
    compiled = compile_cached(symbol, shapes, dtypes, reqs)
    exe = Executor(symbol, compiled, reqs,
                   args={n: leaves[i]._data for i, n in used if i in bound and n in args},
                   aux={n: leaves[i]._data for i, n in used if i in bound and n in aux},
                   grads={names[i]: leaves[i]._grad._data for i in grads if i in bound})
    copied = [(i, exe.arg_dict[n] if n in args else exe.aux_dict[n])
              for i, n in used if i not in bound]
    return _Compiled(exe, copied, [(i, names[i]) for i in grads if i not in bound],
                     [(i, n) for i, n in used if n in aux and i not in bound], grads)


# ---- the copy boundary (leaves that are not Parameters) -------------------------------
def _load_leaves(compiled, leaves) -> None:
    for index, target in compiled.copied:
        np.copyto(target, leaves[index]._data, casting="unsafe")


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
    for index in compiled.fresh:
        leaves[index]._fresh_grad = True
