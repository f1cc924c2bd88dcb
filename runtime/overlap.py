"""A training step whose gradient allreduce overlaps the backward pass.

``forward_backward`` is one native call, so the gradient bucket could be summed over the
workers only after all of it. :func:`codegen.phase_split.split_phase` derives from the
executor's program consecutive sub-phases and the gradients each one makes final; here
they run in turn on the executor's own arena and pointer table, and after each the
bucket slices it completed are handed to the caller (which starts a non-blocking
``MPI_Iallreduce`` on them) while the next sub-phase computes. The results are bitwise
those of ``forward_backward`` (same kernels on the same bytes).

Each piece is a contiguous slice of the bucket: every gradient owns its bytes up to the
next gradient's start (the alignment gaps are zeros, so reducing them is harmless), and
the splitter cuts only where the gradients completed since the previous cut form one
run of the bucket's layout. The executor lays its bucket out in argument order, which for
a layered network is the reverse of the order backward completes gradients, so the
pieces are runs as laid out; a graph whose gradients complete in another order gets
fewer cuts (never wrong slices).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from codegen.phase_split import MAX_PARTS, split_phase
from codegen.program import compile_program
from runtime.executor import Executor

PHASE = "forward_backward"
_MEMO: dict = {}  # (id(program), gradients, options) -> (program, split, library)
_LOCK = threading.Lock()
_MAX_ENTRIES = 32


@dataclass(frozen=True)
class OverlappedStep:
    """The sub-phases of one executor's ``forward_backward`` and, per sub-phase, the
    bucket slices it makes final."""

    functions: tuple  # ctypes fn(arena, table) per sub-phase
    pieces: tuple  # per sub-phase: tuple of 1-D views into the bucket
    names: tuple  # per sub-phase: the gradient names it makes final

    @property
    def parts(self) -> int:
        return len(self.functions)

    @property
    def early_bytes(self) -> int:
        """The largest piece started before the last sub-phase (what may need MPI
        progress while native code runs)."""
        return max((p.nbytes for ps in self.pieces[:-1] for p in ps), default=0)


def overlapped_step(exe, max_parts: int = MAX_PARTS, min_bytes: int | None = None):
    """The :class:`OverlappedStep` of executor ``exe``, or None when it has no gradient
    bucket, is not one executor (several contexts sum their buckets after their own
    steps) or has no useful cut (then the caller reduces after ``forward_backward``).
    ``min_bytes`` replaces the splitter's size rules: every piece of at least that many
    bytes is cut off (see ``split_phase``)."""
    if not isinstance(exe, Executor) or exe.grad_bucket is None or max_parts < 2:
        return None
    bucket, compiled = exe.grad_bucket, exe.compiled
    starts = _bucket_starts(exe, bucket)
    if not starts:
        return None
    names = sorted(starts, key=starts.get)
    ext = {n: compiled.grads[n].ext for n in names}
    # a graph served by the compile-result cache holds kernel names only: the split
    # re-emits kernels, so it takes the full compile (same program, rebuilt once)
    full = compiled.full() if hasattr(compiled, "full") else compiled
    split, library = _split(full.program.program, tuple(ext[n] for n in names), max_parts,
                            min_bytes)
    if len(split.parts) < 2:
        return None
    by_ext = {e: n for n, e in ext.items()}
    ends = dict(zip(names, [*(starts[n] for n in names[1:]), bucket.size]))
    pieces, part_names = [], []
    for part in split.parts:
        members = [by_ext[e] for e in part.ready]
        pieces.append(_slices(bucket, members, starts, ends, names[0]))
        part_names.append(tuple(members))
    functions = tuple(library.function(p.name) for p in split.parts)
    return OverlappedStep(functions, tuple(pieces), tuple(part_names))


def _bucket_starts(exe, bucket) -> dict:
    """Element offset in the bucket of each parameter gradient that lies in it."""
    base, end, item = bucket.ctypes.data, bucket.ctypes.data + bucket.nbytes, bucket.itemsize
    out = {}
    for name, array in exe.grad_dict.items():
        address = array.ctypes.data
        if base <= address and address + array.nbytes <= end and array.dtype == bucket.dtype:
            out[name] = (address - base) // item
    return out


def _slices(bucket, members, starts, ends, first) -> tuple:
    """The bucket views covering ``members``' bytes (the first gradient also owns any
    bytes before it), adjacent ones merged."""
    spans = sorted((0 if n == first else starts[n], ends[n]) for n in members)
    merged: list = []
    for lo, hi in spans:
        if merged and merged[-1][1] == lo:
            merged[-1][1] = hi
        else:
            merged.append([lo, hi])
    return tuple(bucket[lo:hi] for lo, hi in merged if hi > lo)


def _split(program, grads, max_parts, min_bytes):
    """The split program, compiled once per (program, gradients, options); disk-cached
    under its own description (``codegen.program.describe``: the sub-phases' calls)."""
    key = (id(program), grads, max_parts, min_bytes)
    with _LOCK:
        hit = _MEMO.get(key)
    if hit is not None and hit[0] is program:
        return hit[1], hit[2]
    sizes = {} if min_bytes is None else {"min_bytes": min_bytes, "min_fraction": 0.0,
                                          "balanced": False}
    split = split_phase(program, PHASE, grads, max_parts, **sizes)
    compiled = compile_program(split.program, "overlap") if len(split.parts) > 1 else None
    with _LOCK:
        if len(_MEMO) >= _MAX_ENTRIES:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[key] = (program, split, compiled)
    return split, compiled

