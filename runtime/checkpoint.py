"""MXNet-compatible checkpoints (``mx.model.save_checkpoint`` and friends) and symgraph's
pickle-free optimizer-state files.

Checkpoint files are exactly MXNet's: ``prefix-symbol.json`` and ``prefix-%04d.params``
(NDArray-list format, keys ``arg:<name>`` then ``aux:<name>``), so they load in MXNet 1.x.

Optimizer states (``.states``)
------------------------------
MXNet pickles ``Updater.states``; symgraph never unpickles anything, so it uses its own
format built on the same NDArray-list container (readable by any §14.2 reader):

* ``__meta__`` (first record): a uint8 array holding UTF-8 JSON::

      {"format": "symgraph.optimizer_states", "version": 1,
       "states": [{"index": 0, "state": <spec>}, ...], "extra": {...}}

  where ``<spec>`` is ``null`` (state None), ``{"array": "<record name>"}`` (add
  ``"scalar": true`` for a 0-dim array, stored with shape (1,)), or
  ``{"tuple": [<spec>, ...]}`` / ``{"list": [<spec>, ...]}`` (nesting allowed, for example
  multi-precision ``((mean, var), weight32)``). ``index`` keeps its JSON type (int or str).
* one record per array, named ``state:<index>`` for a bare array and
  ``state:<index>:<slot>`` inside a tuple/list, nested slots joined with ``.``
  (``state:3:0.1``). Loading follows the names stored in the spec, never parses them.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np

from runtime import ndarray_io
from runtime.atomic import atomic_write_text
from symgraph.errors import CheckpointMismatchError, SerializationError
from symgraph.json_fields import short as _short

__all__ = ["save_checkpoint", "load_checkpoint", "load_params", "save_states", "load_states",
           "read_states", "check_pair", "check_states", "new_token", "STATES_FORMAT"]

STATES_FORMAT = "symgraph.optimizer_states"
STATES_VERSION = 1
META_NAME = "__meta__"


# ----------------------------------------------------------------------------- checkpoints
def _params_name(prefix, epoch) -> str:
    """MXNet's ``'%s-%04d.params' % (prefix, epoch)``."""
    return f"{prefix}-{epoch:04d}.params"


def _symbol_json(symbol, remove_amp_cast: bool) -> str:
    """``symbol.tojson`` with MXNet's ``remove_amp_cast`` flag when the Symbol accepts it."""
    try:
        return symbol.tojson(remove_amp_cast=remove_amp_cast)
    except TypeError:
        return symbol.tojson()


def save_checkpoint(prefix, epoch, symbol, arg_params, aux_params, remove_amp_cast=True,
                    token=None):
    """Write ``prefix-symbol.json`` (unless symbol is None) and ``prefix-%04d.params``.

    The params file carries ``token`` (a fresh one by default) where MXNet ignores it, the
    reserved header word; see :func:`check_pair`."""
    if symbol is not None:
        atomic_write_text(f"{prefix}-symbol.json", _symbol_json(symbol, remove_amp_cast))
    save_dict = {f"arg:{k}": v for k, v in arg_params.items()}
    save_dict.update({f"aux:{k}": v for k, v in aux_params.items()})
    param_name = _params_name(prefix, epoch)
    ndarray_io.save(param_name, save_dict, token=new_token() if token is None else token)
    logging.info('Saved checkpoint to "%s"', param_name)


def load_params(prefix, epoch):
    """Return ``(arg_params, aux_params)`` from ``prefix-%04d.params``.

    Keys are split at the first ':'; anything that isn't ``arg``/``aux`` is dropped silently
    (as MXNet's model.load_params does).
    """
    fname = _params_name(prefix, epoch)
    save_dict = ndarray_io.load(fname, "params file")
    arg_params, aux_params = {}, {}
    if not save_dict:
        logging.warning("Params file '%s' is empty", fname)
        return arg_params, aux_params
    if not isinstance(save_dict, dict):
        raise SerializationError(f"params file {fname!r} holds arrays without names; "
                                 "a checkpoint needs 'arg:'/'aux:' keys")
    for key, value in save_dict.items():
        kind, _, name = key.partition(":")
        if kind in ("arg", "aux") and value is None:
            raise SerializationError(f"params file {fname!r}: {key!r} is an empty (none) array")
        if kind == "arg":
            arg_params[name] = value
        elif kind == "aux":
            aux_params[name] = value
    return arg_params, aux_params


