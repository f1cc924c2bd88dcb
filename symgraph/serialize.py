"""Symbol JSON in MXNet's schema (nodes, arg_nodes, node_row_ptr, heads, attrs).

Writing follows MXNet 1.9 (``mxnet_version`` 10901, ``attrs`` left out when empty, input
entries ``[node, index, version]`` with version 1 where an op mutates the input). Reading
also accepts the older ``attr``/``param`` forms, two-item input entries, plain ``lr_mult``
keys and files that lack auxiliary variables, as MXNet's upgraders do.
"""

from __future__ import annotations

import json
import logging

from .errors import SerializationError, SymgraphError
from .fileio import atomic_write_text
from .graph import Entry, make_op_node, make_variable, topo_order
from .ops.registry import get_op

MXNET_VERSION = 10901
_LEGACY_HIDDEN = ("ctx_group", "lr_mult", "wd_mult", "force_mirroring", "mirror_stage")
log = logging.getLogger(__name__)


def to_json(heads) -> str:
    nodes = topo_order(heads)
    index = {id(n): i for i, n in enumerate(nodes)}
    out_nodes, row_ptr = [], [0]
    for node in nodes:
        mutated = () if node.is_variable else node.opdef.mutate_inputs(node.params)
        item = {"op": node.op, "name": node.name}
        if node.attrs:
            item["attrs"] = dict(sorted(node.attrs.items()))
        item["inputs"] = [[index[id(e.node)], e.index, 1 if pos in mutated else 0]
                          for pos, e in enumerate(node.inputs)]
        out_nodes.append(item)
        row_ptr.append(row_ptr[-1] + node.num_outputs())
    doc = {
        "nodes": out_nodes,
        "arg_nodes": [i for i, n in enumerate(nodes) if n.is_variable],
        "node_row_ptr": row_ptr,
        "heads": [[index[id(h.node)], h.index, 0] for h in heads],
        "attrs": {"mxnet_version": ["int", MXNET_VERSION]},
    }
    return _dmlc_value(doc, 0, multi=True)


def _dmlc_value(value, depth: int, multi: bool = False) -> str:
    """dmlc::JSONWriter's layout, so files diff cleanly against MXNet's own.

    Structs (the graph, each node) are multi-line; a str->str map is multi-line when it
    has more than one key; an array is multi-line when it has more than 10 items or
    holds structs; input entries and ``["int", 10901]`` are one line. Items are separated
    by ``", "`` before the newline and indented two spaces per open scope.
    """
    if isinstance(value, dict):
        parts = [f"{json.dumps(k)}: {_dmlc_value(v, depth + 1, _multi(k, v))}"
                 for k, v in value.items()]
        return _dmlc_join("{", parts, "}", depth, multi or len(parts) > 1)
    if isinstance(value, list):
        parts = [_dmlc_value(v, depth + 1, isinstance(v, dict)) for v in value]
        many = len(parts) > 10 or any(isinstance(v, dict) for v in value)
        return _dmlc_join("[", parts, "]", depth, multi or many)
    return json.dumps(value, ensure_ascii=False)


def _multi(key, value) -> bool:
    return key == "nodes" or (isinstance(value, dict) and key != "attrs")


def _dmlc_join(open_, parts, close, depth, multi) -> str:
    if not parts:
        return open_ + close
    if not multi:
        return open_ + ", ".join(parts) + close
    pad, end = "\n" + "  " * (depth + 1), "\n" + "  " * depth
    return open_ + ", ".join(pad + p for p in parts) + end + close


def save_text(fname: str, text: str) -> None:
    atomic_write_text(fname, text)


