"""Argument parsing helpers shared by the CLI commands (shapes, symbol files)."""

from __future__ import annotations


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``data=32,16`` or ``data=(32,16)`` -> ('data', (32, 16))."""
    name, sep, dims = text.partition("=")
    if not sep or not name:
        raise ValueError(f"--shape {text!r}: expected NAME=D1,D2,... (e.g. data=32,16)")
    try:
        shape = tuple(int(d) for d in dims.strip("()[] ").split(",") if d.strip())
    except ValueError:
        raise ValueError(f"--shape {text!r}: dimensions must be integers") from None
    if not shape or any(d <= 0 for d in shape):
        raise ValueError(f"--shape {text!r}: dimensions must be positive integers")
    return name, shape


def shape_dict(items) -> dict:
    return dict(parse_shape(item) for item in (items or []))


def add_shape_arg(parser, required=False):
    parser.add_argument("--shape", action="append", metavar="NAME=D1,D2,...",
                        required=required,
                        help="input shape, repeatable (e.g. --shape data=32,16)")


def load_symbol(path: str):
    """Read a ``*-symbol.json`` file with a clear message for missing or broken files."""
    import symgraph as sg

    # a missing or unreadable file is a FileReadError naming it, bad JSON a SerializationError
    return sg.sym.load(path)


def check_shapes(symbol, shapes: dict) -> None:
    """Unknown input names are a user error, not an inference failure deep inside."""
    names = symbol.list_arguments() + symbol.list_auxiliary_states()
    unknown = [n for n in shapes if n not in names]
    if unknown:
        raise ValueError(f"--shape names {unknown} are not inputs of the symbol "
                         f"(inputs: {', '.join(symbol.list_inputs())})")
