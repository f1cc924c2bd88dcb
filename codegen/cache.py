"""On-disk cache of compiled object code and compile results, bound to their key and
bounded in size.

An entry (``<key>.o``: object code; ``<key>.result``: a whole compile result, see
``codegen/result_cache.py``) is::

    MAGIC | uint32 len(key) | key | uint64 len(payload) | mac | payload

where ``mac`` is HMAC-SHA256 over everything before it plus the payload, keyed with a
random secret kept in the cache folder (``.secret``, mode 0600). On load the stored key
must equal the requested one (so another graph's entry copied under this name is refused),
the lengths must add up, the MAC must match (so garbage with a recomputed plain checksum is
refused), and the payload must pass :func:`codegen.objcheck.check_object` (every offset the
JIT linker follows is in bounds, the wanted symbols are defined). Any mismatch means the
entry is removed and rebuilt; nothing unchecked reaches LLVM. Each kind has its own magic,
so an entry of one kind renamed to the other is refused too.

The folder is capped (``SYMGRAPH_CACHE_MAX_BYTES``, default 1 GiB, or :func:`set_max_bytes`):
after each store the least recently used entries (a hit refreshes an entry's mtime) are
evicted until the total fits. Writes go to a temp file, are fsynced and renamed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import struct
import tempfile
import threading
import time
from pathlib import Path

from codegen import bundle
from codegen.objcheck import BadObject

log = logging.getLogger("codegen.cache")
MAGIC = b"SGOBJ2\n"
#: entry kind -> (file suffix, magic)
KINDS = {"object": (".o", MAGIC), "result": (".result", b"SGRES1\n")}
_DIGEST = 32
_SECRET = ".secret"
_TMP_PREFIX = ".tmp-"
_STALE_TMP_S = 3600.0
DEFAULT_MAX_BYTES = 1 << 30
_max_bytes: int | None = None
_LOCK = threading.Lock()


def cache_dir() -> Path:
    env = os.environ.get("SYMGRAPH_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "symgraph"


def max_bytes() -> int:
    """The size cap: :func:`set_max_bytes`, else ``SYMGRAPH_CACHE_MAX_BYTES``, else 1 GiB."""
    if _max_bytes is not None:
        return _max_bytes
    text = os.environ.get("SYMGRAPH_CACHE_MAX_BYTES")
    if text:
        try:
            return max(int(float(text)), 0)
        except ValueError:
            log.warning("SYMGRAPH_CACHE_MAX_BYTES=%r is not a number; using 1 GiB", text)
    return DEFAULT_MAX_BYTES


def set_max_bytes(limit: int | None) -> None:
    """Cap the cache folder at ``limit`` bytes (0 keeps nothing; None: back to the env)."""
    global _max_bytes
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ValueError(f"cache size limit must be an integer >= 0, got {limit!r}")
    _max_bytes = limit


def cache_key(parts: dict[str, str]) -> str:
    """sha256 over named parts; each part's own digest is logged to explain misses."""
    h = hashlib.sha256()
    for name in sorted(parts):
        value = str(parts[name]).encode()
        log.debug("cache key part %s = %s", name, hashlib.sha256(value).hexdigest()[:16])
        h.update(name.encode() + b"\0" + hashlib.sha256(value).digest())
    return h.hexdigest()


def entry_path(key: str, kind: str = "object") -> Path:
    return cache_dir() / f"{key}{KINDS[kind][0]}"


# ---------------------------------------------------------------------------- the secret
def _secret(create: bool) -> bytes | None:
    path = cache_dir() / _SECRET
    try:
        data = path.read_bytes()
        if len(data) == _DIGEST:
            return data
    except OSError:
        pass
    if not create:
        return None
    data = os.urandom(_DIGEST)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TMP_PREFIX, suffix=".key")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)  # first writer wins; a concurrent one reads the winner's
        except FileExistsError:
            winner = _secret(create=False)
            if winner is not None:
                return winner
            os.replace(tmp, path)  # a damaged secret: replace it (old entries rebuild)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return data


def _frame(key: str, payload: bytes, magic: bytes = MAGIC) -> bytes:
    raw = key.encode("ascii")
    return magic + struct.pack("<I", len(raw)) + raw + struct.pack("<Q", len(payload))


# ---------------------------------------------------------------------------- load / store
def _refuse(path: Path, why: str) -> None:
    log.warning("cache entry %s refused (%s): rebuilding", path, why)
    path.unlink(missing_ok=True)


def load(key: str, symbols=()) -> bytes | None:
    """Object bytes of a valid entry for ``key`` defining ``symbols``, or None (the
    payload may be a bundle of several objects: :mod:`codegen.bundle`)."""
    path = entry_path(key)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    payload, why = _unpack(data, key)
    if payload is not None:
        try:
            bundle.check(payload, symbols)
        except BadObject as exc:
            payload, why = None, f"not a usable object: {exc}"
    if payload is None:
        _refuse(path, why)
        return None
    try:
        os.utime(path)  # least recently used goes first
    except OSError:
        pass
    return payload


