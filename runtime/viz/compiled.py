"""``plot_compiled(executor)``: a picture of what the compiler runs, not what the user wrote.

Forward nodes are solid, gradient nodes (``*_backward_*``) dashed orange; every kernel call
is a cluster around the node(s) lowered into it, labelled with its call number, stage and
kernel name; edges carry the full shape, dtype and arena bytes ``@offset +size``. Nodes
outside any cluster cost no kernel (reshapes alias their input). Calls that no node claims
are drawn as record nodes listing their buffers.
"""

from __future__ import annotations

from runtime.viz import PALETTE, Digraph, _require_graphviz
from runtime.viz.compiled_model import analyze

FORWARD_FILL, GRADIENT_FILL, VARIABLE_FILL = PALETTE[4], PALETTE[5], PALETTE[0]


def _shape_text(view, entry) -> str:
    shape = view.shapes.get(entry)
    dtype = view.dtypes.get(entry) or "float32"
    dims = "x".join(str(d) for d in shape) if shape else "?"
    return f"{dims} {dtype}"


def _edge_label(view, entry) -> str:
    text = _shape_text(view, entry)
    buf = view.buffers.get(entry)
    return f"{text}\n@{buf[0]} +{buf[1]}B" if buf else text


def _node_attrs(view, node, kernel_nodes):
    if node.is_variable:
        return {"label": node.name, "shape": "oval", "style": "filled",
                "fillcolor": VARIABLE_FILL}
    forward = id(node) in view.forward_ids
    style = "filled" if forward else "filled,dashed"
    if node.name not in kernel_nodes:
        style += ",dotted" if forward else ""
    note = "" if node.name in kernel_nodes else "\n(alias, no kernel)"
    return {"label": f"{node.name}\n{node.op}{note}", "shape": "box", "style": style,
            "fillcolor": FORWARD_FILL if forward else GRADIENT_FILL}


def _clusters(view):
    """Kernel calls joined when they share a node, so each node sits in one cluster."""
    groups = []
    owner = {}
    for call in view.calls:
        if not call.nodes:
            continue
        hit = next((owner[n] for n in call.nodes if n in owner), None)
        if hit is None:
            hit = len(groups)
            groups.append([])
        groups[hit].append(call)
        for name in call.nodes:
            owner.setdefault(name, hit)
    return groups, owner


def _call_line(call) -> str:
    return f"#{call.index} {call.stage} {call.kernel.name}"


def _draw_nodes(dot, view, ids):
    groups, owner = _clusters(view)
    kernel_nodes = set(owner)
    by_group = {i: [] for i in range(len(groups))}
    for node in view.nodes:
        if node.name in owner:
            by_group[owner[node.name]].append(node)
        else:
            dot.node(ids[id(node)], **_node_attrs(view, node, kernel_nodes))
    for i, calls in enumerate(groups):
        with dot.subgraph(name=f"cluster_kernel{i}") as sub:
            sub.attr(label="\n".join(_call_line(c) for c in calls), style="rounded",
                     color="#636363", fontsize="9")
            for node in by_group[i]:
                sub.node(ids[id(node)], **_node_attrs(view, node, kernel_nodes))


def _draw_unattributed(dot, view):
    for call in view.calls:
        if call.nodes:
            continue
        fields = "|".join(f"{name} @{off} +{size}B" for name, off, size in call.buffers())
        label = f"{{{_call_line(call)} (unattributed)|{fields}}}"
        with dot.subgraph(name=f"cluster_call{call.index}") as sub:
            sub.attr(label="", style="dotted")
            sub.node(f"call{call.index}", label=label, shape="record", fontsize="9")


def _draw_edges(dot, view, ids):
    for node in view.nodes:
        style = "solid" if id(node) in view.forward_ids else "dashed"
        for entry in node.inputs:
            dot.edge(ids[id(entry.node)], ids[id(node)], label=_edge_label(view, entry),
                     style=style, fontsize="9")
    for i, (label, entry, slot) in enumerate(view.outputs):
        name = f"result{i}"
        dot.node(name, label=f"{label}\n@{slot.where}", shape="note", fontsize="9")
        dot.edge(ids[id(entry.node)], name, label=_shape_text(view, entry), fontsize="9")


def plot_compiled(executor, title="compiled", save_format="svg"):
    """Digraph of the optimized forward+gradient graph, its kernels and memory plan."""
    _require_graphviz()
    view = analyze(executor)
    dot = Digraph(name=title, format=save_format)
    notes = "; ".join(view.notes)
    dot.attr(label=f"{title}: {len(view.calls)} kernel calls, arena "
                   f"{executor.compiled.arena_bytes} B" + (f"\n{notes}" if notes else ""),
             labelloc="t", fontsize="11")
    ids = {id(n): f"n{i}" for i, n in enumerate(view.nodes)}
    _draw_nodes(dot, view, ids)
    _draw_unattributed(dot, view)
    _draw_edges(dot, view, ids)
    return dot
