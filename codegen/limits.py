"""The memory limit: how many bytes one compiled graph may ask for.

A layer or batch too large for the machine must fail as a clear error at bind time, not
as ``LLVM ERROR: Unable to allocate section memory`` (which aborts the interpreter) or a
7 TiB numpy allocation. The compiler checks every tensor right after shape inference and
the whole program (arena plus buffers outside it) after the memory plan, before any LLVM
code is built; the in-process memo checks a graph it hands out again (it may have been
compiled under a higher limit), so every bind is checked before anything is allocated.

The limit is, in order: ``set_memory_limit(...)``, the environment variable
``SYMGRAPH_MEMORY_LIMIT``, else ``DEFAULT_FRACTION`` of physical memory (or of the cgroup
limit, when the process runs in a container with less).
"""

from __future__ import annotations

import math
import os
import re
import threading

from symgraph.errors import MemoryLimitError

ENV = "SYMGRAPH_MEMORY_LIMIT"
DEFAULT_FRACTION = 0.75
_UNITS = {"": 1, "b": 1, "k": 2 ** 10, "m": 2 ** 20, "g": 2 ** 30, "t": 2 ** 40, "p": 2 ** 50}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgtp]?)(?:i?b)?\s*$", re.I)
_NO_LIMIT = ("none", "off", "unlimited")

_lock = threading.Lock()
_explicit: int | str | None = None  # bytes, 'none' (no limit) or None (default)


def physical_memory() -> int:
    """Bytes of RAM this process can use: the machine's, or its cgroup's if smaller."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 16 * 2 ** 30  # platforms without sysconf: a laptop's worth
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def parse_size(text, what: str = ENV) -> int | None:
    """``'8G'``, ``'512 MiB'``, ``'1e9'``, ``'50%'`` (of physical memory) -> bytes;
    ``'none'``/``'off'``/``'unlimited'`` -> None (no limit). Units are powers of 1024."""
    if isinstance(text, bool):
        raise ValueError(f"{what}: expected a size such as '8G', got {text!r}")
    if isinstance(text, (int, float)):
        return _positive(text, what, text)
    raw = str(text).strip()
    if raw.lower() in _NO_LIMIT:
        return None
    if raw.endswith("%"):
        try:
            share = float(raw[:-1]) / 100
        except ValueError:
            share = -1.0
        if not 0 < share <= 1:
            raise ValueError(f"{what}={raw!r}: a percentage must be in (0%, 100%]")
        return int(physical_memory() * share)
    match = _SIZE.match(raw)
    if not match:
        raise ValueError(f"{what}={raw!r}: expected a size such as '8G', '512M', "
                         "'1e9' (bytes), '50%' or 'none'")
    return _positive(float(match.group(1)) * _UNITS[match.group(2).lower()], what, raw)


def _positive(value, what, shown) -> int:
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"{what}={shown!r}: the memory limit must be at least 1 byte")
    return int(value)


def set_memory_limit(limit):
    """Set the limit for this process: bytes, or a size string as ``parse_size`` reads it
    (``'none'`` for no limit); None goes back to the environment variable or the default.
    Returns the previous setting, so ``set_memory_limit(previous)`` restores it."""
    global _explicit
    value = None if limit is None else parse_size(limit, "set_memory_limit")
    with _lock:
        previous = _explicit
        _explicit = "none" if (limit is not None and value is None) else value
    return previous


def memory_limit() -> int | None:
    """The limit in force, in bytes (None: no limit)."""
    with _lock:
        explicit = _explicit
    if explicit is not None:
        return None if explicit == "none" else explicit
    env = os.environ.get(ENV)
    if env:
        return parse_size(env)
    return int(physical_memory() * DEFAULT_FRACTION)


def _source() -> str:
    if _explicit is not None:
        return "set by sg.set_memory_limit"
    if os.environ.get(ENV):
        return f"from {ENV}"
    return f"the default, {DEFAULT_FRACTION:.0%} of physical memory"


def format_bytes(nbytes: int) -> str:
    """``64.0 GiB``; exact byte counts of astronomically large requests stay readable."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if value < 1024 or unit == "EiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{nbytes} B"  # pragma: no cover - the loop always returns


def check_bytes(nbytes: int, what: str) -> None:
    """Raise MemoryLimitError when ``what`` would need more than the limit."""
    limit = memory_limit()
    if limit is None or nbytes <= limit:
        return
    asked = (f"{what} needs {format_bytes(nbytes)} ({nbytes} bytes), more than the memory "
             f"limit of {format_bytes(limit)} ({_source()})")
    physical = physical_memory()
    if nbytes > physical:
        raise MemoryLimitError(f"{asked} and more than this machine's "
                               f"{format_bytes(physical)}: use a smaller batch or layer")
    raise MemoryLimitError(f"{asked}. Use a smaller batch or layer, or raise the limit: "
                           f"sg.set_memory_limit('{_suggest(nbytes)}') or "
                           f"{ENV}={_suggest(nbytes)}")


def _suggest(nbytes: int) -> str:
    gib = max(1, math.ceil(nbytes * 1.25 / 2 ** 30))
    return f"{gib}G"


def program_bytes(program) -> int:
    """What an executor of ``program`` allocates: its arena plus the buffers it holds
    outside the arena (arguments, gradients and aux states, where the program has them)."""
    outside = getattr(program, "externals", ())
    return program.arena_bytes + sum(buf.nbytes for buf in outside)


def check_program(program, name: str) -> None:
    """Raise MemoryLimitError when an executor of ``program`` would exceed the limit."""
    check_bytes(program_bytes(program), f"the executor of '{name}'")


def check_tensors(entries) -> None:
    """``entries``: (label, shape, itemsize) triples in graph order; the first one over
    the limit is named with its shape (a tensor larger than the limit can never be bound,
    and the first is nearest the cause: the input or layer, not its gradient)."""
    limit = memory_limit()
    if limit is None:
        return
    for label, shape, size in entries:
        nbytes = math.prod(shape) * size
        if nbytes > limit:
            check_bytes(nbytes, f"{label} of shape ({', '.join(map(str, shape))})")
