"""Op parameters: declared once per op, parsed from MXNet's string attributes.

MXNet stores every op attribute as the string Python's ``str()`` gave (``"64"``, ``"True"``,
``"(3, 3)"``), and its C++ parsers also accept ``true``/``1`` and bracketed tuples. A
:class:`ParamSpec` turns such a string into a typed value and says what a bad one is.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..errors import OpAttributeError
from ..json_fields import short

#: a repr short enough for one error line (file attributes can be megabytes)
_clip = partial(short, limit=80)

_REQUIRED = object()


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise ValueError(f"expected a boolean, got {text!r}")


def _parse_int(text: str) -> int:
    value = float(text)
    if value != int(value):
        raise ValueError(f"expected an integer, got {text!r}")
    return int(value)


def _parse_float(text: str) -> float:
    return float(text)


def _parse_tuple(text: str) -> tuple[int, ...]:
    text = text.strip()
    if text in ("", "None"):
        return ()
    value = ast.literal_eval(text)
    if isinstance(value, (int, float)):
        return (int(value),)
    return tuple(int(v) for v in value)


def _parse_float_tuple(text: str) -> tuple[float, ...]:
    value = ast.literal_eval(text.strip() or "()")
    if isinstance(value, (int, float)):
        return (float(value),)
    return tuple(float(v) for v in value)


def _parse_str(text: str) -> str:
    return text


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_optional(text: str):
        return None if text.strip() in ("None", "") else parse(text)

    return parse_optional


PARSERS: dict[str, Callable[[str], Any]] = {
    "bool": _parse_bool,
    "int": _parse_int,
    "float": _parse_float,
    "shape": _parse_tuple,
    "floats": _parse_float_tuple,
    "str": _parse_str,
    "int?": _optional(_parse_int),
    "float?": _optional(_parse_float),
    "shape?": _optional(_parse_tuple),
    "str?": _optional(_parse_str),
    "bool?": _optional(_parse_bool),
}


@dataclass(frozen=True)
class ParamSpec:
    """One op parameter: its name, kind (a key of PARSERS), default and allowed values."""

    name: str
    kind: str
    default: Any = _REQUIRED
    choices: tuple = ()
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def parse(self, text: str, op_name: str, node_name: str):
        try:
            value = PARSERS[self.kind](str(text))
        except (ValueError, SyntaxError, TypeError, OverflowError, RecursionError,
                MemoryError) as exc:  # "1e400" overflows int(); "((((..." the parser
            raise OpAttributeError(
                f"{op_name} node '{node_name}': attribute {self.name}={_clip(text)} is not a "
                f"valid {self.kind} ({_clip(str(exc))})"
            ) from None
        if self.choices and value not in self.choices:
            raise OpAttributeError(
                f"{op_name} node '{node_name}': attribute {self.name}={_clip(text)} must be one of "
                f"{', '.join(map(str, self.choices))}"
            )
        return value


@dataclass(frozen=True)
class Params:
    """Parsed op parameters with named access (``p.num_hidden``); hashable for CSE."""

    values: tuple = field(default=())

    def __getattr__(self, key):
        for name, value in object.__getattribute__(self, "values"):
            if name == key:
                return value
        raise AttributeError(key)

    def as_dict(self) -> dict:
        return dict(self.values)


def param(name: str, kind: str, default: Any = _REQUIRED, choices=(), doc: str = "") -> ParamSpec:
    """Shorthand used by op definitions."""
    return ParamSpec(name, kind, default, tuple(choices), doc)


def parse_params(specs, attrs: dict, op_name: str, node_name: str, extra_ok=()) -> Params:
    """Parse the op attributes of one node; unknown keys and missing required ones raise."""
    known = {spec.name for spec in specs}
    for key in attrs:
        if key.startswith("__") or key in known or key in extra_ok:
            continue
        raise OpAttributeError(
            f"{op_name} node '{node_name}': unknown attribute '{key}'; "
            f"{op_name} takes {', '.join(sorted(known)) or 'no attributes'}"
        )
    values = []
    for spec in specs:
        if spec.name in attrs:
            values.append((spec.name, spec.parse(attrs[spec.name], op_name, node_name)))
        elif spec.required:
            raise OpAttributeError(
                f"{op_name} node '{node_name}': required attribute '{spec.name}' is missing"
            )
        else:
            values.append((spec.name, spec.default))
    return Params(tuple(values))


def attr_string(value) -> str:
    """The string MXNet's Python front end stores for an attribute value."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        value = tuple(value)
    return str(value)
