"""In-process memo of compiled graphs: rebinding the same graph with the same shapes (a
Module re-bind, predict after fit, a reshape back) costs a dictionary lookup and the
memory-limit check (the limit may have been lowered since the graph was compiled; a
fresh compile checks it itself). New processes start from the disk cache of whole
compile results (``codegen/result_cache.py``), whose object code ``codegen/cache.py``
keeps."""

from __future__ import annotations

import threading

from codegen import limits, threadpool
from codegen.result_cache import compile_graph_cached, graph_key

_MEMO: dict = {}
_LOCK = threading.Lock()
MAX_ENTRIES = 64


def _key(graph, shapes, dtypes, reqs):
    return (graph, tuple(sorted((k, tuple(v)) for k, v in shapes.items())),
            tuple(sorted(dtypes.items())), tuple(sorted(reqs.items())),
            threadpool.compile_threads())


def compile_cached(symbol, shapes: dict, dtypes: dict, reqs: dict):
    graph = graph_key(symbol)
    key = _key(graph.text, shapes, dtypes, reqs)
    name = symbol.name or "group"
    with _LOCK:
        hit = _MEMO.get(key)
    if hit is not None:
        limits.check_program(hit.program.program, name)
        return hit
    compiled = compile_graph_cached(symbol, dict(shapes), dict(dtypes), dict(reqs),
                                    name_hint=name, graph=graph)
    with _LOCK:
        if len(_MEMO) >= MAX_ENTRIES:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[key] = compiled
    return compiled
