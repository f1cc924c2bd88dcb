"""Checked reads of the fields of a symbol JSON document.

A model file is user input: every field is checked for its type and range before it is
used, so a damaged or hostile file gives a SerializationError that says which node and
which field is wrong, never a TypeError from deep inside, a huge allocation, or a shape
that sizes buffers wrongly much later.
"""

from __future__ import annotations

import math
import re

from .errors import SerializationError

#: Longest attribute value or name accepted; MXNet's own are a few dozen characters.
MAX_TEXT = 1024
#: Longest op name (registered names are identifiers of a few dozen characters).
MAX_OP = 100
#: Largest element count a shape may describe (numpy's limit for any array).
MAX_ELEMENTS = 2**63 - 1
_SHAPE_RE = re.compile(r"^\s*[(\[]\s*(-?\d+\s*(,\s*-?\d+\s*)*,?)?\s*[)\]]\s*$")


def short(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, so a huge field cannot flood a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def need_list(value, where: str) -> list:
    if not isinstance(value, list):
        raise SerializationError(f"{where} must be a list, got {short(value)}")
    return value


def need_dict(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise SerializationError(f"{where} must be an object, got {short(value)}")
    return value


def need_text(value, where: str) -> str:
    if not isinstance(value, str):
        raise SerializationError(f"{where} must be a string, got {short(value)}")
    if len(value) > MAX_TEXT:
        raise SerializationError(f"{where} is {len(value)} characters long (at most "
                                 f"{MAX_TEXT}): {short(value)}")
    return value


def attr_text(value, where: str) -> str:
    """An attribute value: MXNet writes strings; plain numbers and booleans are accepted
    as the C++ reader's ``str()`` of them, anything else is an error."""
    if isinstance(value, float) and not math.isfinite(value):
        raise SerializationError(f"{where} is {value}, not a finite number")
    if isinstance(value, (bool, int, float)):
        value = str(value)
    return need_text(value, where)


def index_in(value, size: int, where: str, what: str) -> int:
    """An integer index with ``0 <= value < size``."""
    if not is_int(value):
        raise SerializationError(f"{where}: {what} must be an integer, got {short(value)}")
    if not 0 <= value < size:
        raise SerializationError(f"{where}: {what} {value} is out of range (0..{size - 1})"
                                 if size else f"{where}: {what} {value} is out of range")
    return value


def shape_attr(text: str, where: str) -> tuple[int, ...]:
    """``__shape__``: a tuple of integers >= 0 (0 means unknown, as in MXNet's legacy mode)."""
    if not _SHAPE_RE.match(text):
        raise SerializationError(f"{where}: __shape__={short(text)} is not a tuple of integers")
    dims = tuple(int(d) for d in re.findall(r"-?\d+", text))
    for axis, dim in enumerate(dims):
        if dim < 0:
            raise SerializationError(f"{where}: __shape__={short(text)} has dimension {axis} = "
                                     f"{dim}; dimensions are >= 1 (0 means unknown)")
    count = 1
    for dim in dims:
        count *= max(dim, 1)
    if count > MAX_ELEMENTS:
        raise SerializationError(f"{where}: __shape__={short(text)} describes {count} "
                                 "elements, more than any array can hold")
    return dims


def dtype_attr(text: str, where: str, codes: dict) -> int:
    """``__dtype__``: one of MXNet's type codes."""
    try:
        code = int(text)
    except ValueError:
        code = None
    if code not in codes:
        known = ", ".join(f"{c} ({n})" for c, n in sorted(codes.items()))
        raise SerializationError(f"{where}: __dtype__={short(text)} is not a dtype code; "
                                 f"known codes: {known}")
    return code


def multiplier_attr(text: str, where: str, key: str) -> float:
    """``__lr_mult__`` / ``__wd_mult__``: a finite number."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise SerializationError(f"{where}: {key}={short(text)} is not a finite number")
    return value
