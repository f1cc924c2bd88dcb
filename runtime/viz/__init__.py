"""``sg.viz``: MXNet's ``mx.viz`` (plot_network, print_summary) plus compiled-graph and
training-curve pictures.

plot_network and print_summary follow MXNet 1.x line by line (labels, colours, the
``set(heads[0])`` quirk, param counts), because users diff their old outputs against ours.
The Digraph we return is a subclass of ``graphviz.Digraph`` whose only change is that a
missing ``dot`` binary raises an error saying how to install it, instead of graphviz's
generic PATH message.
"""

from __future__ import annotations

import copy
import json
import warnings

import numpy as np

try:
    import graphviz
except ImportError:  # pragma: no cover - graphviz is a hard dependency
    graphviz = None

PALETTE = ("#8dd3c7", "#fb8072", "#ffffb3", "#bebada", "#80b1d3",
           "#fdb462", "#b3de69", "#fccde5")
WEIGHT_SUFFIXES = ("_weight", "_bias", "_beta", "_gamma",
                   "_moving_var", "_moving_mean", "_running_var", "_running_mean")
INSTALL_HINT = ("the Graphviz 'dot' program is needed to render; install it with "
                "'apt-get install graphviz' (Debian/Ubuntu), 'brew install graphviz' (macOS) "
                "or 'conda install graphviz'")


def _require_graphviz():
    if graphviz is None:
        raise ImportError("Draw network requires graphviz library (pip install graphviz)")
    return graphviz


class DotNotFoundError(RuntimeError):
    """Rendering needs the ``dot`` executable, which is not on PATH."""


def _base():
    return graphviz.Digraph if graphviz is not None else object


class Digraph(_base()):
    """graphviz.Digraph whose render/pipe/view name the install command when dot is absent."""

    def _friendly(self, method, *args, **kwargs):
        try:
            return method(*args, **kwargs)
        except graphviz.ExecutableNotFound as err:
            raise DotNotFoundError(f"{INSTALL_HINT} ({err})") from None

    def render(self, *args, **kwargs):
        return self._friendly(super().render, *args, **kwargs)

    def pipe(self, *args, **kwargs):
        return self._friendly(super().pipe, *args, **kwargs)

    def view(self, *args, **kwargs):
        return self._friendly(super().view, *args, **kwargs)


def _str2tuple(text: str) -> list[str]:
    """MXNet's helper: the digits of "(3, 3)" as strings."""
    return [part.strip() for part in text.strip("()[] ").split(",") if part.strip()]


def _type_name(t) -> str:
    return np.dtype(t).name


def _internal_dict(symbol, infer, kwargs):
    """Output name -> inferred value for every internal entry (shapes or dtypes)."""
    internals = symbol.get_internals()
    _, outs, _ = getattr(internals, infer)(**kwargs)
    if outs is None:
        raise ValueError(f"Input {'shape' if infer == 'infer_shape' else 'type'} is "
                         "incomplete")
    return dict(zip(internals.list_outputs(), outs))


def _warn_duplicates(nodes):
    seen, repeated = set(), []
    for node in nodes:
        if node["name"] in seen and node["name"] not in repeated:
            repeated.append(node["name"])
        seen.add(node["name"])
    if repeated:
        warnings.warn("There are multiple variables with the same name in your graph, this "
                      "may result in cyclic graph. Repeated names: " + ",".join(repeated),
                      RuntimeWarning, stacklevel=3)


def _op_style(node):
    """(label, fillcolor) of an op node, MXNet's table."""
    op, name, attrs = node["op"], node["name"], node.get("attrs", {})
    if op == "Convolution":
        stride = "x".join(_str2tuple(attrs["stride"])) if "stride" in attrs else "1"
        kernel = "x".join(_str2tuple(attrs["kernel"]))
        return f"Convolution\n{kernel}/{stride}, {attrs['num_filter']}", PALETTE[1]
    if op == "FullyConnected":
        return f"FullyConnected\n{attrs['num_hidden']}", PALETTE[1]
    if op == "BatchNorm":
        return name, PALETTE[3]
    if op == "Activation":
        return f"Activation\n{attrs['act_type']}", PALETTE[2]
    if op == "LeakyReLU":
        return f"LeakyReLU\n{attrs.get('act_type', 'Leaky')}", PALETTE[2]
    if op == "Pooling":
        kernel = "x".join(_str2tuple(attrs["kernel"])) if "kernel" in attrs else "[]"
        stride = "x".join(_str2tuple(attrs["stride"])) if "stride" in attrs else "1"
        return f"Pooling\n{attrs['pool_type']}, {kernel}/{stride}", PALETTE[4]
    if op in ("Concat", "Flatten", "Reshape"):
        return name, PALETTE[5]
    if op == "Softmax":
        return name, PALETTE[6]
    return (attrs["op_type"] if op == "Custom" else name), PALETTE[7]


def _entry_key(input_node) -> str:
    """The internals output name MXNet looks an edge's shape/dtype up under."""
    if input_node["op"] == "null":
        return input_node["name"]
    key = input_node["name"] + "_output"
    params = input_node.get("attrs", {})
    if "num_outputs" in params:
        key += str(int(params["num_outputs"]) - 1)
    return key


def _lookup(table, input_node):
    """MXNet indexes directly; fall back to the node's first output where it would crash."""
    key = _entry_key(input_node)
    if key not in table:
        prefix = input_node["name"] + "_"
        key = next((k for k in table if k.startswith(prefix)), key)
    return table[key]


def _edge_attrs(input_node, shapes, types):
    attr = {"dir": "back", "arrowtail": "open", "label": ""}
    if shapes is not None:
        attr["label"] = "x".join(str(x) for x in _lookup(shapes, input_node)[1:])
    if types is not None:
        attr["label"] += "(" + _type_name(_lookup(types, input_node)) + ")"
    return attr


