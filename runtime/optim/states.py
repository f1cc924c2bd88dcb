"""The bytes of ``Updater.get_states()`` / ``set_states()``: no pickle, every field checked.

Layout (little-endian)::

    8 bytes   magic b"SGOPTST1"
    8 bytes   uint64 H = length of the JSON header
    H bytes   UTF-8 JSON {"version": 1, "states": [[index, tree], ...],
                          "arrays": [{"dtype": "<f4", "shape": [..], "offset": o}, ...],
                          "optimizer": null | {"name": ..., "attrs": {...}}}
    rest      the arrays' raw C-order bytes, ``offset`` counted from the end of the header

An index is ``{"i": int}`` or ``{"s": str}``; a state ``tree`` is ``null`` (no state),
``{"a": k}`` (array number k) or ``{"list": [trees]}`` / ``{"tuple": [trees]}``. The optimizer
block (``dump_optimizer=True``) keeps the class name and plain attributes (hyper-parameters,
counts, multipliers). Blobs come from files users pass around, so decoding checks types,
ranges and sizes and raises SerializationError for anything else.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from symgraph.errors import SerializationError
from symgraph.json_fields import is_int as _is_int
from symgraph.json_fields import short as _short

MAGIC = b"SGOPTST1"
_MAX_DEPTH = 8
_MAX_BYTES = 2**63 - 1
_DTYPE_KINDS = "fiub"
_DTYPE_RE = re.compile(r"^[<>|=]?(f[248]|[iu][1248]|b1)$")


def _fail(message: str) -> SerializationError:
    return SerializationError(f"optimizer states: {message}")


# ---------------------------------------------------------------------------- encoding
def _encode_tree(state, arrays):
    if state is None:
        return None
    if isinstance(state, (list, tuple)):
        key = "tuple" if isinstance(state, tuple) else "list"
        return {key: [_encode_tree(s, arrays) for s in state]}
    arrays.append(np.ascontiguousarray(state))
    return {"a": len(arrays) - 1}


def json_key(idx):
    """Indices are ints (or names); JSON keeps the type when stored as a tagged pair."""
    return {"i": int(idx)} if isinstance(idx, (int, np.integer)) else {"s": str(idx)}


def encode_states(states: dict, optimizer_json=None) -> bytes:
    """Encode {index: None | array | list/tuple of arrays} without pickle."""
    arrays: list = []
    entries = [[json_key(idx), _encode_tree(st, arrays)] for idx, st in states.items()]
    metas, offset = [], 0
    for arr in arrays:
        dtype = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        metas.append({"dtype": dtype.str, "shape": list(arr.shape), "offset": offset})
        offset += arr.nbytes
    header = {"version": 1, "states": entries, "arrays": metas, "optimizer": optimizer_json}
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    body = b"".join(a.astype(np.dtype(m["dtype"]), copy=False).tobytes()
                    for a, m in zip(arrays, metas))
    return MAGIC + len(head).to_bytes(8, "little") + head + body


# ---------------------------------------------------------------------------- decoding
def decode_states(blob):
    """Inverse of :func:`encode_states`: returns (states dict, optimizer json or None)."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise _fail(f"expected the bytes Updater.get_states() returns, got "
                    f"{type(blob).__name__}")
    blob = bytes(blob)
    if len(blob) < 16 or blob[:8] != MAGIC:
        raise _fail("not a symgraph optimizer-states blob (bad magic)")
    size = int.from_bytes(blob[8:16], "little")
    if size > len(blob) - 16:
        raise _fail(f"truncated: the header needs {size} bytes, {len(blob) - 16} left")
    header = _parse_header(blob[16:16 + size])
    body = memoryview(blob)[16 + size:]
    arrays = [_decode_array(k, meta, body) for k, meta in enumerate(header["arrays"])]
    states = {}
    for entry in header["states"]:
        if not isinstance(entry, list) or len(entry) != 2:
            raise _fail(f"bad state entry {_short(entry)}; expected [index, tree]")
        index = _from_json_key(entry[0])
        if index in states:
            raise _fail(f"index {_short(index)} appears twice")
        states[index] = _decode_tree(entry[1], arrays, 0)
    return states, header["optimizer"]


def _parse_header(raw: bytes) -> dict:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise _fail(f"bad JSON header: {_short(str(err), 120)}") from None
    if not isinstance(header, dict) or header.get("version") != 1:
        version = header.get("version") if isinstance(header, dict) else header
        raise _fail(f"unsupported header (version {_short(version)})")
    if not isinstance(header.get("states"), list) or not isinstance(header.get("arrays"), list):
        raise _fail("the header needs 'states' and 'arrays' lists")
    opt = header.get("optimizer")
    if opt is not None and not (isinstance(opt, dict) and isinstance(opt.get("name"), str)
                                and isinstance(opt.get("attrs"), dict)):
        raise _fail(f"bad optimizer block {_short(opt)}")
    header["optimizer"] = opt
    return header


