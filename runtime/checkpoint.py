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

import numpy as np

from symgraph.errors import SerializationError

from . import ndarray_io
from .atomic import atomic_write_text

__all__ = ["save_checkpoint", "load_checkpoint", "load_params", "save_states", "load_states",
           "STATES_FORMAT"]

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


def save_checkpoint(prefix, epoch, symbol, arg_params, aux_params, remove_amp_cast=True):
    """Write ``prefix-symbol.json`` (unless symbol is None) and ``prefix-%04d.params``."""
    if symbol is not None:
        atomic_write_text(f"{prefix}-symbol.json", _symbol_json(symbol, remove_amp_cast))
    save_dict = {f"arg:{k}": v for k, v in arg_params.items()}
    save_dict.update({f"aux:{k}": v for k, v in aux_params.items()})
    param_name = _params_name(prefix, epoch)
    ndarray_io.save(param_name, save_dict)
    logging.info('Saved checkpoint to "%s"', param_name)


def load_params(prefix, epoch):
    """Return ``(arg_params, aux_params)`` from ``prefix-%04d.params``.

    Keys are split at the first ':'; anything that isn't ``arg``/``aux`` is dropped silently
    (as MXNet's model.load_params does).
    """
    fname = _params_name(prefix, epoch)
    save_dict = ndarray_io.load(fname)
    arg_params, aux_params = {}, {}
    if not save_dict:
        logging.warning("Params file '%s' is empty", fname)
        return arg_params, aux_params
    if not isinstance(save_dict, dict):
        raise SerializationError(f"params file {fname!r} holds arrays without names; "
                                 "a checkpoint needs 'arg:'/'aux:' keys")
    for key, value in save_dict.items():
        kind, _, name = key.partition(":")
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


def save_states(fname, states: dict, extra: dict | None = None) -> None:
    """Save ``{index: None | array | tuple/list of them}`` plus JSON-able ``extra``."""
    arrays: dict = {}
    entries = []
    for index, value in states.items():
        if not isinstance(index, (int, str)) or isinstance(index, bool):
            raise SerializationError(f"optimizer state index must be int or str, got {index!r}")
        spec = _encode_state(value, f"state:{index}", (), arrays)
        entries.append({"index": index, "state": spec})
    meta = {"format": STATES_FORMAT, "version": STATES_VERSION, "states": entries,
            "extra": extra or {}}
    try:
        text = json.dumps(meta, sort_keys=True)
    except TypeError as err:
        raise SerializationError(f"optimizer states 'extra' is not JSON-serializable: {err}") \
            from None
    payload = {META_NAME: np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
    payload.update(arrays)
    ndarray_io.save(fname, payload)


def _decode_state(spec, arrays: dict, fname: str):
    if spec is None:
        return None
    if "array" in spec:
        name = spec["array"]
        if name not in arrays:
            raise SerializationError(f"optimizer states {fname!r}: record {name!r} is missing")
        arr = arrays[name]
        return arr.reshape(()) if spec.get("scalar") else arr
    for kind, make in (("tuple", tuple), ("list", list)):
        if kind in spec:
            return make(_decode_state(s, arrays, fname) for s in spec[kind])
    raise SerializationError(f"optimizer states {fname!r}: bad state spec {spec!r}")


def _read_meta(content, fname: str) -> dict:
    if not isinstance(content, dict) or META_NAME not in content:
        raise SerializationError(f"{fname!r} is not a symgraph optimizer-states file "
                                 f"(no {META_NAME!r} record)")
    try:
        meta = json.loads(content[META_NAME].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise SerializationError(f"optimizer states {fname!r}: bad {META_NAME} JSON: {err}") \
            from None
    if meta.get("format") != STATES_FORMAT or meta.get("version") != STATES_VERSION:
        raise SerializationError(f"optimizer states {fname!r}: unsupported format "
                                 f"{meta.get('format')!r} version {meta.get('version')!r}")
    return meta


def load_states(fname):
    """Return ``(states, extra)`` written by :func:`save_states`."""
    content = ndarray_io.load(fname)
    meta = _read_meta(content, str(fname))
    states = {e["index"]: _decode_state(e["state"], content, str(fname)) for e in meta["states"]}
    return states, meta["extra"]