def plot_network(symbol, title="plot", save_format="pdf", shape=None, dtype=None,
                 node_attrs={}, hide_weights=True):  # noqa: B006 - MXNet's signature
    """Digraph of ``symbol`` as MXNet draws it; render with ``.render()`` or ``.view()``."""
    _require_graphviz()
    shapes = _internal_dict(symbol, "infer_shape", shape) if shape is not None else None
    types = _internal_dict(symbol, "infer_type", dtype) if dtype is not None else None
    nodes = json.loads(symbol.tojson())["nodes"]
    _warn_duplicates(nodes)
    node_attr = {"shape": "box", "fixedsize": "true", "width": "1.3", "height": "0.8034",
                 "style": "filled"}
    node_attr.update(node_attrs)
    dot = Digraph(name=title, format=save_format)
    hidden = set()
    for node in nodes:
        attr = copy.deepcopy(node_attr)
        if node["op"] == "null":
            if node["name"].endswith(WEIGHT_SUFFIXES):
                if hide_weights:
                    hidden.add(node["name"])
                continue  # shown weights become plain default nodes via their edges
            attr["shape"], attr["fillcolor"], label = "oval", PALETTE[0], node["name"]
        else:
            label, attr["fillcolor"] = _op_style(node)
        dot.node(name=node["name"], label=label, **attr)
    for node in nodes:
        if node["op"] == "null":
            continue
        for item in node["inputs"]:
            input_node = nodes[item[0]]
            if input_node["name"] not in hidden:
                dot.edge(tail_name=node["name"], head_name=input_node["name"],
                         **_edge_attrs(input_node, shapes, types))
    return dot


# ---- print_summary ---------------------------------------------------------------------
def _print_row(fields, positions):
    line = ""
    for i, field in enumerate(fields):
        line += str(field)
        line = line[:positions[i]]
        line += " " * (positions[i] - len(line))
    print(line)


def _layer_params(node, pre_filter, shapes) -> int:
    """MXNet's parameter count for one layer (in-size = summed channel dims of inputs)."""
    op, attrs = node["op"], node.get("attrs", {})
    no_bias = attrs.get("no_bias") == "True"
    if op == "Convolution":
        count = pre_filter * int(attrs["num_filter"]) // int(attrs.get("num_group", "1"))
        for k in _str2tuple(attrs["kernel"]):
            count *= int(k)
        return count if no_bias else count + int(attrs["num_filter"])
    if op == "FullyConnected":
        hidden = int(attrs["num_hidden"])
        return pre_filter * hidden if no_bias else (pre_filter + 1) * hidden
    if op == "BatchNorm":
        return int(shapes[node["name"] + "_output"][1]) * 2 if shapes is not None else 0
    if op == "Embedding":
        return int(attrs["input_dim"]) * int(attrs["output_dim"])
    return 0


def _previous_layers(node, nodes, heads, shapes):
    """(input names shown as Previous Layer, summed leading dims of their shapes)."""
    names, pre_filter = [], 0
    if node["op"] == "null":
        return names, pre_filter
    for item in node["inputs"]:
        input_node = nodes[item[0]]
        if input_node["op"] != "null" or item[0] in heads:
            names.append(input_node["name"])
            key = input_node["name"] + ("_output" if input_node["op"] != "null" else "")
            if shapes is not None and key in shapes:
                pre_filter += int(shapes[key][1:][0])
    return names, pre_filter


def _print_layer(node, out_shape, nodes, heads, shapes, positions) -> int:
    pre_node, pre_filter = _previous_layers(node, nodes, heads, shapes)
    params = _layer_params(node, pre_filter, shapes)
    fields = [f"{node['name']}({node['op']})", "x".join(str(x) for x in out_shape), params,
              pre_node[0] if pre_node else ""]
    _print_row(fields, positions)
    for extra in pre_node[1:]:
        _print_row(["", "", "", extra], positions)
    return params


def print_summary(symbol, shape=None, line_length=120,
                  positions=[.44, .64, .74, 1.]):  # noqa: B006 - MXNet's signature
    """Print MXNet's layer table: output shapes, parameter counts, total params."""
    shapes = _internal_dict(symbol, "infer_shape", shape) if shape is not None else None
    conf = json.loads(symbol.tojson())
    nodes = conf["nodes"]
    heads = set(conf["heads"][0])  # MXNet's quirk: node ids {head, 0} count as heads
    if positions[-1] <= 1:
        positions = [int(line_length * p) for p in positions]
    print("_" * line_length)
    _print_row(["Layer (type)", "Output Shape", "Param #", "Previous Layer"], positions)
    print("=" * line_length)
    total = 0
    for i, node in enumerate(nodes):
        if node["op"] == "null" and i > 0:
            continue
        out_shape = []
        if shapes is not None and (node["op"] != "null" or i in heads):
            key = node["name"] + ("_output" if node["op"] != "null" else "")
            out_shape = list(shapes.get(key, [None]))[1:]
        total += _print_layer(node, out_shape, nodes, heads, shapes, positions)
        print("=" * line_length if i == len(nodes) - 1 else "_" * line_length)
    print(f"Total params: {total}")
    print("_" * line_length)


def __getattr__(attr):
    """plot_compiled and plot_history live in their own modules (lazy: matplotlib)."""
    if attr == "plot_compiled":
        from runtime.viz.compiled import plot_compiled
        return plot_compiled
    if attr == "plot_history":
        from runtime.viz.history import plot_history
        return plot_history
    raise AttributeError(f"module 'runtime.viz' has no attribute '{attr}'")
