"""Compile the separate LLVM modules of one program on more than one core.

LLVM optimizes and emits one module on one thread, and llvmlite serializes every call
into LLVM behind one process-wide lock, so threads cannot share the work.  Forked
children can: each inherits the program (no pickling), takes unit numbers from a pipe the
parent filled before the fork (each 4-byte read of a pipe is atomic, so every unit goes
to exactly one process), builds and compiles each one, and appends ``index | size |
object`` records to a file the parent reads once the child has exited.  Each unit is
compiled alone in whichever process takes it, so the objects, and the bundle made of
them, are the same bytes however many processes shared the work.

A child is forked only when that is safe and a core is free: on Linux, from a process
with no other Python thread (one could hold a lock the child would need: logging's,
llvmlite's), that is not itself a multiprocessing child or daemon, and while other
processes leave a core idle (under ``make test`` both cores run pytest workers already:
see :func:`others_running`).  ``SYMGRAPH_COMPILE_JOBS=N`` sets the number of processes
(1: serial).  Any unit a child did not deliver (it failed or was killed) is compiled by
the parent, which then raises that unit's real error.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import struct
import sys
import tempfile
import threading

log = logging.getLogger("codegen.split_compile")
ENV = "SYMGRAPH_COMPILE_JOBS"
_INDEX = struct.Struct("<I")
_RECORD = struct.Struct("<IQ")
#: unit numbers the task pipe holds before anyone reads (a Linux pipe buffers 64 KiB)
_MAX_TASKS = 16384


def jobs_wanted() -> int:
    """Processes to compile with: ``SYMGRAPH_COMPILE_JOBS``, else this one plus the cores
    other processes leave idle."""
    text = os.environ.get(ENV)
    if text:
        try:
            return max(int(text), 1)
        except ValueError:
            log.warning("%s=%r is not an integer; compiling serially", ENV, text)
            return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return 1
    return max(1, min(cores, round(cores - others_running())))


def others_running() -> float:
    """Cores other processes keep busy: the tasks runnable right now besides this one
    (``/proc/loadavg``), or the one-minute load less 1.5 when that is more (a sample
    can fall between two steps of a busy process; the average lags, and counts this
    process and the helpers it forked for its last compile)."""
    try:
        with open("/proc/loadavg") as f:
            fields = f.read().split()
        load, running = float(fields[0]), int(fields[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return max(os.getloadavg()[0] - 1.0, 0.0)
    return max(running - 1, load - 1.5, 0.0)


def fork_safe() -> bool:
    return (sys.platform.startswith("linux") and hasattr(os, "fork")
            and threading.active_count() == 1
            and multiprocessing.parent_process() is None
            and not multiprocessing.current_process().daemon)


def compile_units(count: int, build, jobs: int | None = None) -> tuple[list[bytes], int]:
    """``[build(i) for i in range(count)]`` (object bytes), with ``jobs - 1`` forked
    helpers (``jobs`` defaults to :func:`jobs_wanted`) when that is safe; also how many
    units the helpers built (their LLVM runs are not counted in this process)."""
    jobs = jobs_wanted() if jobs is None else jobs
    helpers = min(jobs - 1, count - 1)
    if helpers < 1 or count > _MAX_TASKS or not fork_safe():
        return [build(i) for i in range(count)], 0
    return _with_helpers(count, build, helpers)


def _with_helpers(count, build, helpers):
    read_end, write_end = os.pipe()
    os.write(write_end, b"".join(_INDEX.pack(i) for i in range(count)))
    os.close(write_end)
    objects, theirs, forked = {}, {}, []
    try:
        for _ in range(helpers):
            out = tempfile.TemporaryFile()
            try:
                pid = os.fork()
            except OSError as exc:
                out.close()
                log.warning("cannot fork a compile helper (%s)", exc)
                break
            if pid == 0:  # a helper: never returns into the caller's code
                _helper(read_end, out.fileno(), build)
            forked.append((pid, out))
        for i in _take(read_end):
            objects[i] = build(i)
    finally:
        os.close(read_end)
        for pid, out in forked:
            _, status = os.waitpid(pid, 0)
            if status:
                log.warning("compile helper exited with status %d: the parent compiles "
                            "its share", status)
            with out:
                theirs.update(_records(out))
    objects.update(theirs)
    for i in range(count):
        if i not in objects:
            objects[i] = build(i)
    return [objects[i] for i in range(count)], len(theirs)


def _take(read_end):
    while True:
        raw = os.read(read_end, _INDEX.size)
        if not raw:
            return
        yield _INDEX.unpack(raw)[0]


def _helper(read_end, out_fd, build):
    code = 1
    try:
        for i in _take(read_end):
            obj = build(i)
            _write_all(out_fd, _RECORD.pack(i, len(obj)) + obj)
        code = 0
    except BaseException:  # noqa: BLE001 - the parent rebuilds the unit and raises
        pass
    finally:
        os._exit(code)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _records(out) -> dict:
    """The complete records of the helper's file (a cut-off last one is dropped)."""
    out.seek(0)
    data, found, offset = out.read(), {}, 0
    while offset + _RECORD.size <= len(data):
        index, size = _RECORD.unpack_from(data, offset)
        start = offset + _RECORD.size
        if start + size > len(data):
            break
        found[index] = data[start: start + size]
        offset = start + size
    return found
