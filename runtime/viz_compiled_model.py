"""What ``plot_compiled`` draws: the graph the compiler really ran, and which kernel call
(and which arena bytes) belongs to which node.

The executor keeps the native program (``KernelCall(kernel, offsets)``) but not the
node -> call mapping (``LogicalCall.node_name`` is dropped when the program is built). We
therefore redo the deterministic front half of ``codegen.compiler.compile_graph``
(autodiff, passes, inference, lowering; no JIT), check it against the executor's
``graph_text``, and match our lowered calls to the program's calls by kernel name (a
content hash). A call the compiler records node names for (``KernelCall.node_names``)
uses those names directly; calls nobody claims (output copies, gradient zero-fill or
accumulation, future fused kernels) stay "unattributed" instead of being guessed.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field

from codegen import loop_ir as L
from symgraph.graph import Entry, dump, topo_order

PHASE = "forward_backward"


@dataclass
class CallInfo:
    """One native kernel call of the drawn phase."""

    index: int
    kernel: object
    offsets: tuple
    stage: str  # "forward" or "backward"
    nodes: tuple = ()  # names of the graph nodes lowered into this call
    entries: tuple = ()  # Entry (or None) bound to each kernel parameter

    def buffers(self):
        """(param name, byte offset, byte size) per kernel parameter."""
        return [(p.name, off, p.size * L.itemsize(p.dtype))
                for p, off in zip(self.kernel.params, self.offsets)]


@dataclass
class CompiledView:
    nodes: list
    forward_ids: set
    shapes: dict
    dtypes: dict
    calls: list
    buffers: dict = field(default_factory=dict)  # Entry -> (offset, nbytes)
    outputs: list = field(default_factory=list)  # (label, Entry, Slot)
    notes: list = field(default_factory=list)


def _front_half(executor):
    """Heads, gradients and inferred build state exactly as compile_graph makes them."""
    from codegen import compiler as C
    from symgraph.autodiff import gradient_entries, head_gradient_variables

    symbol, compiled = executor.symbol, executor.compiled
    heads = list(symbol.outputs)
    variables = {n.name: n for n in topo_order(heads) if n.is_variable}
    wrt = [n for n in symbol.list_arguments() if executor._grad_req.get(n, "null") != "null"]
    head_vars = head_gradient_variables(heads) if wrt else [None] * len(heads)
    grads = gradient_entries(heads, [variables[n] for n in wrt], head_vars) if wrt else []
    all_heads = C.optimize(tuple(heads) + tuple(g for g in grads if g is not None))
    fwd_heads = list(all_heads[:len(heads)])
    grads = C._realign(grads, list(all_heads[len(heads):]))
    build = C._Build()
    shapes = {n: s.shape for n, s in compiled.args.items()}
    dtypes = {n: s.dtype for n, s in compiled.args.items()}
    C._infer(build, all_heads, heads, head_vars, shapes, dtypes)
    return build, fwd_heads, all_heads, dict(zip(wrt, grads))


def _lowered(build, nodes):
    """Per kernel name, the queue of (node name, entries per param) in lowering order."""
    from codegen import compiler as C

    queues = defaultdict(deque)
    by_key = {}
    for call in C._lower_nodes(build, nodes, True):
        by_key.update({k: e for e, k in build.keys.items()})
        entries = tuple(by_key.get(k) for k in call.keys)
        queues[call.kernel.name].append((call.node_name, entries))
    return queues


def _match(program_calls, n_forward, queues):
    calls = []
    for index, call in enumerate(program_calls):
        stage = "forward" if index < n_forward else "backward"
        info = CallInfo(index, call.kernel, tuple(call.args), stage)
        recorded = getattr(call, "node_names", None)
        queue = queues.get(call.kernel.name)
        if queue:
            name, info.entries = queue.popleft()
            info.nodes = (name,)
        if recorded:
            info.nodes = tuple(recorded)
        calls.append(info)
    return calls


def _entry_buffers(view, compiled):
    """Entry -> (offset, nbytes) from the real calls, persistent slots and aliases."""
    out = {}
    for call in view.calls:
        for entry, (_, off, size) in zip(call.entries, call.buffers()):
            if entry is not None:
                out.setdefault(entry, (off, size))
    for node in view.nodes:
        slot = compiled.args.get(node.name) or compiled.aux.get(node.name)
        if node.is_variable and slot is not None:
            out[Entry(node, 0)] = (slot.offset, _nbytes(slot))
    kernel_nodes = {n for c in view.calls for n in c.nodes}
    for node in view.nodes:  # pure reshapes share their input's bytes
        if not node.is_variable and node.name not in kernel_nodes and node.inputs:
            src = out.get(node.inputs[0])
            if src is not None:
                out.setdefault(Entry(node, 0), src)
    return out


def _nbytes(slot) -> int:
    count = 1
    for d in slot.shape:
        count *= d
    return count * L.itemsize(slot.dtype)


def analyze(executor) -> CompiledView:
    """Rebuild the compiled graph and attribute the program's calls to its nodes."""
    compiled = executor.compiled
    build, fwd_heads, all_heads, grads = _front_half(executor)
    nodes = topo_order(all_heads)
    forward_ids = {id(n) for n in topo_order(fwd_heads)}
    phases = compiled.program.program.phases
    n_forward = len(phases.get("forward", []))
    ordered = [n for n in nodes if id(n) in forward_ids]
    ordered += [n for n in nodes if id(n) not in forward_ids]
    queues = _lowered(build, ordered)
    view = CompiledView(nodes, forward_ids, build.shapes, build.dtypes,
                        _match(phases.get(PHASE, []), n_forward, queues))
    if dump(all_heads, build.shapes) != compiled.graph_text:
        view.notes.append("reconstruction differs from executor.compiled.graph_text")
    view.buffers = _entry_buffers(view, compiled)
    for slot, head in zip(compiled.outputs, fwd_heads):
        view.outputs.append((f"output {slot.name}", head, slot))
    for name, slot in compiled.grads.items():
        if grads.get(name) is not None:
            view.outputs.append((f"grad {name}", grads[name], slot))
    return view
