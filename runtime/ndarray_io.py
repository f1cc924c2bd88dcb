"""``nd.save`` / ``nd.load``: MXNet's binary NDArray-list format, so ``.params`` files move
between symgraph and MXNet 1.x (and third-party readers such as Netron) unchanged.

Layout (little-endian, see docs/formats.md and mxnet_compat.md §14.2)::

    uint64 0x112, uint64 0, uint64 N, N records, uint64 K, K x (uint64 len, UTF-8 name)

Each record is written in the V2 form: ``uint32 0xF993FAC9, int32 stype=0, int32 ndim,
int64 dims[ndim], int32 dev_type=1, int32 dev_id=0, int32 dtype code, raw C-order data``.
Reading also accepts V1 records (no stype), V3 records (numpy-shape mode: ndim -1 is "none",
ndim 0 a scalar) and the pre-V1 legacy layout (uint32 ndim and dims). A "none" record (an
empty NDArray handle) loads as ``None``, and ``None`` saves as one.

The data are parsed with ``np.frombuffer`` and copied once, so every loaded array is aligned,
writable and owns its memory. Nothing is ever pickled.
"""

from __future__ import annotations

import io
import os
import struct

import numpy as np

from runtime.atomic import atomic_write
from symgraph.errors import SerializationError
from symgraph.fileio import read_file_bytes

__all__ = ["save", "load", "dumps", "loads", "read_token", "DTYPE_CODES", "LIST_MAGIC"]

LIST_MAGIC = 0x112
V1_MAGIC = 0xF993FAC8
V2_MAGIC = 0xF993FAC9
V3_MAGIC = 0xF993FACA
CPU_DEV_TYPE = 1
BFLOAT16_CODE = 12
_LEGACY_MAX_NDIM = 32
#: numpy's limit on an array's byte size (and so on any shape a file may describe).
_MAX_BYTES = 2**63 - 1
_STYPE_NAMES = {-1: "undefined", 0: "default", 1: "row_sparse", 2: "csr"}

#: mshadow type flag -> numpy dtype (12, bfloat16, has no numpy equivalent).
DTYPE_CODES = {
    0: np.dtype("<f4"), 1: np.dtype("<f8"), 2: np.dtype("<f2"), 3: np.dtype("u1"),
    4: np.dtype("<i4"), 5: np.dtype("i1"), 6: np.dtype("<i8"), 7: np.dtype("?"),
    8: np.dtype("<i2"), 9: np.dtype("<u2"), 10: np.dtype("<u4"), 11: np.dtype("<u8"),
}
_CODE_OF = {(dt.kind, dt.itemsize): code for code, dt in DTYPE_CODES.items()}

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_HEADER = struct.Struct("<QQQ")


# ----------------------------------------------------------------------------- writing
def _as_numpy(value):
    """Accept numpy arrays, array-likes and NDArray-like objects with ``asnumpy()``."""
    if value is None or isinstance(value, np.ndarray):
        return value
    if hasattr(value, "asnumpy"):
        return np.asarray(value.asnumpy())
    return np.asarray(value)


def _normalize(data):
    """Split ``data`` into (arrays, names-or-None) the way ``mx.nd.save`` does."""
    if isinstance(data, dict):
        for key in data:
            if not isinstance(key, str):
                raise SerializationError(f"nd.save: dict keys must be str, got {key!r}")
        return [_as_numpy(v) for v in data.values()], list(data.keys())
    if isinstance(data, (list, tuple)):
        return [_as_numpy(v) for v in data], None
    if isinstance(data, np.ndarray) or hasattr(data, "asnumpy"):
        return [_as_numpy(data)], None
    raise SerializationError(
        "nd.save: data must be an array, a list of arrays or a dict str -> array, "
        f"got {type(data).__name__}")


def _dtype_code(arr: np.ndarray, where: str) -> int:
    code = _CODE_OF.get((arr.dtype.kind, arr.dtype.itemsize))
    if code is None:
        raise SerializationError(
            f"nd.save: {where} has dtype {arr.dtype}, which the MXNet format can't store "
            "(supported: float16/32/64, int8/16/32/64, uint8/16/32/64, bool)")
    return code