def load_file(fname: str):
    try:
        with open(fname, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise SerializationError(f"cannot read symbol file '{fname}': {exc.strerror}") from None
    try:
        return from_json(text)
    except SerializationError as exc:
        raise SerializationError(f"{fname}: {exc}") from None


def from_json(text: str):
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SerializationError(f"malformed symbol JSON: {exc.msg} at line {exc.lineno} "
                                 f"column {exc.colno}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        raise SerializationError("symbol JSON must be an object with a 'nodes' list")
    version = _version(doc)
    if version < 10000:
        log.info("Loading symbol saved by previous version v%d.%d.%d. Attempting to upgrade...",
                 version // 10000, version // 100 % 100, version % 100)
    nodes = []
    for i, item in enumerate(doc["nodes"]):
        nodes.append(_load_node(i, item, nodes, version))
    heads = doc.get("heads") or [[len(nodes) - 1, 0, 0]]
    return tuple(_entry(nodes, ref, "heads") for ref in heads)


def _version(doc) -> int:
    attrs = doc.get("attrs") or {}
    value = attrs.get("mxnet_version")
    if isinstance(value, list) and len(value) == 2:
        return int(value[1])
    return 800


def _entry(nodes, ref, where) -> Entry:
    if not isinstance(ref, list) or len(ref) not in (2, 3):
        raise SerializationError(f"{where}: bad input entry {ref!r}; expected [node, index, "
                                 "version]")
    node_id, out_index = int(ref[0]), int(ref[1])
    if not 0 <= node_id < len(nodes):
        raise SerializationError(f"{where}: input refers to node {node_id}, which is not an "
                                 "earlier node (a cycle or a corrupt file)")
    node = nodes[node_id]
    if out_index >= node.num_outputs():
        raise SerializationError(f"{where}: node '{node.name}' has no output {out_index}")
    return Entry(node, out_index)


def _node_attrs(item: dict) -> dict:
    attrs = {}
    for key in ("param", "attr", "attrs"):
        value = item.get(key) or {}
        if not isinstance(value, dict):
            raise SerializationError(f"node '{item.get('name')}': '{key}' must be an object")
        attrs.update({k: str(v) for k, v in value.items()})
    for key in _LEGACY_HIDDEN:
        if key in attrs:
            attrs[f"__{key}__"] = attrs.pop(key)
    return attrs


def _load_node(i, item, nodes, version):
    if not isinstance(item, dict) or "op" not in item or "name" not in item:
        raise SerializationError(f"node {i}: needs 'op' and 'name' fields")
    attrs = _node_attrs(item)
    name = str(item["name"])
    if item["op"] == "null":
        return make_variable(name, attrs)
    try:
        opdef = get_op(item["op"])
    except SymgraphError as exc:
        raise SerializationError(f"node {i} '{name}': {exc}") from None
    if version < 10000 and opdef.name in ("argmax", "argmin") and attrs.get("axis") == "-1":
        attrs.pop("axis")
    _move_prefixed_hidden(attrs, item, nodes)
    inputs = [_entry(nodes, ref, f"node {i} '{name}'") for ref in item.get("inputs", [])]
    inputs = _add_missing_inputs(opdef, name, attrs, inputs)
    try:
        return make_op_node(opdef.name, name, inputs, attrs)
    except SymgraphError as exc:
        raise SerializationError(f"node {i} '{name}': {exc}") from None


def _move_prefixed_hidden(attrs, item, nodes):
    """Old files put ``weight_lr_mult`` on the op; it belongs on that input variable.

    The variable is rebuilt with the key (nodes are immutable) and put back in the node
    list, so this op and every later reference see the upgraded variable."""
    for key in list(attrs):
        for hidden in ("lr_mult", "wd_mult"):
            if not key.endswith("_" + hidden) or key.startswith("__"):
                continue
            value = attrs.pop(key)
            target = f"{item['name']}_{key[: -len(hidden) - 1]}"
            for pos, node in enumerate(nodes):
                if node.is_variable and node.name == target:
                    upgraded = dict(node.attrs)
                    upgraded[f"__{hidden}__"] = value
                    nodes[pos] = make_variable(node.name, upgraded)


def _add_missing_inputs(opdef, name, attrs, inputs):
    """Files from MXNet <= 0.8 omit auxiliary variables; create them as MXNet does."""
    try:
        params = opdef.parse(attrs, name)
    except SymgraphError as exc:
        raise SerializationError(f"node '{name}': {exc}") from None
    expected = opdef.input_names(params)
    for arg in expected[len(inputs):]:
        inputs.append(Entry(make_variable(f"{name}_{arg}", dict(attrs)), 0))
    return inputs
