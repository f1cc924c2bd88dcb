"""Symbol JSON in MXNet's schema (nodes, arg_nodes, node_row_ptr, heads, attrs).

Writing follows MXNet 1.9 (``mxnet_version`` 10901, ``attrs`` left out when empty, input
entries ``[node, index, version]`` with version 1 where an op mutates the input). Reading
also accepts the older ``attr``/``param`` forms, two-item input entries, plain ``lr_mult``
keys and files that lack auxiliary variables, as MXNet's upgraders do.
"""

from __future__ import annotations

import json
import logging

from . import json_fields as F
from .errors import SerializationError, SymgraphError
from .fileio import atomic_write_text, read_file_bytes
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
    """Read a symbol file; every problem is a SerializationError naming the file."""
    fname = str(fname)
    raw = read_file_bytes(fname, "symbol file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SerializationError(f"symbol file '{fname}' is not UTF-8 text: byte "
                                 f"0x{raw[exc.start]:02x} at offset {exc.start}") from None
    try:
        return from_json(text)
    except SerializationError as exc:
        raise SerializationError(f"symbol file '{fname}': {exc}") from None


def from_json(text: str):
    doc = _parse_json(text)
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        raise SerializationError("symbol JSON must be an object with a 'nodes' list")
    version = _version(doc)
    if version < 10000:
        log.info("Loading symbol saved by previous version v%d.%d.%d. Attempting to upgrade...",
                 version // 10000, version // 100 % 100, version % 100)
    nodes = []
    for i, item in enumerate(doc["nodes"]):
        nodes.append(_load_node(i, item, nodes, version))
    _check_index_lists(doc, len(nodes))
    heads = doc.get("heads")
    heads = [] if heads is None else F.need_list(heads, "'heads'")
    if not heads:
        if not nodes:
            raise SerializationError("symbol JSON has no nodes")
        heads = [[len(nodes) - 1, 0, 0]]
    return tuple(_entry(nodes, ref, f"heads[{k}]") for k, ref in enumerate(heads))


def _parse_json(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SerializationError(f"malformed symbol JSON: {exc.msg} at line {exc.lineno} "
                                 f"column {exc.colno}") from None
    except RecursionError:
        raise SerializationError("malformed symbol JSON: nested too deeply") from None
    except ValueError as exc:  # an integer literal longer than Python converts
        raise SerializationError(f"malformed symbol JSON: {F.short(str(exc), 120)}") from None


def _version(doc) -> int:
    attrs = F.need_dict(doc.get("attrs") or {}, "graph 'attrs'")
    value = attrs.get("mxnet_version")
    if value is None:
        return 800
    if not (isinstance(value, list) and len(value) == 2 and F.is_int(value[1])
            and 0 <= value[1] < 10**7):
        raise SerializationError(f"graph attribute mxnet_version={F.short(value)} is not "
                                 "[\"int\", VERSION]")
    return value[1]


def _check_index_lists(doc, count: int) -> None:
    """``arg_nodes`` and ``node_row_ptr`` are recomputed on load, but wrong ones still mean
    a corrupt file: their indices must be in range."""
    if "arg_nodes" in doc:
        for k, i in enumerate(F.need_list(doc["arg_nodes"], "'arg_nodes'")):
            F.index_in(i, count, "'arg_nodes'", f"entry {k}")
    if "node_row_ptr" in doc:
        for k, i in enumerate(F.need_list(doc["node_row_ptr"], "'node_row_ptr'")):
            if not F.is_int(i) or i < 0:
                raise SerializationError(f"'node_row_ptr' entry {k} is {F.short(i)}, not an "
                                         "integer >= 0")


def _entry(nodes, ref, where) -> Entry:
    if not isinstance(ref, list) or len(ref) not in (2, 3):
        raise SerializationError(f"{where}: bad input entry {F.short(ref)}; expected [node, "
                                 "index, version]")
    if not F.is_int(ref[0]) or not 0 <= ref[0] < len(nodes):
        raise SerializationError(f"{where}: input refers to node {F.short(ref[0])}, which is "
                                 "not an earlier node (a cycle or a corrupt file)")
    node = nodes[ref[0]]
    F.index_in(ref[1], node.num_outputs(), f"{where}: input from node '{node.name}'",
               "output index")
    if len(ref) == 3 and (not F.is_int(ref[2]) or ref[2] < 0):
        raise SerializationError(f"{where}: input version {F.short(ref[2])} is not an "
                                 "integer >= 0")
    return Entry(node, ref[1])


def _node_attrs(item: dict, where: str) -> dict:
    attrs = {}
    for key in ("param", "attr", "attrs"):
        value = F.need_dict(item.get(key) or {}, f"{where}: '{key}'")
        for k, v in value.items():
            attrs[F.need_text(k, f"{where}: attribute name")] = \
                F.attr_text(v, f"{where}: attribute {F.short(k)}")
    for key in _LEGACY_HIDDEN:
        if key in attrs:
            attrs[f"__{key}__"] = attrs.pop(key)
    return attrs


def _check_hidden(attrs: dict, where: str) -> None:
    """Hidden keys the runtime reads as numbers are checked once, here."""
    from .symbol import CODE_DTYPES

    if "__shape__" in attrs:
        F.shape_attr(attrs["__shape__"], where)
    if "__dtype__" in attrs:
        F.dtype_attr(attrs["__dtype__"], where, CODE_DTYPES)
    for key in ("__lr_mult__", "__wd_mult__"):
        if key in attrs:
            F.multiplier_attr(attrs[key], where, key)


def _load_node(i, item, nodes, version):
    if not isinstance(item, dict) or "op" not in item or "name" not in item:
        raise SerializationError(f"node {i}: needs 'op' and 'name' fields")
    op = F.need_text(item["op"], f"node {i}: 'op'")
    name = F.need_text(item["name"], f"node {i}: 'name'")
    where = f"node {i} {F.short(name, 80)}"
    if len(op) > F.MAX_OP:
        raise SerializationError(f"{where}: unknown op {F.short(op)}")
    attrs = _node_attrs(item, where)
    _check_hidden(attrs, where)
    if "control_deps" in item:
        for k, dep in enumerate(F.need_list(item["control_deps"], f"{where}: 'control_deps'")):
            F.index_in(dep, i, where, f"control_deps[{k}]")
    if op == "null":
        if item.get("inputs"):
            raise SerializationError(f"{where}: a variable has no inputs, got "
                                     f"{F.short(item['inputs'])}")
        return make_variable(name, attrs)
    try:
        opdef = get_op(op)
    except SymgraphError as exc:
        raise SerializationError(f"{where}: {exc}") from None
    if version < 10000 and opdef.name in ("argmax", "argmin") and attrs.get("axis") == "-1":
        attrs.pop("axis")
    _move_prefixed_hidden(attrs, item, nodes)
    refs = F.need_list(item.get("inputs", []), f"{where}: 'inputs'")
    inputs = [_entry(nodes, ref, where) for ref in refs]
    inputs = _add_missing_inputs(opdef, name, attrs, inputs)
    try:
        return make_op_node(opdef.name, name, inputs, attrs)
    except SymgraphError as exc:
        raise SerializationError(f"{where}: {exc}") from None


def _move_prefixed_hidden(attrs, item, nodes):
    """Old files put ``weight_lr_mult`` on the op; it belongs on that input variable.

    The variable is rebuilt with the key (nodes are immutable) and put back in the node
    list, so this op and every later reference see the upgraded variable."""
    for key in list(attrs):
        for hidden in ("lr_mult", "wd_mult"):
            if not key.endswith("_" + hidden) or key.startswith("__"):
                continue
            value = attrs.pop(key)
            F.multiplier_attr(value, f"node '{item['name']}'", key)
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
