"""What ``plot_compiled`` draws: the graph the compiler really ran, and which kernel call
(and which arena bytes) belongs to which node.

The compiler keeps a record of the optimized graph (``CompiledGraph.graph``) and, per call
of the training program, the nodes it computes and the graph value bound to each kernel
parameter (``CompiledGraph.trace``); fused calls list every node they compute. Calls
that compute no node (output copies, gradient zero-fill or accumulation) have no nodes
and stay "unattributed" instead of being guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from codegen import loop_ir as L
from symgraph.graph import Entry

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
            out[Entry(node, 0)] = (slot.where, _nbytes(slot))
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
    """The compiled graph and the program's calls attributed to its nodes."""
    compiled = executor.compiled
    graph = compiled.graph
    phase = compiled.program.program.phases.get(PHASE, [])
    calls = [CallInfo(index, call.kernel, tuple(call.args), trace.stage, trace.nodes,
                      trace.entries)
             for index, (call, trace) in enumerate(zip(phase, compiled.trace))]
    view = CompiledView(list(graph.nodes), set(graph.forward_ids), graph.shapes,
                        graph.dtypes, calls)
    if len(phase) != len(compiled.trace):
        view.notes.append(f"{len(phase)} calls but {len(compiled.trace)} traced")
    view.buffers = _entry_buffers(view, compiled)
    for slot, head in zip(compiled.outputs, graph.heads):
        view.outputs.append((f"output {slot.name}", head, slot))
    for name, slot in compiled.grads.items():
        if graph.grads.get(name) is not None:
            view.outputs.append((f"grad {name}", graph.grads[name], slot))
    return view
