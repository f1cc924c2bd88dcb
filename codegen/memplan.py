"""Liveness-based memory plan: every logical buffer gets an offset in one byte arena.

Persistent buffers (arguments, gradients, aux states, outputs, head gradients) get their
own slots first, since the executor hands them out as numpy views. Every other buffer lives
from the call that first touches it to the call that last touches it (aliases extend their
source's life); buffers whose lifetimes do not overlap may share bytes. Placement is
greedy by size (largest first, lowest offset that is free for its whole lifetime), the
classic planner of TFLite and tinygrad.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    def offset(self, table, key: int) -> int:
        return self.offsets[table.root(key)]


def lifetimes(calls, table, persistent: set[int]) -> list[Interval]:
    """First and last call index of each non-persistent root buffer."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for index, call in enumerate(calls):
        for key in call.keys:
            root = table.root(key)
            first.setdefault(root, index)
            last[root] = index
    intervals = []
    for root, start in first.items():
        if root in persistent:
            continue
        nbytes = table.sizes[root] * _itemsize(table.dtypes[root])
        intervals.append(Interval(root, _align(max(nbytes, 1)), start, last[root]))
    return intervals


def _itemsize(dtype: str) -> int:
    return {"float32": 4, "float64": 8, "int64": 8, "int32": 4}[dtype]


def plan_memory(calls, table, persistent_order: list[int]) -> MemoryPlan:
    offsets: dict[int, int] = {}
    cursor = 0
    roots = []
    for key in persistent_order:
        root = table.root(key)
        if root in offsets:
            continue
        offsets[root] = cursor
        roots.append(root)
        cursor += _align(max(table.sizes[root] * _itemsize(table.dtypes[root]), 1))
    persistent_bytes = cursor
    intervals = lifetimes(calls, table, set(offsets))
    placed: list[tuple[Interval, int]] = []
    for item in sorted(intervals, key=lambda iv: (-iv.nbytes, iv.start)):
        offset = _first_fit(item, placed)
        placed.append((item, offset))
        offsets[item.key] = persistent_bytes + offset
    scratch = max((off + iv.nbytes for iv, off in placed), default=0)
    total = persistent_bytes + sum(iv.nbytes for iv in intervals)
    return MemoryPlan(offsets, persistent_bytes + scratch, persistent_bytes, total)


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
    ends: dict[int, list[int]] = {}
    for interval in lifetimes(calls, table, persistent):
        ends.setdefault(interval.end, []).append(interval.key)
    schedule = []
    for index, call in enumerate(calls):
        schedule.append(call)
        schedule.extend(make_fill(key) for key in ends.get(index, []))
    return schedule
