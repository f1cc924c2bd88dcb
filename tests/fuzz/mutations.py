"""Hypothesis strategies that damage real files the way disks, tools and attackers do.

Binary mutations work on raw bytes (truncate, flip bits, overwrite a field with an extreme
integer, insert or delete a run); JSON mutations parse the document, pick any value in it
and put raw text in its place (wrong types, huge or non-finite numbers, deep nesting, very
long strings, MXNet-style attribute strings that are wrong), so both the JSON layer and
everything that interprets the values are reached.
"""

from __future__ import annotations

import json
import os
import struct
from collections import Counter, defaultdict

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: loader -> Counter(tried, rejected, loaded, escaped), printed by conftest at the end.
TALLY: dict = defaultdict(Counter)
EXAMPLES = int(os.environ.get("SYMGRAPH_FUZZ_EXAMPLES", "2000"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

EXTREME_INTS = [0, 1, 2, 3, 7, 12, 13, 32, 33, 255, 0x112, 0xF993FAC8, 0xF993FAC9, 0xF993FACA,
                2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**40, 2**62, 2**63 - 1, 2**64 - 1,
                -1, -2, -2**31, -2**63]

# Raw JSON text put in place of a value.
RAW_VALUES = [
    "null", "true", "false", "0", "-1", "1", "2", "1.5", "-0.0", "1e400", "-1e400", "NaN",
    "Infinity", "-Infinity", "4611686018427387904", "18446744073709551616", "9" * 5000,
    "[]", "{}", '""', '"x"', "[0]", "[0, 0]", "[-1, 0, 0]", "[0, -1, 0]", "[99999, 0, 0]",
    "[0, 99999, 0]", "[1.5, 0, 0]", '["0", "0", "0"]', "[null, null]", '{"op": "null"}',
    "[" * 5000 + "]" * 5000, '{"a": ' * 3000 + "1" + "}" * 3000, '"' + "x" * 200000 + '"',
]
# Attribute strings MXNet files carry, made wrong.
ATTR_STRINGS = [
    "1e400", "-1e400", "-1", "0", "1", "nan", "inf", "-inf", "True", "true", "None", "",
    "(0, 4611686018427387904)", "(-3, 5)", "(0, 0)", "()", "(,)", "(2, 3", "[1, [2]]",
    "((1, 2),)", "(1e400, 2)", "(4611686018427387904, 4611686018427387904)", "\x00", "\udcff",
    "1" * 5000, "x" * 100000, "(" * 2000 + ")" * 2000, "[" * 2000 + "]" * 2000, "relu", "12",
    "99", "-99", "0.5", "1,2", "(1.5,)", "__import__('os')",
]

_U = {4: "<I", 8: "<Q"}


def _pack(value: int, width: int) -> bytes:
    """Two's-complement little-endian ``value`` in ``width`` bytes."""
    return struct.pack(_U[width], value % (1 << (8 * width)))


_position = st.integers(min_value=0, max_value=2**24)
_binary_op = st.one_of(
    st.tuples(st.just("truncate"), _position),
    st.tuples(st.just("flip"), _position, st.integers(0, 7)),
    st.tuples(st.just("byte"), _position, st.integers(0, 255)),
    st.tuples(st.just("int"), _position, st.sampled_from([4, 8]), st.sampled_from(EXTREME_INTS)),
    st.tuples(st.just("insert"), _position, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), _position, st.integers(1, 64)),
)
binary_mutations = st.lists(_binary_op, min_size=1, max_size=4)


def apply_binary(data: bytes, ops) -> bytes:
    buf = bytearray(data)
    for op in ops:
        if not buf:
            break
        pos = op[1] % len(buf)
        if op[0] == "truncate":
            del buf[pos:]
        elif op[0] == "flip":
            buf[pos] ^= 1 << op[2]
        elif op[0] == "byte":
            buf[pos] = op[2]
        elif op[0] == "int":
            width = op[2]
            pos -= pos % 4
            buf[pos:pos + width] = _pack(op[3], width)
        elif op[0] == "insert":
            buf[pos:pos] = op[2]
        else:
            del buf[pos:pos + op[2]]
    return bytes(buf)


def _paths(value, path=()):
    """Every (path) to a value inside a parsed JSON document, the root excluded."""
    out = []
    if isinstance(value, dict):
        for key, item in value.items():
            out.append(path + (key,))
            out.extend(_paths(item, path + (key,)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out.append(path + (i,))
            out.extend(_paths(item, path + (i,)))
    return out


_MARK = "\u2603MUTATED\u2603"
_json_op = st.one_of(
    st.tuples(st.just("raw"), st.integers(0, 2**20), st.sampled_from(RAW_VALUES)),
    st.tuples(st.just("attr"), st.integers(0, 2**20), st.sampled_from(ATTR_STRINGS)),
    st.tuples(st.just("drop"), st.integers(0, 2**20)),
    st.tuples(st.just("int"), st.integers(0, 2**20), st.sampled_from(EXTREME_INTS)),
)
json_mutations = st.lists(_json_op, min_size=1, max_size=3)


def apply_json(text: str, ops) -> bytes:
    """Apply value-level mutations; the result is bytes (it may be invalid JSON)."""
    doc = json.loads(text)
    raws = []
    for op in ops:
        paths = _paths(doc)
        if not paths:
            break
        path = paths[op[1] % len(paths)]
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        last = path[-1]
        if op[0] == "drop":
            del parent[last]
        elif op[0] == "attr":
            parent[last] = op[2]
        elif op[0] == "int":
            parent[last] = op[2]
        else:
            parent[last] = f"{_MARK}{len(raws)}"
            raws.append(op[2])
    out = json.dumps(doc, indent=1)
    for i, raw in enumerate(raws):
        out = out.replace(json.dumps(f"{_MARK}{i}"), raw, 1)
    return out.encode("utf-8", "surrogatepass")


any_file = st.one_of(
    st.tuples(st.just("binary"), binary_mutations),
    st.tuples(st.just("json"), json_mutations),
)
