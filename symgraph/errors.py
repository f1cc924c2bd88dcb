"""Exception classes: one family, so users can catch ``sg.SymgraphError`` for everything.

Each subclass also inherits the builtin exception an MXNet user would expect to catch
(``ValueError`` for bad shapes and attributes, ``TypeError`` for dtypes), so code that was
written against MXNet's Python errors keeps working.
"""

from __future__ import annotations


class SymgraphError(Exception):
    """Base class of every error raised by symgraph, codegen and runtime."""


class GraphError(SymgraphError, ValueError):
    """A malformed graph: cycle, duplicate argument name, bad composition."""


class ShapeError(SymgraphError, ValueError):
    """Shapes that contradict an op's rule or each other."""


class DTypeError(SymgraphError, TypeError):
    """Element types that contradict an op's rule or each other."""


class OpAttributeError(SymgraphError, ValueError):
    """A missing, unknown or malformed op attribute (MXNet calls them params)."""


class UnknownOpError(SymgraphError, ValueError):
    """An op name that is not registered (for example in a JSON file)."""


class SerializationError(SymgraphError, ValueError):
    """A symbol JSON or params file that cannot be read."""


class CompileError(SymgraphError, RuntimeError):
    """Lowering or LLVM compilation failed; the message says which kernel and where."""


class ExecutorError(SymgraphError, ValueError):
    """Bad input to an executor: wrong name, shape, dtype, or a missing head gradient."""


class NotDifferentiableError(SymgraphError, ValueError):
    """A gradient was requested through an op that has none."""


def format_shape(shape) -> str:
    """Render a shape the way MXNet prints it, ``(100, 10)``; unknown dims as ``?``."""
    if shape is None:
        return "unknown"
    dims = ["?" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


# ---- files (loaders, checkpoints) ----------------------------------------------------------
class FileReadError(SerializationError, OSError):
    """A model, params or states file that cannot be opened or read at all (missing, a
    folder, no permission); also an ``OSError``, as ``open`` would raise."""


class MissingFileError(FileReadError, FileNotFoundError):
    """A file that does not exist (also a ``FileNotFoundError``)."""


class CheckpointMismatchError(SerializationError):
    """A ``.params`` and ``.states`` pair that come from two different saves."""


# ---- bind-time checks (Module parameters, input names, memory) ----------------------------
class ParameterError(SymgraphError, ValueError):
    """Parameter values that do not fit the bound symbol: a name it does not have (without
    ``allow_extra``) or a value missing where nothing initializes it."""


class BindError(SymgraphError, ValueError):
    """Inputs given to bind (data/label names and shapes) that contradict the module."""


class MemoryLimitError(SymgraphError, MemoryError):
    """A graph, batch or parameter larger than the memory limit, refused before anything
    is allocated or compiled (``sg.set_memory_limit`` / ``SYMGRAPH_MEMORY_LIMIT``)."""