def _decode_array(k: int, meta, body: memoryview) -> np.ndarray:
    if not isinstance(meta, dict):
        raise _fail(f"array {k}: bad description {_short(meta)}")
    text = meta.get("dtype")
    # Only plain numeric codes reach np.dtype, whose string parser accepts far more.
    dtype = np.dtype(text) if isinstance(text, str) and _DTYPE_RE.match(text) else None
    if dtype is None or dtype.kind not in _DTYPE_KINDS:
        raise _fail(f"array {k}: unsupported dtype {_short(meta.get('dtype'))}")
    shape, offset = meta.get("shape"), meta.get("offset")
    if not isinstance(shape, list) or len(shape) > 32 or \
            not all(_is_int(d) and d >= 0 for d in shape):
        raise _fail(f"array {k}: bad shape {_short(shape)}")
    count, span = 1, dtype.itemsize
    for d in shape:
        count, span = count * d, span * max(d, 1)
    if span > _MAX_BYTES:
        raise _fail(f"array {k}: shape {tuple(shape)} is larger than any array can be")
    if not _is_int(offset) or offset < 0 or offset + count * dtype.itemsize > len(body):
        raise _fail(f"array {k}: {count * dtype.itemsize} bytes at offset {_short(offset)} "
                    f"are outside the {len(body)} data bytes")
    flat = np.frombuffer(body, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape).astype(dtype.newbyteorder("="), copy=True)


def _decode_tree(tree, arrays, depth: int):
    if tree is None:
        return None
    if depth > _MAX_DEPTH or not isinstance(tree, dict) or len(tree) != 1:
        raise _fail(f"bad state tree {_short(tree)}")
    (kind, value), = tree.items()
    if kind == "a":
        if not _is_int(value) or not 0 <= value < len(arrays):
            raise _fail(f"state refers to array {_short(value)}; there are {len(arrays)}")
        return arrays[value]
    if kind in ("tuple", "list") and isinstance(value, list):
        items = [_decode_tree(t, arrays, depth + 1) for t in value]
        return tuple(items) if kind == "tuple" else items
    raise _fail(f"bad state tree {_short(tree)}")


def _from_json_key(key):
    if isinstance(key, dict) and len(key) == 1:
        if _is_int(key.get("i")):
            return key["i"]
        if isinstance(key.get("s"), str):
            return key["s"]
    raise _fail(f"bad state index {_short(key)}; expected {{\"i\": int}} or {{\"s\": str}}")


# ---------------------------------------------------------------------------- optimizer
_UNSERIALISED = object()
_ANY = object()  # a dict attribute's values (idx2name, lr_mult): any plain value


def _plain(value):
    """JSON form of a plain attribute value, or _UNSERIALISED (schedulers, symbols...)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, dict):
        pairs = [[json_key(k) if not isinstance(k, str) else {"s": k}, _plain(v)]
                 for k, v in value.items()]
        if any(v is _UNSERIALISED for _, v in pairs):
            return _UNSERIALISED
        return {"__pairs__": pairs}
    return _UNSERIALISED


def optimizer_to_json(opt) -> dict:
    attrs = {}
    for name, value in vars(opt).items():
        plain = _plain(value)
        if plain is not _UNSERIALISED and name != "_index_update_count":
            attrs[name] = plain
    return {"name": type(opt).__name__.lower(), "attrs": attrs}


def _unplain(name: str, value, template, depth: int = 0):
    """The attribute ``value`` checked against the fresh optimizer's ``template`` value:
    a saved blob may only set attributes of the kind the optimizer itself keeps."""
    if depth > _MAX_DEPTH:
        raise _fail(f"optimizer attribute {name!r} is nested too deeply")
    if isinstance(value, dict):
        pairs = value.get("__pairs__") if len(value) == 1 else None
        if not isinstance(pairs, list) or not (template is None or template is _ANY
                                               or isinstance(template, dict)):
            raise _fail(f"optimizer attribute {name!r} = {_short(value)} is not valid")
        out = {}
        for pair in pairs:
            if not isinstance(pair, list) or len(pair) != 2:
                raise _fail(f"optimizer attribute {name!r}: bad entry {_short(pair)}")
            out[_from_json_key(pair[0])] = _unplain(name, pair[1], _ANY, depth + 1)
        return out
    numeric = (int, float)
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(f"optimizer attribute {name!r} = {value} is not a finite number")
    if value is None and isinstance(template, (dict, list)):  # the optimizer indexes these
        raise _fail(f"optimizer attribute {name!r} = null, expected a "
                    f"{type(template).__name__}")
    if value is None or template is _ANY and not isinstance(value, list):
        return value
    if template is None:  # None-defaulted hyper-parameters (clip_gradient, ...) are numbers
        if isinstance(value, bool) or not isinstance(value, numeric):
            raise _fail(f"optimizer attribute {name!r} = {_short(value)} is not a number")
        return value
    if isinstance(template, bool) or isinstance(value, bool):
        ok = isinstance(template, bool) and isinstance(value, bool)
    elif isinstance(template, numeric):
        ok = isinstance(value, numeric)
    else:
        ok = isinstance(value, type(template))
    if not ok:
        raise _fail(f"optimizer attribute {name!r} = {_short(value)} should be like "
                    f"{_short(template)}")
    return value


def optimizer_from_json(data, current, registry: dict):
    """Rebuild the saved optimizer; keep the current scheduler/symbol info/param_dict."""
    klass = registry.get(data["name"])
    if klass is None:
        raise _fail(f"unknown optimizer {_short(data['name'])}; known: "
                    f"{', '.join(sorted(registry))}")
    template = vars(klass())
    attrs = {}
    for name, value in data["attrs"].items():
        if name not in template:
            raise _fail(f"{data['name']} has no attribute {_short(name)}")
        attrs[name] = _unplain(name, value, template[name])
    opt = klass.__new__(klass)
    opt.__dict__.update(template)
    opt.__dict__.update(attrs)
    for name in ("lr_scheduler", "sym_info", "param_dict"):
        setattr(opt, name, getattr(current, name, None))
    opt._index_update_count = opt._all_index_update_counts.setdefault(0, {})
    return opt