def _record_header(arr: np.ndarray | None, code: int) -> bytes:
    """The V2 record up to (not including) the raw data."""
    if arr is None:
        return struct.pack("<Iii", V2_MAGIC, 0, 0)
    shape = arr.shape if arr.ndim else (1,)
    return struct.pack(f"<Iii{len(shape)}qiii", V2_MAGIC, 0, len(shape), *shape,
                       CPU_DEV_TYPE, 0, code)


def _write_records(f, arrays, names, token: int = 0) -> None:
    f.write(_HEADER.pack(LIST_MAGIC, token, len(arrays)))
    for i, arr in enumerate(arrays):
        where = f"array {names[i]!r}" if names else f"array {i}"
        code = 0 if arr is None else _dtype_code(arr, where)
        f.write(_record_header(arr, code))
        if arr is not None and arr.size:
            data = np.ascontiguousarray(arr, dtype=DTYPE_CODES[code])
            f.write(memoryview(data).cast("B"))
    f.write(_U64.pack(len(names) if names else 0))
    for name in names or ():
        raw = name.encode("utf-8")
        f.write(_U64.pack(len(raw)))
        f.write(raw)


def dumps(data) -> bytes:
    """The bytes :func:`save` would write (for embedding and tests)."""
    arrays, names = _normalize(data)
    buf = io.BytesIO()
    _write_records(buf, arrays, names)
    return buf.getvalue()


def save(fname, data, token: int = 0) -> None:
    """Save one array (as a one-element list), a list, or a dict str->array; atomically.

    0-dim arrays are stored with shape ``(1,)`` because V2 reads ndim 0 as "none".
    ``token`` goes into the header's reserved word, which MXNet reads and ignores
    (checkpoints use it to pair params with optimizer states; see docs/formats.md).
    """
    if not 0 <= token < 2**64:
        raise SerializationError(f"nd.save: token {token} does not fit in 64 bits")
    arrays, names = _normalize(data)
    atomic_write(fname, lambda f: _write_records(f, arrays, names, token))


def read_token(fname, what: str = "NDArray file") -> int:
    """The reserved header word of an NDArray file (0 in files MXNet writes)."""
    fname = os.fspath(fname)
    head = read_file_bytes(fname, what, _HEADER.size)
    cur = _Cursor(head, f"{what} {fname!r}")
    magic, token, _count = cur.unpack(_HEADER, "the file header")
    if magic != LIST_MAGIC:
        raise cur.fail(f"not an MXNet NDArray file: header magic 0x{magic:X}", 0)
    return token


# ----------------------------------------------------------------------------- reading
class _Cursor:
    """Bounds-checked little-endian reads; errors name the source and the offset."""

    __slots__ = ("buf", "pos", "source")

    def __init__(self, buf, source: str):
        self.buf = buf
        self.pos = 0
        self.source = source

    def fail(self, message: str, at: int | None = None) -> SerializationError:
        where = self.pos if at is None else at
        return SerializationError(f"{self.source}: {message} (at byte offset {where})")

    def need(self, n: int, what: str) -> int:
        start = self.pos
        left = len(self.buf) - start
        if n > left:
            raise self.fail(f"file is truncated: need {n} bytes for {what}, only {left} left")
        self.pos = start + n
        return start

    def unpack(self, fmt: struct.Struct, what: str):
        return fmt.unpack_from(self.buf, self.need(fmt.size, what))

    def dims(self, ndim: int, code: str, what: str) -> tuple[int, ...]:
        size = 8 if code == "q" else 4
        start = self.need(ndim * size, what)
        return struct.unpack_from(f"<{ndim}{code}", self.buf, start)


_CTX_TYPE = struct.Struct("<iii")


