"""Whole compile results on disk: a warm start in a new process hashes what the result
depends on, reads one entry and links the cached object code, instead of running shape
inference, autodiff, the passes, lowering, fusion and the memory plan again (those cost
more than a second on ResNet-50's training graph; LLVM was already skipped by the object
cache).

The key is everything ``compile_graph`` reads before it produces anything: the graph
(every node's op, name and attributes, every edge: what its JSON says), input shapes
and dtypes, grad_req per argument, compile options, and what turns them into code (the
sources of ``symgraph`` and ``codegen``, LLVM/llvmlite versions, host CPU and features,
as ``jit.key_parts``). The
entry (``<key>.result`` in the cache folder, framed and HMAC'd like object entries by
``codegen/cache.py``) is JSON (``codegen/result_codec.py``); a missing, damaged or
inconsistent entry or a missing object means a full compile, which rewrites both. The
memory limit is checked on the loaded sizes before anything is allocated. Graphs with
ops registered outside ``symgraph`` (their code is not in the key) and ``SYMGRAPH_DUMP``
runs (which want the dumps a compile writes) always compile.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import threading
from dataclasses import dataclass

import llvmlite
import llvmlite.binding as llvm
import numpy as np

import codegen
import symgraph
from codegen import cache, jit, limits, threadpool
from codegen.compiler import _describe_entry, compile_graph
from codegen.program import CompiledProgram
from codegen.result_codec import BadResult, decode, encode
from symgraph.graph import topo_order

log = logging.getLogger("codegen.result_cache")
RESULT_VERSION = "symgraph-result-1"
STATS = {"hit": 0, "miss": 0, "refused": 0, "uncacheable": 0}


def compile_graph_cached(symbol, shapes: dict, dtypes: dict, grad_req: dict,
                         name_hint: str = "graph", graph: GraphKey | None = None,
                         **options):
    """``compile_graph(symbol, shapes, dtypes, grad_req, name_hint, **options)``, served
    from the disk cache when an entry for exactly these inputs exists (``graph``: the
    symbol's ``graph_key``, when the caller has it already)."""
    def rebuild():
        return compile_graph(symbol, dict(shapes), dict(dtypes), dict(grad_req),
                             name_hint=name_hint, **options)

    graph = graph_key(symbol) if graph is None else graph
    if not graph.cacheable or os.environ.get("SYMGRAPH_DUMP"):
        STATS["uncacheable"] += 1
        return rebuild()
    key = result_key(graph.text, shapes, dtypes, grad_req, options)
    hit = _load(key, symbol, grad_req, name_hint, rebuild)
    if hit is not None:
        STATS["hit"] += 1
        return hit
    STATS["miss"] += 1
    compiled = rebuild()
    _store(key, compiled)
    return compiled


@dataclass(frozen=True)
class GraphKey:
    text: str  # every node's op, name, attrs and inputs in topological order, and the heads
    cacheable: bool  # every op is defined in symgraph (so its code is in the key)


def graph_key(symbol) -> GraphKey:
    """What the symbol's JSON says, without its layout (a tenth of ``tojson``'s cost on
    ResNet-50): the key of both the in-process memo and the disk cache."""
    nodes = topo_order(symbol.outputs)
    index = {id(n): i for i, n in enumerate(nodes)}
    doc = [[n.op, n.name, sorted(n.attrs.items()),
            [[index[id(e.node)], e.index] for e in n.inputs]] for n in nodes]
    doc.append([[index[id(h.node)], h.index] for h in symbol.outputs])
    cacheable = all(n.is_variable or type(n.opdef).__module__.startswith("symgraph.")
                    for n in nodes)
    return GraphKey(json.dumps(doc, separators=(",", ":")), cacheable)


def result_key(graph_json: str, shapes: dict, dtypes: dict, grad_req: dict,
               options: dict) -> str:
    h = jit.host()
    return cache.cache_key({
        "graph": graph_json, "shapes": repr(sorted((k, tuple(v)) for k, v in shapes.items())),
        "dtypes": repr(sorted(dtypes.items())), "grad_req": repr(sorted(grad_req.items())),
        "options": repr(sorted(options.items())), "sources": sources_digest(),
        "llvmlite": llvmlite.__version__, "llvm": ".".join(map(str, llvm.llvm_version_info)),
        "triple": h.triple, "cpu": h.cpu, "features": h.features,
        "codegen": jit.CODEGEN_VERSION, "result": RESULT_VERSION,
        "threads": str(threadpool.compile_threads())})  # chunked kernels and scratch


@functools.lru_cache(maxsize=1)
def sources_digest() -> str:
    """The ``symgraph`` and ``codegen`` sources: op definitions, shape rules, passes,
    autodiff, lowering and emitters all decide the result."""
    return folder_digest(os.path.dirname(symgraph.__file__), os.path.dirname(codegen.__file__))


def folder_digest(*roots: str) -> str:
    """sha256 over every ``.py`` file under ``roots`` (relative path and contents)."""
    digest = hashlib.sha256()
    for root in roots:
        digest.update(b"root\0")
        for folder, subdirs, files in os.walk(root):
            subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
            for name in sorted(f for f in files if f.endswith(".py")):
                path = os.path.join(folder, name)
                with open(path, "rb") as f:
                    digest.update(os.path.relpath(path, root).encode() + b"\0" + f.read())
    return digest.hexdigest()


# ---------------------------------------------------------------------------- load
def _load(key, symbol, grad_req, name_hint, rebuild):
    payload = cache.load_result(key)
    if payload is None:
        return None
    arg_names = symbol.list_arguments()
    expect = {"args": arg_names, "aux": symbol.list_auxiliary_states(),
              "outputs": symbol.list_outputs(),
              "grads": [n for n in arg_names if grad_req.get(n, "null") != "null"]}
    try:
        parts = decode(payload, expect)
    except BadResult as exc:
        STATS["refused"] += 1
        cache.refuse_result(key, str(exc))
        return None
    # the limit may be lower than when the entry was written: check it as a compile does
    limits.check_tensors(parts.tensors)
    limits.check_program(parts.program, name_hint)
    threadpool.ensure_loaded()  # the object may call symgraph_parallel
    library = jit.load_library(parts.object_key, list(parts.program.phases))
    if library is None:
        log.info("compile result %s: its object code is gone; compiling", key[:16])
        return None
    return CachedGraph(CompiledProgram(parts.program, library), parts, rebuild)


class CachedGraph:
    """A compile result read from the disk cache: what an executor uses (the same
    attributes as ``CompiledGraph``). The optimized graph, the per-call trace and the
    kernels' IR are not stored; asking for them (pictures, ``symgraph ir``) compiles the
    graph once in this process (``full``)."""

    def __init__(self, program, parts, rebuild):
        self.program = program
        self.plan = parts.plan
        self.args, self.grads, self.aux = parts.args, parts.grads, parts.aux
        self.outputs, self.head_grads, self.seed = parts.outputs, parts.head_grads, parts.seed
        self._rebuild = rebuild
        self._full = None
        self._lock = threading.Lock()

    @property
    def arena_bytes(self) -> int:
        return self.program.program.arena_bytes

    @property
    def externals(self) -> tuple:
        return self.program.program.externals

    @property
    def graph(self):
        return self.full().graph

    @property
    def trace(self) -> tuple:
        return self.full().trace

    @property
    def graph_text(self) -> str:
        return self.full().graph_text

    def full(self):
        """The same result compiled in this process (object code from the cache)."""
        with self._lock:
            if self._full is None:
                self._full = self._rebuild()
            return self._full


# ---------------------------------------------------------------------------- store
def _store(key, compiled) -> None:
    object_key = getattr(compiled.program.library, "cache_key", None)
    if object_key is None:
        return
    cache.store(key, encode(compiled, object_key, limit_tensors(compiled.graph)),
                kind="result")


def limit_tensors(graph) -> tuple:
    """The tensors the per-tensor memory check must see to raise as a compile would: each
    one larger than every tensor before it (the first over any limit is one of them)."""
    out, largest = [], -1
    for entry, shape in graph.shapes.items():
        if shape is None:
            continue
        size = np.dtype(graph.dtypes.get(entry) or "float32").itemsize
        nbytes = size * math.prod(shape)
        if nbytes > largest:
            largest = nbytes
            out.append((_describe_entry(entry), tuple(shape), size))
    return tuple(out)
