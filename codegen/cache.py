"""On-disk cache of compiled object code.

An entry is ``MAGIC + sha256(payload) + payload`` so a truncated or corrupted file is
detected and rebuilt instead of being handed to the JIT linker (which could crash).
Writes go to a temp file, are fsynced and renamed, so readers never see partial files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger("codegen.cache")
MAGIC = b"SGOBJ1\n"
_DIGEST = 32


def cache_dir() -> Path:
    env = os.environ.get("SYMGRAPH_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "symgraph"


def cache_key(parts: dict[str, str]) -> str:
    """sha256 over named parts; each part's own digest is logged to explain misses."""
    h = hashlib.sha256()
    for name in sorted(parts):
        value = str(parts[name]).encode()
        log.debug("cache key part %s = %s", name, hashlib.sha256(value).hexdigest()[:16])
        h.update(name.encode() + b"\0" + hashlib.sha256(value).digest())
    return h.hexdigest()


def entry_path(key: str) -> Path:
    return cache_dir() / f"{key}.o"


def load(key: str) -> bytes | None:
    """Object bytes of a valid entry, or None (missing, truncated or corrupt)."""
    path = entry_path(key)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head = len(MAGIC) + _DIGEST
    payload = data[head:]
    if data[: len(MAGIC)] != MAGIC or hashlib.sha256(payload).digest() != data[len(MAGIC):head]:
        log.warning("corrupt cache entry %s: rebuilding", path)
        return None
    return payload


def store(key: str, payload: bytes) -> None:
    """Atomically write an entry; failures only cost a future rebuild, so are logged."""
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".o")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(MAGIC + hashlib.sha256(payload).digest() + payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, entry_path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.warning("cannot write cache entry in %s: %s", directory, exc)
