"""Several object files as one cache payload: a program compiled as separate LLVM modules
(:mod:`codegen.split_compile`) is linked from all of them into one engine.

    MAGIC | uint32 count | count x uint64 size | objects, back to back

A payload without the magic is one plain object (what every single-module compile
stores), so older entries and small libraries read unchanged.
"""

from __future__ import annotations

import struct

from codegen.objcheck import BadObject, check_object

MAGIC = b"SGBUNDLE1\n"
#: more parts than any program has kernels: a larger count is a damaged payload
MAX_PARTS = 1 << 16


def pack(objects: list[bytes]) -> bytes:
    """One object stays itself; several get the bundle header."""
    if len(objects) == 1:
        return objects[0]
    head = MAGIC + struct.pack(f"<I{len(objects)}Q", len(objects), *map(len, objects))
    return head + b"".join(objects)


def unpack(payload: bytes) -> list[bytes]:
    """The objects of ``payload``; BadObject when its sizes do not add up."""
    if not payload.startswith(MAGIC):
        return [payload]
    start = len(MAGIC) + 4
    if len(payload) < start:
        raise BadObject("bundle header truncated")
    (count,) = struct.unpack_from("<I", payload, len(MAGIC))
    if not 1 < count <= MAX_PARTS or len(payload) < start + 8 * count:
        raise BadObject(f"bundle of {count} parts in {len(payload)} bytes")
    sizes = struct.unpack_from(f"<{count}Q", payload, start)
    offset = start + 8 * count
    if offset + sum(sizes) != len(payload):
        raise BadObject(f"bundle parts of {sum(sizes)} bytes in {len(payload) - offset}")
    parts = []
    for size in sizes:
        parts.append(payload[offset: offset + size])
        offset += size
    return parts


def check(payload: bytes, symbols=()) -> list[bytes]:
    """The objects of ``payload``, each well formed, together defining ``symbols``."""
    parts = unpack(payload)
    defined: set = set()
    for part in parts:
        defined |= check_object(part)
    missing = [s for s in symbols if s.encode() not in defined]
    if missing:
        raise BadObject(f"does not define {missing[:3]}")
    return parts
