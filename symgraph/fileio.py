"""Crash-safe file writes: readers see the old file or the new one, never a torn one.

A checkpoint written while the process is killed must not destroy the previous checkpoint,
so every file symgraph writes goes through :func:`atomic_write`: the bytes go to a temporary
file in the *same* directory (``os.replace`` is only atomic within one file system), the temp
file is fsync'ed, renamed over the target, and the directory is fsync'ed so the rename itself
survives a power cut. On any error the temp file is removed and the old file is untouched.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import BinaryIO

__all__ = ["atomic_write", "atomic_write_text"]


def _read_umask() -> int:
    """The process umask, so new files get the same mode ``open(path, 'w')`` would give."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


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
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=dirname)
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
    _fsync_dir(dirname)


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> None:
    """Atomically write ``text`` (used for ``prefix-symbol.json``)."""
    atomic_write(path, text.encode(encoding))
