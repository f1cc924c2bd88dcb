"""One phase as consecutive sub-phases, cut where parameter gradients become final.

Data-parallel training sums each step's gradient bucket over all workers before the
update. Started after the whole backward pass, that allreduce waits for nothing but adds
its full time to the step; started piece by piece as soon as a piece of the bucket is
final, it runs while the rest of the backward pass computes. This module derives, from a
compiled program, a second program whose phases ``<phase>__0 .. <phase>__k`` run the calls
of ``<phase>`` in turn, and records which gradients each one makes final (no later
sub-phase reads or writes them, so they may be reduced in place while it runs).

Two steps, both on the lowered calls, so the memory plan, the kernels and the pointer
table stay exactly those of the source program (the executor runs the sub-phases on its
own arena and table):

* **Reorder.** Lowering emits every weight gradient after the whole chain of data
  gradients (topological order from the heads), so as is nothing would be final before
  the end. The calls are re-scheduled so that each gradient is computed as soon as its
  inputs are: a call may move only past calls whose memory it does not conflict with (no
  two calls touching overlapping bytes, one of them writing, swap), so every call reads
  the very bytes it read before and the results are bitwise those of the source phase.
* **Cut.** Up to ``max_parts - 1`` cuts, each after a call that completes gradients, when
  the gradients completed since the previous cut hold at least ``min_bytes``,
  ``min_fraction`` of the tracked bytes and (``balanced``) their share of the bytes not
  cut off yet (fewer, larger messages: each allreduce has a latency), lie in one
  contiguous run of the bucket layout (one message each) that with the earlier pieces is
  a run at one end of it (so what is left stays one run) and leave calls after the cut
  that move at least as many bytes as the piece (work to hide the message behind).
  Whatever is final only at the end is the last piece.

The reorder cannot undo the memory plan: a call that reuses bytes another call used
stays after it, so a gradient whose kernel shares scratch with the data-gradient chain
is final only where that chain allows (LeNet's conv2 weight gradient: at the end).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from codegen import loop_ir as L
from codegen.fusion import _READ_ONLY_PARAMS
from codegen.kernels.matmul import MatmulKernel
from codegen.program import Ext, Program, validate

_EPILOGUE_INPUT = re.compile(r"^e[0-9]+$")

#: Default fewest bytes a piece must hold to be cut off (below, latency dominates), and
#: fewest as a fraction of all tracked gradients (a piece too small to matter saves less
#: than its own message costs).
MIN_PIECE_BYTES = 16 * 1024
MIN_PIECE_FRACTION = 1 / 16
#: Default largest number of sub-phases.
MAX_PARTS = 4


@dataclass(frozen=True)
class SubPhase:
    """One native sub-phase and the gradients (table entries) it makes final."""

    name: str
    calls: int  # how many calls it runs
    ready: tuple  # table entries of the gradients no later sub-phase touches


@dataclass(frozen=True)
class PhaseSplit:
    """The sub-phases of ``source`` in program ``program`` (which has only those phases,
    on the source's arena and pointer table)."""

    source: str
    program: Program
    parts: tuple  # SubPhase per sub-phase, in the order they run


@dataclass(frozen=True)
class _Access:
    resource: object  # "arena" or the table entry
    lo: int
    hi: int
    writes: bool


def sub_phase_name(phase: str, k: int) -> str:
    return f"{phase}__{k}"


def split_phase(program: Program, phase: str, grads, max_parts: int = MAX_PARTS,
                min_bytes: int = MIN_PIECE_BYTES, min_fraction: float = MIN_PIECE_FRACTION,
                balanced: bool = True) -> PhaseSplit:
    """Split ``phase`` of ``program`` at gradient-readiness points.

    ``grads`` are the pointer-table entries of the gradients to track, in the order they
    lie in the bucket that is reduced (a piece is cut off only if it is one contiguous run
    of this order). With ``max_parts=1`` (or no useful cut) the result has one sub-phase:
    the source phase's calls in their original order. ``balanced``: a piece must also
    hold its share of what is not cut off yet (that divided by the sub-phases left), so
    a deep net of equal layers gets pieces of equal size, not three small early ones and
    the bulk at the end.
    """
    calls = list(program.phases[phase])
    grads = tuple(grads)
    accesses = [_accesses(call, program.externals) for call in calls]
    preds = _predecessors(accesses)
    order, events = _schedule(calls, accesses, preds, grads)
    total = sum(program.externals[g].nbytes for g in grads)
    min_bytes = max(min_bytes, total * min_fraction)
    cuts = _cuts(events, grads, program.externals, _bytes_after(order, accesses, program),
                 max_parts, min_bytes, balanced)
    if not cuts:
        order = list(range(len(calls)))
    bounds = [0, *[position for position, _ in cuts], len(calls)]
    pieces = [piece for _, piece in cuts]
    pieces.append(tuple(g for g in grads if not any(g in p for p in pieces)))
    phases, parts = {}, []
    for k, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        name = sub_phase_name(phase, k)
        phases[name] = [calls[i] for i in order[lo:hi]]
        parts.append(SubPhase(name, hi - lo, pieces[k]))
    used = {c.kernel.name for cs in phases.values() for c in cs}
    split = Program(tuple(k for k in program.kernels if k.name in used), program.arena_bytes,
                    phases, program.externals, threads=program.threads)
    validate(split)
    return PhaseSplit(phase, split, tuple(parts))


def _bytes_after(order, accesses, program) -> list:
    """Per position p of ``order``: the bytes the calls from p on touch."""
    def nbytes(a):
        return a.hi - a.lo if a.resource == "arena" else program.externals[a.resource].nbytes

    traffic = [sum(nbytes(a) for a in accesses[i]) for i in order]
    return list(itertools.accumulate(reversed(traffic), initial=0))[::-1]


def _writes(kernel, param, arg, externals) -> bool:
    """The kernel builders' convention (codegen/fusion.py ``_writes``): inputs are
    ``in*``, matmul operands ``a``/``b``/``bias`` and a matmul's epilogue inputs ``e<k>``
    (it only loads them); anything else may be written. Aux states are updated in place
    under an input's name (BatchNorm), so they count as written."""
    if isinstance(arg, Ext) and externals[arg.index].name.startswith("aux:"):
        return True
    if isinstance(kernel, MatmulKernel) and _EPILOGUE_INPUT.match(param.name):
        return False
    return not (param.name.startswith("in") or param.name in _READ_ONLY_PARAMS)


def _accesses(call, externals) -> tuple:
    out = []
    for param, arg in zip(call.kernel.params, call.args):
        writes = _writes(call.kernel, param, arg, externals)
        if isinstance(arg, Ext):  # a table entry conflicts as a whole
            out.append(_Access(arg.index, 0, 1, writes))
        else:
            out.append(_Access("arena", arg, arg + param.size * L.itemsize(param.dtype), writes))
    return tuple(out)


def _conflict(first, second) -> bool:
    return any(a.resource == b.resource and a.lo < b.hi and b.lo < a.hi
               and (a.writes or b.writes) for a in first for b in second)


def _predecessors(accesses) -> list:
    """For each call, the earlier calls it must stay after (a memory conflict)."""
    return [{i for i in range(j) if _conflict(accesses[i], accesses[j])}
            for j in range(len(accesses))]


def _ancestors(index, preds, memo) -> frozenset:
    if index not in memo:
        stack, seen = [index], {index}
        while stack:
            for p in preds[stack.pop()]:
                if p not in seen:
                    seen.add(p)
                    stack.append(p)
        memo[index] = frozenset(seen)
    return memo[index]


def _schedule(calls, accesses, preds, grads):
    """A call order that completes each gradient as early as possible, and the events
    (position, gradient): the gradient is final after the first ``position`` calls.

    Each gradient needs every call that touches it and, transitively, the calls those
    must follow; gradients are completed in order of how many calls that takes (the last
    layer's first), each by running what it needs that has not run, in original order
    (so the order stays consistent with every conflict)."""
    touching = {g: [i for i, acc in enumerate(accesses)
                    if any(a.resource == g for a in acc)] for g in grads}
    memo: dict = {}
    needs = {g: frozenset().union(*(_ancestors(i, preds, memo) for i in touching[g]))
             for g in grads}
    order, done, events = [], set(), []
    for g in sorted(grads, key=lambda g: (len(needs[g]), max(touching[g], default=-1))):
        fresh = sorted(needs[g] - done)
        order += fresh
        done.update(fresh)
        events.append((len(order), g))
    order += [i for i in range(len(calls)) if i not in done]
    return order, events


def _cuts(events, grads, externals, after, max_parts, min_bytes, balanced) -> list:
    """(position, gradients) per cut: see the module docstring. ``after[p]`` is the
    bytes the calls from position ``p`` on move (their buffers' sizes): a cut that leaves
    less than the piece's own bytes has too little work left to hide its message.

    Everything cut off so far, with the new piece, must be one run at an end of the
    layout: then each piece is one run and so is what is left. (A piece that were one run
    in the middle could strand a gradient between two reduced pieces: cutting a layer's
    weight off before its bias, the bias and the next layer's weight would never again be
    one slice.)"""
    n_calls = len(after) - 1
    rank = {g: i for i, g in enumerate(grads)}
    cuts, pending, done = [], [], []
    uncut = sum(externals[g].nbytes for g in grads)
    for index, (position, g) in enumerate(events):
        pending.append(g)
        if len(cuts) >= max_parts - 1 or position >= n_calls:
            break
        if position == 0:
            continue  # final before anything runs (no call touches it): the first piece
        if index + 1 < len(events) and events[index + 1][0] == position:
            continue  # more gradients complete at the same point
        nbytes = sum(externals[p].nbytes for p in pending)
        share = uncut / (max_parts - len(cuts)) if balanced else 0
        if (_end_run(sorted(rank[p] for p in done + pending), len(grads))
                and nbytes >= max(min_bytes, share) and after[position] >= nbytes):
            cuts.append((position, tuple(sorted(pending, key=rank.get))))
            done += pending
            uncut -= nbytes
            pending = []
    return cuts


def _end_run(ranks, n) -> bool:
    """``ranks`` (sorted, distinct) are 0..k or k..n-1."""
    return ranks[-1] - ranks[0] == len(ranks) - 1 and (ranks[0] == 0 or ranks[-1] == n - 1)