def load_result(key: str) -> bytes | None:
    """Payload of a valid compile-result entry for ``key`` (its MAC checked), or None;
    a refused entry is removed. What the payload says is checked by its reader."""
    path = entry_path(key, "result")
    try:
        data = path.read_bytes()
    except OSError:
        return None
    payload, why = _unpack(data, key, KINDS["result"][1])
    if payload is None:
        _refuse(path, why)
        return None
    try:
        os.utime(path)
    except OSError:
        pass
    return payload


def refuse_result(key: str, why: str) -> None:
    """Remove a result entry whose payload its reader refused (it is rebuilt)."""
    _refuse(entry_path(key, "result"), why)


def _unpack(data: bytes, key: str, magic: bytes = MAGIC):
    """(payload, None) for an entry bound to ``key`` with a valid MAC, else (None, why)."""
    head = len(magic) + 4
    if data[: len(magic)] != magic or len(data) < head:
        return None, "unknown format"
    (key_len,) = struct.unpack_from("<I", data, len(magic))
    stored = data[head: head + key_len]
    if stored != key.encode("ascii"):
        return None, f"it holds the entry of key {stored[:16].decode('ascii', 'replace')}..."
    start = head + key_len + 8 + _DIGEST
    if len(data) < start:
        return None, "truncated"
    (size,) = struct.unpack_from("<Q", data, head + key_len)
    payload = data[start:]
    if size != len(payload):
        return None, f"truncated: {len(payload)} of {size} bytes"
    secret = _secret(create=False)
    mac = data[start - _DIGEST: start]
    if secret is None or not hmac.compare_digest(
            mac, hmac.new(secret, data[: start - _DIGEST] + payload, "sha256").digest()):
        return None, "checksum mismatch"
    return payload, None


def store(key: str, payload: bytes, kind: str = "object") -> None:
    """Atomically write an entry, then evict down to the cap; failures only cost a future
    rebuild, so they are logged."""
    directory = cache_dir()
    suffix, magic = KINDS[kind]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        secret = _secret(create=True)
        frame = _frame(key, payload, magic)
        mac = hmac.new(secret, frame + payload, "sha256").digest()
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=_TMP_PREFIX, suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(frame + mac + payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, entry_path(key, kind))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        evict(keep=entry_path(key, kind))
    except OSError as exc:
        log.warning("cannot write cache entry in %s: %s", directory, exc)


# ---------------------------------------------------------------------------- size, CLI
def _kind_of(name: str) -> str | None:
    for kind, (suffix, _) in KINDS.items():
        if name.endswith(suffix):
            return kind
    return None


def entries() -> list[os.DirEntry]:
    """Entries of every kind (object code and compile results)."""
    try:
        return [e for e in os.scandir(cache_dir()) if _kind_of(e.name)
                and not e.name.startswith(".") and e.is_file()]
    except OSError:
        return []


def evict(keep: Path | None = None) -> int:
    """Remove least recently used entries until the folder fits the cap; return bytes
    freed. Temp files of killed writers older than an hour go too."""
    limit, freed = max_bytes(), 0
    with _LOCK:
        _clean_temps()
        found = []
        for e in entries():
            try:
                st = e.stat()
            except OSError:
                continue
            found.append((st.st_mtime, st.st_size, Path(e.path)))
        total = sum(size for _, size, _ in found)
        for _, size, path in sorted(found):
            if total <= limit:
                break
            if keep is not None and path == keep and limit >= size:
                continue
            path.unlink(missing_ok=True)
            total, freed = total - size, freed + size
    if freed:
        log.info("compile cache: evicted %d bytes to stay under %d", freed, limit)
    return freed


def _clean_temps() -> None:
    now = time.time()
    try:
        for e in os.scandir(cache_dir()):
            if e.name.startswith(_TMP_PREFIX):
                try:
                    if now - e.stat().st_mtime > _STALE_TMP_S:
                        os.unlink(e.path)
                except OSError:
                    pass
    except OSError:
        pass


def info() -> dict:
    """What ``symgraph cache info`` prints."""
    sizes, kinds = [], dict.fromkeys(KINDS, 0)
    for e in entries():
        try:
            sizes.append(e.stat().st_size)
        except OSError:
            continue
        kinds[_kind_of(e.name)] += 1
    return {"directory": str(cache_dir()), "entries": len(sizes), "bytes": sum(sizes),
            "max_bytes": max_bytes(), "kinds": kinds}


def clear() -> tuple[int, int]:
    """Remove every entry (the secret stays); return (entries, bytes) removed."""
    count = size = 0
    with _LOCK:
        for e in entries():
            try:
                nbytes = e.stat().st_size
                os.unlink(e.path)
            except OSError:
                continue
            count, size = count + 1, size + nbytes
    return count, size
