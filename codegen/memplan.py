"""Liveness-based memory plan: every logical buffer gets an offset in one byte arena.

Persistent buffers (outputs, head gradients, the random seed) get their own slots first,
since the executor hands them out as numpy views. External buffers (arguments, gradients,
aux states: see ``codegen/program.py``) get no arena bytes at all; they are reached through
the phase's pointer table and, like persistent ones, are live for the whole program.
Every other buffer lives from the call that first touches it to the call that last
touches it (aliases extend their source's life); buffers whose lifetimes do not overlap
may share bytes. Placement is greedy by size (largest first, lowest offset that is free
for its whole lifetime), the classic planner of TFLite and tinygrad.

An elementwise kernel may write its output over an input that dies at that very call
(in-place): it reads element i before it writes element i. The two buffers then become
one interval. Only inputs read without broadcasting qualify, and only the last output of
a multi-output kernel, since its store follows every load of the iteration.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALIGN = 64


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass(frozen=True)
class Interval:
    key: int
    nbytes: int
    start: int
    end: int


@dataclass(frozen=True)
class MemoryPlan:
    offsets: dict  # root key -> byte offset
    arena_bytes: int
    persistent_bytes: int
    total_tensor_bytes: int
    in_place: dict = field(default_factory=dict)  # output root -> input root it overwrites
    external: dict = field(default_factory=dict)  # root -> index in the pointer table

    def offset(self, table, key: int) -> int:
        return self.offsets[table.root(key)]

    def location(self, root: int):
        """Arena byte offset (int) of a root buffer, or its ``Ext`` table entry."""
        if root in self.external:
            from codegen.program import Ext

            return Ext(self.external[root])
        return self.offsets[root]


def lifetimes(calls, table, persistent: set[int], in_place: dict | None = None
              ) -> list[Interval]:
    """First and last call index of each non-persistent root buffer.

    A buffer written in place over another (``in_place``: output root -> input root)
    joins that buffer's interval instead of getting its own.
    """
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for index, call in enumerate(calls):
        for key in call.keys:
            root = _home(table.root(key), in_place)
            first.setdefault(root, index)
            last[root] = index
    intervals = []
    for root, start in first.items():
        if root in persistent:
            continue
        intervals.append(Interval(root, _nbytes(table, root), start, last[root]))
    return intervals


def _home(root, in_place):
    while in_place and root in in_place:
        root = in_place[root]
    return root


def in_place_pairs(calls, table, persistent: set[int]) -> dict:
    """Output root -> input root for elementwise calls that may overwrite an input.

    A buffer some call updates in place (``LogicalCall.mutates``: an aux state) is never
    given away, even if it were not persistent: its bytes carry state across calls.
    """
    persistent = set(persistent) | {table.root(k) for call in calls
                                    for k in call.mutates}
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for index, call in enumerate(calls):
        for key in call.keys:
            first.setdefault(table.root(key), index)
            last[table.root(key)] = index
    pairs: dict = {}
    for index, call in enumerate(calls):
        candidate = _in_place_candidate(index, call, table, persistent, first, last)
        if candidate is not None:
            out_root, in_root = candidate
            pairs[out_root] = in_root
            last[in_root] = -1  # claimed: no second output may take it
    return pairs


def _in_place_candidate(index, call, table, persistent, first, last):
    spec = getattr(call, "spec", None)
    if spec is None or not hasattr(spec, "elementwise_inputs"):
        return None
    out_root = table.root(spec.last_output)
    outputs = {table.root(k) for k in spec.out_keys}
    if out_root in persistent or first.get(out_root) != index:
        return None
    for key in spec.elementwise_inputs():
        in_root = table.root(key)
        if (in_root not in persistent and in_root not in outputs
                and last.get(in_root) == index and _same_bytes(table, in_root, out_root)):
            return out_root, in_root
    return None


def _same_bytes(table, a, b):
    return table.sizes[a] == table.sizes[b] and table.dtypes[a] == table.dtypes[b]


def _nbytes(table, root) -> int:
    return _align(max(table.sizes[root] * _itemsize(table.dtypes[root]), 1))


def _itemsize(dtype: str) -> int:
    return {"float32": 4, "float64": 8, "int64": 8, "int32": 4}[dtype]


def plan_memory(calls, table, persistent_order: list[int],
                external: dict | None = None) -> MemoryPlan:
    """``external`` maps root buffers that live outside the arena to their table index."""
    external = dict(external or {})
    offsets: dict[int, int] = {}
    cursor = 0
    for key in persistent_order:
        root = table.root(key)
        if root in offsets or root in external:
            continue
        offsets[root] = cursor
        cursor += _nbytes(table, root)
    persistent_bytes = cursor
    pinned = set(offsets) | set(external)
    in_place = in_place_pairs(calls, table, pinned)
    intervals = lifetimes(calls, table, pinned, in_place)
    placed: list[tuple[Interval, int]] = []
    for item in sorted(intervals, key=lambda iv: (-iv.nbytes, iv.start)):
        offset = _first_fit(item, placed)
        placed.append((item, offset))
        offsets[item.key] = persistent_bytes + offset
    for out_root in in_place:
        offsets[out_root] = offsets[_home(out_root, in_place)]
    scratch = max((off + iv.nbytes for iv, off in placed), default=0)
    merged = sum(_nbytes(table, root) for root in in_place)
    total = persistent_bytes + sum(iv.nbytes for iv in intervals) + merged
    total += sum(_nbytes(table, root) for root in external)
    return MemoryPlan(offsets, persistent_bytes + scratch, persistent_bytes, total, in_place,
                      external)


def _first_fit(item: Interval, placed) -> int:
    """Lowest offset not used by any placed buffer whose lifetime overlaps ``item``'s."""
    busy = sorted((off, off + iv.nbytes) for iv, off in placed
                  if iv.start <= item.end and item.start <= iv.end)
    offset = 0
    for lo, hi in busy:
        if offset + item.nbytes <= lo:
            break
        offset = max(offset, hi)
    return offset


def poison_dead_buffers(calls, table, plan, make_fill) -> list:
    """Debug schedule: after each call, fill every buffer whose lifetime just ended with NaN.

    If the plan ever let two live buffers share bytes, or computed a lifetime too short, a
    later kernel reads NaN and the result differs from the reference: that is the test.
    ``make_fill(key)`` returns the call that poisons one buffer.
    """
    persistent = {k for k, off in plan.offsets.items() if off < plan.persistent_bytes}
    persistent |= set(plan.external)
    ends: dict[int, list[int]] = {}
    for interval in lifetimes(calls, table, persistent, plan.in_place):
        ends.setdefault(interval.end, []).append(interval.key)
    schedule = []
    for index, call in enumerate(calls):
        schedule.append(call)
        schedule.extend(make_fill(key) for key in ends.get(index, []))
    return schedule
