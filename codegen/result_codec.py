"""A compile result as plain JSON and back, checked field by field (no pickle: reading an
entry only ever builds ints, strings, lists and the few dataclasses named here).

What is stored is what an executor needs and nothing it could recompute cheaply: the
program's phases as call lists (kernel name and buffer parameters, arena offsets or
pointer-table entries, the nodes each call computes), the arena size and external
buffers, the memory plan, every argument/gradient/aux/output slot, and the tensors whose
sizes the memory limit is checked against. The kernels' IR is not: the machine code is
the object-cache entry ``object_key`` names. :func:`decode` refuses (``BadResult``)
anything that is not exactly such a document or whose offsets do not fit the arena, so a
damaged or forged entry falls back to a full compile.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from codegen import loop_ir as L
from codegen.memplan import MemoryPlan
from codegen.program import (
    _PHASE_RE,
    Ext,
    ExternalBuffer,
    KernelCall,
    Program,
    _all_kernels,
    validate,
)
from symgraph.errors import CompileError

FORMAT = 2  # 2: the program's thread count
_DTYPES = frozenset(("float32", "float64", "int64", "bool"))  # what native code stores


class BadResult(ValueError):
    """A stored compile result that cannot be used (the caller compiles instead)."""


@dataclass(frozen=True)
class KernelStub:
    """What a loaded program keeps of a kernel: its symbol name and buffer parameters
    (enough to validate calls, draw pictures and size buffers; the code is in the object)."""

    name: str
    params: tuple  # L.BufferParam per buffer argument


@dataclass(frozen=True)
class Decoded:
    """The parts of a compile result, as ``CachedGraph`` is built from them."""

    object_key: str
    program: Program
    plan: MemoryPlan
    args: dict
    grads: dict
    aux: dict
    outputs: list
    head_grads: list
    seed: object
    tensors: tuple  # (label, shape, itemsize) the memory limit is checked against


# ---------------------------------------------------------------------------- encode
def encode(compiled, object_key: str, tensors) -> bytes:
    program = compiled.program.program
    kernels = _all_kernels(program)
    index = {k.name: i for i, k in enumerate(kernels)}
    plan = compiled.plan
    doc = {
        "format": FORMAT,
        "object_key": object_key,
        "arena_bytes": program.arena_bytes,
        "threads": program.threads,
        "externals": [[e.name, e.dtype, e.size] for e in program.externals],
        "kernels": [[k.name, [[p.name, p.dtype, p.size] for p in k.params]] for k in kernels],
        **_calls(program, index),
        "plan": {"offsets": _pairs(plan.offsets), "arena_bytes": plan.arena_bytes,
                 "persistent_bytes": plan.persistent_bytes,
                 "total_tensor_bytes": plan.total_tensor_bytes,
                 "in_place": _pairs(plan.in_place), "external": _pairs(plan.external)},
        "args": [_slot(s) for s in compiled.args.values()],
        "grads": [_slot(s) for s in compiled.grads.values()],
        "aux": [_slot(s) for s in compiled.aux.values()],
        "outputs": [_slot(s) for s in compiled.outputs],
        "head_grads": [None if s is None else _slot(s) for s in compiled.head_grads],
        "seed": None if compiled.seed is None else _slot(compiled.seed),
        "tensors": [[label, list(shape), size] for label, shape, size in tensors],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _calls(program, index) -> dict:
    """Each distinct call once (``forward_backward`` repeats ``forward`` and ``backward``),
    and each phase as indices into that list."""
    unique: dict = {}
    phases = {}
    for phase, calls in program.phases.items():
        phases[phase] = [unique.setdefault(
            (index[c.kernel.name], tuple(map(_arg, c.args)), tuple(c.node_names)), len(unique))
            for c in calls]
    return {"calls": [[k, [a if type(a) is int else {"ext": a[1]} for a in args], list(nodes)]
                      for k, args, nodes in unique], "phases": phases}


def _arg(arg):
    return ("ext", arg.index) if isinstance(arg, Ext) else arg


def _pairs(mapping) -> list:
    return [[k, v] for k, v in mapping.items()]


def _slot(slot) -> list:
    return [slot.name, list(slot.shape), slot.dtype, slot.offset, slot.ext]


# ---------------------------------------------------------------------------- decode
def decode(payload: bytes, expect: dict) -> Decoded:
    """The checked parts of ``payload``. ``expect`` holds the names the symbol and grad_req
    give (``args``, ``grads``, ``aux``, ``outputs``), which the entry must list in order."""
    try:
        doc = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadResult(f"not JSON: {exc}") from exc
    try:
        return _decode(_dict(doc, "entry"), expect)
    except BadResult:
        raise
    except (KeyError, TypeError, ValueError, CompileError) as exc:
        raise BadResult(f"{type(exc).__name__}: {exc}") from exc


def _decode(doc, expect) -> Decoded:
    if doc.get("format") != FORMAT:
        raise BadResult(f"format {doc.get('format')!r}, expected {FORMAT}")
    arena = _int(doc["arena_bytes"], "arena_bytes")
    externals = tuple(ExternalBuffer(_str(n, "external"), _dtype(d), _int(s, "external size"))
                      for n, d, s in _list(doc["externals"], "externals"))
    kernels = [KernelStub(_str(name, "kernel"), tuple(
        L.BufferParam(_str(p, "param"), _dtype(d), _int(s, "param size"))
        for p, d, s in _list(params, "params")))
        for name, params in _list(doc["kernels"], "kernels")]
    calls = [_call(kernels, c) for c in _list(doc["calls"], "calls")]
    # every offset inside the arena, every table entry fits its buffer
    validate(Program(tuple(kernels), arena, {"calls": calls}, externals))
    phases = {}
    for phase, indices in _dict(doc["phases"], "phases").items():
        if not _PHASE_RE.match(_str(phase, "phase")):
            raise BadResult(f"phase name {phase!r}")
        phases[phase] = [calls[i] for i in _indices(indices, len(calls))]
    threads = _int(doc["threads"], "threads")
    if threads < 1:
        raise BadResult(f"threads {threads}")
    program = Program(tuple(kernels), arena, phases, externals, threads=threads)
    slots = {kind: [_read_slot(s, arena, externals) for s in _list(doc[kind], kind)]
             for kind in ("args", "grads", "aux", "outputs")}
    for kind, names in expect.items():
        if [s.name for s in slots[kind]] != list(names):
            raise BadResult(f"{kind} are {[s.name for s in slots[kind]][:8]}, the graph "
                            f"has {list(names)[:8]}")
    _check_table(slots, externals)
    heads = [None if s is None else _read_slot(s, arena, externals)
             for s in _list(doc["head_grads"], "head_grads")]
    if len(heads) != len(slots["outputs"]):
        raise BadResult("one head gradient slot per output expected")
    seed = None if doc["seed"] is None else _read_slot(doc["seed"], arena, externals)
    return Decoded(_str(doc["object_key"], "object_key"), program, _plan(doc["plan"]),
                   {s.name: s for s in slots["args"]}, {s.name: s for s in slots["grads"]},
                   {s.name: s for s in slots["aux"]}, slots["outputs"], heads, seed,
                   tuple((_str(label, "tensor"), _shape(shape), _int(size, "itemsize"))
                         for label, shape, size in _list(doc["tensors"], "tensors")))


def _call(kernels, item):
    kernel_index, args, nodes = _list(item, "call")
    if type(kernel_index) is not int or not 0 <= kernel_index < len(kernels):
        raise BadResult(f"call of kernel {kernel_index!r} of {len(kernels)}")
    args = tuple(a if type(a) is int else Ext(_int(_dict(a, "arg")["ext"], "ext"))
                 for a in _list(args, "args"))  # offsets: validate() checks them
    if not all(type(n) is str for n in _list(nodes, "nodes")):
        raise BadResult("node names must be strings")
    return KernelCall(kernels[kernel_index], args, tuple(nodes))


def _indices(value, count) -> list:
    value = _list(value, "phase")
    if not all(type(i) is int and 0 <= i < count for i in value):
        raise BadResult(f"a phase names calls outside the {count} stored")
    return value


def _read_slot(item, arena, externals):
    from codegen.compiler import Slot

    name, shape, dtype, offset, ext = _list(item, "slot")
    slot = Slot(_str(name, "slot"), _shape(shape), _dtype(dtype), _int(offset, "offset", -1),
                _int(ext, "ext", -1))
    nbytes = math.prod(slot.shape) * L.itemsize(slot.dtype)
    if slot.external:
        if slot.ext >= len(externals) or slot.offset != -1:
            raise BadResult(f"slot {slot.name}: table entry {slot.ext} of {len(externals)}")
        buf = externals[slot.ext]
        if buf.dtype != slot.dtype or buf.size != math.prod(slot.shape):
            raise BadResult(f"slot {slot.name} does not match table entry {buf.name}")
    elif slot.offset < 0 or slot.offset % L.itemsize(slot.dtype) \
            or slot.offset + nbytes > arena:
        raise BadResult(f"slot {slot.name} [{slot.offset}, +{nbytes}) outside the arena")
    return slot


def _check_table(slots, externals) -> None:
    """Arguments, gradients and aux states fill the pointer table exactly once each."""
    used = sorted(s.ext for kind in ("args", "grads", "aux") for s in slots[kind]
                  if s.external)
    if used != list(range(len(externals))):
        raise BadResult(f"table entries {used[:8]} for {len(externals)} external buffers")


def _plan(doc) -> MemoryPlan:
    doc = _dict(doc, "plan")

    def pairs(name, lo=0):
        return {_int(k, name): _int(v, name, lo) for k, v in _list(doc[name], name)}

    return MemoryPlan(pairs("offsets"), _int(doc["arena_bytes"], "plan"),
                      _int(doc["persistent_bytes"], "plan"),
                      _int(doc["total_tensor_bytes"], "plan"), pairs("in_place"),
                      pairs("external"))


def _int(value, what, lo=0) -> int:
    if type(value) is not int or value < lo:
        raise BadResult(f"{what}: {value!r} is not an integer >= {lo}")
    return value


def _str(value, what) -> str:
    if type(value) is not str:
        raise BadResult(f"{what}: {value!r} is not a string")
    return value


def _dtype(value) -> str:
    if value not in _DTYPES:
        raise BadResult(f"dtype {value!r}")
    return value


def _shape(value) -> tuple:
    return tuple(_int(d, "dimension") for d in _list(value, "shape"))


def _list(value, what) -> list:
    if type(value) is not list:
        raise BadResult(f"{what}: expected a list, got {type(value).__name__}")
    return value


def _dict(value, what) -> dict:
    if type(value) is not dict:
        raise BadResult(f"{what}: expected an object, got {type(value).__name__}")
    return value