def _read_shape(cur: _Cursor, magic: int, what: str):
    """Return the shape tuple, or None for a "none" record."""
    if magic in (V1_MAGIC, V2_MAGIC, V3_MAGIC):
        (ndim,) = cur.unpack(_I32, f"ndim of {what}")
        if magic == V3_MAGIC and ndim == -1 or magic != V3_MAGIC and ndim == 0:
            return None
        if ndim < 0 or ndim > _LEGACY_MAX_NDIM:
            raise cur.fail(f"{what} has invalid ndim {ndim}", cur.pos - 4)
        shape = cur.dims(ndim, "q", f"shape of {what}")
    else:
        ndim = magic
        if ndim > _LEGACY_MAX_NDIM:
            raise cur.fail(f"{what} starts with unknown record magic 0x{magic:08X}", cur.pos - 4)
        if ndim == 0:
            return None
        shape = cur.dims(ndim, "I", f"shape of {what}")
    if any(d < 0 for d in shape):
        raise cur.fail(f"{what} has a negative dimension in shape {shape}")
    return shape


def _read_record(cur: _Cursor, index: int):
    what = f"array {index}"
    start = cur.pos
    (magic,) = cur.unpack(_U32, f"record magic of {what}")
    if magic in (V2_MAGIC, V3_MAGIC):
        (stype,) = cur.unpack(_I32, f"storage type of {what}")
        if stype not in (-1, 0):
            name = _STYPE_NAMES.get(stype, f"unknown ({stype})")
            raise cur.fail(f"{what} has {name} storage; only dense arrays can be loaded", start)
    shape = _read_shape(cur, magic, what)
    if shape is None:
        return None
    dev_type, _dev_id, code = cur.unpack(_CTX_TYPE, f"context and dtype of {what}")
    if code == BFLOAT16_CODE:
        raise cur.fail(f"{what} is bfloat16 (dtype code 12), which numpy can't represent")
    dtype = DTYPE_CODES.get(code)
    if dtype is None:
        raise cur.fail(f"{what} has unknown dtype code {code}", cur.pos - 4)
    count, span = 1, dtype.itemsize
    for d in shape:
        count *= d
        span *= max(d, 1)
    if span > _MAX_BYTES:
        raise cur.fail(f"{what} has shape {tuple(shape)}, larger than any array can be")
    nbytes = count * dtype.itemsize
    offset = cur.need(nbytes, f"{dtype.name} data of {what} with shape {tuple(shape)}")
    view = np.frombuffer(cur.buf, dtype=dtype, count=count, offset=offset).reshape(shape)
    return view.astype(dtype.newbyteorder("="), copy=True)


def _read_names(cur: _Cursor, count: int) -> list[str]:
    (num_names,) = cur.unpack(_U64, "the number of names")
    if num_names not in (0, count):
        raise cur.fail(f"file holds {count} arrays but {num_names} names", cur.pos - 8)
    names = []
    for i in range(num_names):
        (length,) = cur.unpack(_U64, f"length of name {i}")
        start = cur.need(length, f"name {i}")
        try:
            names.append(bytes(cur.buf[start:start + length]).decode("utf-8"))
        except UnicodeDecodeError as err:
            raise cur.fail(f"name {i} is not valid UTF-8 ({err})", start) from None
    return names


def loads(buf, source: str = "<bytes>"):
    """Parse NDArray-list bytes: a list if the file has no names, else a dict."""
    cur = _Cursor(memoryview(buf).cast("B") if not isinstance(buf, bytes) else buf, source)
    magic, _reserved, count = cur.unpack(_HEADER, "the file header")
    if magic != LIST_MAGIC:
        raise cur.fail(f"not an MXNet NDArray file: header magic 0x{magic:X}, "
                       f"expected 0x{LIST_MAGIC:X}", 0)
    arrays = [_read_record(cur, i) for i in range(count)]
    names = _read_names(cur, count)
    if not names:
        return arrays
    return dict(zip(names, arrays))


def load(fname, what: str = "NDArray file"):
    """Load a file written by ``mx.nd.save`` / :func:`save` (list or dict of numpy arrays);
    ``what`` names the file's role in errors ("params file", "optimizer states file")."""
    fname = os.fspath(fname)
    data = read_file_bytes(fname, what)
    return loads(data, source=f"{what} {fname!r}")
