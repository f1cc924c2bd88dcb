"""Crash-safe file writes: readers see the old file or the new one, never a torn one.

A checkpoint written while the process is killed must not destroy the previous checkpoint,
so every file symgraph writes goes through :func:`atomic_write`: the bytes go to a temporary
file in the *same* directory (``os.replace`` is only atomic within one file system), the temp
file is fsync'ed, renamed over the target, and the directory is fsync'ed so the rename itself
survives a power cut. On any error the temp file is removed and the old file is untouched.

A process killed mid-write leaves its temp file behind (``.name.<pid>-XXXXXXXX.tmp``). The
next write of the same target removes such leftovers: those of processes that no longer
run, those of this process that no write is using, and any older than an hour (a reused
pid, or the ``.name.XXXXXXXX.tmp`` files of earlier versions). A live writer's temp file is
never touched, so two processes saving one target do not break each other.

Reads go through :func:`read_file_bytes`, so every loader reports a missing or unreadable
file the same way: a SymgraphError that is also the ``OSError`` ``open`` would raise.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from typing import BinaryIO

from .errors import FileReadError, MissingFileError

__all__ = ["atomic_write", "atomic_write_text", "clean_stale_temps", "read_file_bytes"]


def _read_umask() -> int:
    """The process umask, so new files get the same mode ``open(path, 'w')`` would give."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()
#: Temp files older than this are stale whoever wrote them.
STALE_AFTER_S = 3600.0
_ACTIVE: set[str] = set()
_ACTIVE_LOCK = threading.Lock()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    return True


def _is_stale(path: str, pid: int | None) -> bool:
    with _ACTIVE_LOCK:
        if path in _ACTIVE:
            return False
    try:
        age = time.time() - os.stat(path).st_mtime
    except OSError:
        return False
    if age > STALE_AFTER_S:
        return True
    if pid is None:
        return False
    return pid == os.getpid() or not _pid_alive(pid)


def clean_stale_temps(path) -> list[str]:
    """Remove the leftover temp files of earlier, interrupted writes of ``path``."""
    path = os.fspath(path)
    dirname = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    pattern = re.compile(r"^\." + re.escape(base) + r"\.(?:(\d+)-)?[A-Za-z0-9_]{8}\.tmp$")
    removed = []
    try:
        names = os.listdir(dirname)
    except OSError:
        return removed
    for name in names:
        match = pattern.match(name)
        if not match:
            continue
        tmp = os.path.join(dirname, name)
        if _is_stale(tmp, int(match.group(1)) if match.group(1) else None):
            try:
                os.unlink(tmp)
                removed.append(tmp)
            except OSError:
                pass
    return removed


def _fsync_dir(dirname: str) -> None:
    """Persist a rename; silently skipped where directories can't be opened (Windows)."""
    try:
        fd = os.open(dirname, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, data: bytes | bytearray | memoryview | Callable[[BinaryIO], object]) -> None:
    """Write ``data`` (bytes, or a ``writer(fileobj)`` callable) to ``path`` atomically."""
    path = os.fspath(path)
    dirname = os.path.dirname(os.path.abspath(path))
    clean_stale_temps(path)
    with _ACTIVE_LOCK:  # created and registered at once: no cleaner sees it unregistered
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.{os.getpid()}-",
                                   suffix=".tmp", dir=dirname)
        _ACTIVE.add(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE.discard(tmp)
    _fsync_dir(dirname)


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> None:
    """Atomically write ``text`` (used for ``prefix-symbol.json``)."""
    atomic_write(path, text.encode(encoding))


def read_file_bytes(path, what: str, size: int = -1) -> bytes:
    """The bytes of ``path`` (its first ``size`` bytes, when given); failures name the file
    and what it was meant to be."""
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except FileNotFoundError:
        raise MissingFileError(f"no such {what}: '{path}'") from None
    except OSError as exc:
        raise FileReadError(f"cannot read {what} '{path}': {exc.strerror or exc}") from None