def load_checkpoint(prefix, epoch):
    """Return ``(symbol, arg_params, aux_params)`` as ``mx.model.load_checkpoint`` does."""
    from symgraph import symbol as sym  # lazy: runtime must import without the graph layer

    symbol = sym.load(f"{prefix}-symbol.json")
    arg_params, aux_params = load_params(prefix, epoch)
    return symbol, arg_params, aux_params


# ----------------------------------------------------------------------------- optimizer states
def _encode_state(value, base: str, path: tuple, arrays: dict):
    """Return the JSON spec of ``value``; its arrays go into ``arrays`` (name -> array)."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        kind = "tuple" if isinstance(value, tuple) else "list"
        return {kind: [_encode_state(v, base, path + (str(i),), arrays)
                       for i, v in enumerate(value)]}
    name = f"{base}:{'.'.join(path)}" if path else base
    if name in arrays:
        raise SerializationError(f"optimizer states: record name {name!r} is ambiguous")
    arr = value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)
    arrays[name] = arr
    return {"array": name, "scalar": True} if arr.ndim == 0 else {"array": name}


def save_states(fname, states: dict, extra: dict | None = None, token: int = 0) -> None:
    """Save ``{index: None | array | tuple/list of them}`` plus JSON-able ``extra``;
    ``token`` (from :func:`new_token`) pairs the file with one save's ``.params``."""
    arrays: dict = {}
    entries = []
    for index, value in states.items():
        if not isinstance(index, (int, str)) or isinstance(index, bool):
            raise SerializationError(f"optimizer state index must be int or str, got {index!r}")
        spec = _encode_state(value, f"state:{index}", (), arrays)
        entries.append({"index": index, "state": spec})
    meta = {"format": STATES_FORMAT, "version": STATES_VERSION, "states": entries,
            "extra": extra or {}}
    if token:
        meta["token"] = token
    try:
        text = json.dumps(meta, sort_keys=True)
    except TypeError as err:
        raise SerializationError(f"optimizer states 'extra' is not JSON-serializable: {err}") \
            from None
    payload = {META_NAME: np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
    payload.update(arrays)
    ndarray_io.save(fname, payload)


_MAX_DEPTH = 8


def _decode_state(spec, arrays: dict, fname: str, depth: int = 0):
    if spec is None:
        return None
    if depth > _MAX_DEPTH or not isinstance(spec, dict):
        raise SerializationError(f"optimizer states {fname!r}: bad state spec {_short(spec)}")
    if "array" in spec:
        name = spec["array"]
        if not isinstance(name, str) or name == META_NAME or name not in arrays:
            raise SerializationError(f"optimizer states {fname!r}: record {_short(name)} is "
                                     "missing")
        arr = arrays[name]
        if not isinstance(arr, np.ndarray):
            raise SerializationError(f"optimizer states {fname!r}: record {name!r} is empty")
        if spec.get("scalar", False) is not False:
            if spec["scalar"] is not True or arr.size != 1:
                raise SerializationError(f"optimizer states {fname!r}: record {name!r} is "
                                         f"marked scalar but has shape {arr.shape}")
            return arr.reshape(())
        return arr
    for kind, make in (("tuple", tuple), ("list", list)):
        if kind in spec and isinstance(spec[kind], list):
            return make(_decode_state(s, arrays, fname, depth + 1) for s in spec[kind])
    raise SerializationError(f"optimizer states {fname!r}: bad state spec {_short(spec)}")


def _read_meta(content, fname: str) -> dict:
    if not isinstance(content, dict) or not isinstance(content.get(META_NAME), np.ndarray):
        raise SerializationError(f"{fname!r} is not a symgraph optimizer-states file "
                                 f"(no {META_NAME!r} record)")
    try:
        meta = json.loads(content[META_NAME].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise SerializationError(f"optimizer states {fname!r}: bad {META_NAME} JSON: "
                                 f"{_short(str(err), 120)}") from None
    if not isinstance(meta, dict) or meta.get("format") != STATES_FORMAT \
            or meta.get("version") != STATES_VERSION:
        got = meta if not isinstance(meta, dict) else \
            f"{meta.get('format')!r} version {meta.get('version')!r}"
        raise SerializationError(f"optimizer states {fname!r}: unsupported format "
                                 f"{_short(got, 120)}")
    if not isinstance(meta.get("states"), list) or not isinstance(meta.get("extra", {}), dict):
        raise SerializationError(f"optimizer states {fname!r}: {META_NAME} needs a 'states' "
                                 "list and an 'extra' object")
    token = meta.get("token", 0)
    if not isinstance(token, int) or isinstance(token, bool) or not 0 <= token < 2**64:
        raise SerializationError(f"optimizer states {fname!r}: bad checkpoint token "
                                 f"{_short(token)}")
    return meta


def _entry_index(entry, fname: str):
    index = entry.get("index") if isinstance(entry, dict) else None
    if isinstance(index, bool) or not isinstance(index, (int, str)) or "state" not in entry:
        raise SerializationError(f"optimizer states {fname!r}: bad entry {_short(entry)}; "
                                 "expected {\"index\": int or str, \"state\": ...}")
    return index


def read_states(fname):
    """``(states, extra, token)`` of a file written by :func:`save_states` (token 0: saved
    outside a checkpoint)."""
    fname = str(fname)
    content = ndarray_io.load(fname, "optimizer states file")
    meta = _read_meta(content, fname)
    states = {}
    for entry in meta["states"]:
        index = _entry_index(entry, fname)
        if index in states:
            raise SerializationError(f"optimizer states {fname!r}: index {_short(index)} twice")
        states[index] = _decode_state(entry["state"], content, fname)
    return states, meta.get("extra", {}), meta.get("token", 0)


def load_states(fname):
    """Return ``(states, extra)`` written by :func:`save_states`."""
    states, extra, _ = read_states(fname)
    return states, extra


def states_token(fname) -> int:
    """The checkpoint token of a states file (0 if it was saved outside a checkpoint)."""
    return read_states(fname)[2]


# ----------------------------------------------------------------------------- pairing
def new_token() -> int:
    """A random non-zero 64-bit token binding one save's params and states files."""
    return int.from_bytes(os.urandom(8), "little") or 1


def check_pair(params_file, states_file, token: int | None = None) -> None:
    """Refuse a ``.params``/``.states`` pair written by two different saves (``token``: the
    states file's, when the caller has read it already).

    Module.save_checkpoint writes the states first, then the params, both carrying one
    token; a kill between the two, or a later save of the params alone, leaves tokens that
    differ. Files without a token (MXNet's, or saved one by one) cannot be checked."""
    params_token = ndarray_io.read_token(params_file, "params file")
    if token is None:
        token = states_token(states_file)
    if params_token and token and params_token != token:
        raise CheckpointMismatchError(
            f"optimizer states '{states_file}' come from another save than '{params_file}' "
            f"(checkpoint tokens {token:016x} and {params_token:016x}): the epoch was saved "
            "again, or a save was interrupted. Re-save the checkpoint, or load it without "
            "load_optimizer_states=True")


def check_states(states: dict, templates: dict, fname) -> None:
    """Loaded states must fit the optimizer: known indices, the slot count and shapes
    ``create_state`` gives (``templates``: index -> (param name, template state))."""
    for index, state in states.items():
        if index not in templates:
            raise SerializationError(f"optimizer states '{fname}': index {_short(index)} is not a "
                                     f"parameter index of this module (0..{len(templates) - 1})")
        name, template = templates[index]
        want, got = _flat(template), _flat(state)
        if len(want) != len(got):
            raise SerializationError(f"optimizer states '{fname}': state {index} ('{name}') "
                                     f"has {len(got)} arrays, the optimizer needs {len(want)}")
        for slot, (ref, arr) in enumerate(zip(want, got)):
            if arr.shape != ref.shape or arr.dtype.kind != "f":
                raise SerializationError(
                    f"optimizer states '{fname}': state {index} ('{name}') slot {slot} is "
                    f"{arr.dtype}{list(arr.shape)}, expected {ref.dtype}{list(ref.shape)}")


def _flat(state) -> list:
    """The arrays of a state (None, an array, nested tuples/lists of them) in order."""
    if state is None:
        return []
    if isinstance(state, (tuple, list)):
        return [a for s in state for a in _flat(s)]
    return [np.asarray(state)]
