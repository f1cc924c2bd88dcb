"""In-process memo of compiled graphs: rebinding the same graph with the same shapes (a
Module re-bind, predict after fit, a reshape back) costs a dictionary lookup and the
memory-limit check (the limit may have been lowered since the graph was compiled; a
fresh compile checks it itself). The disk cache in ``codegen/cache.py`` covers new
processes."""

from __future__ import annotations

import threading

from codegen import limits, threadpool
from codegen.compiler import compile_graph

_MEMO: dict = {}
_LOCK = threading.Lock()
MAX_ENTRIES = 64


def _key(symbol, shapes, dtypes, reqs):
    return (symbol.tojson(), tuple(sorted((k, tuple(v)) for k, v in shapes.items())),
            tuple(sorted(dtypes.items())), tuple(sorted(reqs.items())),
            threadpool.compile_threads())


def compile_cached(symbol, shapes: dict, dtypes: dict, reqs: dict):
    key = _key(symbol, shapes, dtypes, reqs)
    name = symbol.name or "group"
    with _LOCK:
        hit = _MEMO.get(key)
    if hit is not None:
        limits.check_program(hit.program.program, name)
        return hit
    compiled = compile_graph(symbol, dict(shapes), dict(dtypes), dict(reqs), name_hint=name)
    with _LOCK:
        if len(_MEMO) >= MAX_ENTRIES:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[key] = compiled
    return compiled
