"""symgraph: MXNet-1.x-style symbolic graphs, compiled to native code through llvmlite.

``import symgraph as sg`` is the one door: ``sg.sym`` (graphs), ``sg.mod`` (Module),
``sg.io``, ``sg.init``, ``sg.optimizer``, ``sg.lr_scheduler``, ``sg.metric``, ``sg.callback``,
``sg.model``, ``sg.viz``, ``sg.random``, ``sg.cpu()``. The symbolic core (this package's
modules) never imports codegen or runtime; only this facade reaches them, lazily, so that
the dependency arrows stay runtime -> codegen -> symgraph.
"""

from __future__ import annotations

import importlib

from . import sym
from .errors import (  # noqa: F401
    CompileError,
    DTypeError,
    ExecutorError,
    GraphError,
    OpAttributeError,
    SerializationError,
    ShapeError,
    SymgraphError,
    UnknownOpError,
)
from .names import AttrScope, NameManager, Prefix  # noqa: F401

__version__ = "0.1.0"

symbol = sym
name = importlib.import_module(".names", __name__)

_LAZY = {
    "mod": "runtime.module_api",
    "module": "runtime.module_api",
    "io": "runtime.io",
    "init": "runtime.initializer",
    "initializer": "runtime.initializer",
    "optimizer": "runtime.optimizer",
    "opt": "runtime.optimizer",
    "lr_scheduler": "runtime.lr_scheduler",
    "metric": "runtime.metric",
    "callback": "runtime.callback",
    "model": "runtime.model",
    "viz": "runtime.viz",
    "visualization": "runtime.viz",
    "random": "runtime.random",
    "test_utils": "runtime.test_utils",
    "nd": "runtime.nd",
    "executor": "runtime.executor",
    "context": "runtime.context",
    "onnx": "runtime.onnx",
}


def __getattr__(attr):
    if attr in _LAZY:
        module = importlib.import_module(_LAZY[attr])
        globals()[attr] = module
        return module
    if attr in ("cpu", "gpu", "Context", "current_context"):
        return getattr(importlib.import_module("runtime.context"), attr)
    raise AttributeError(f"module 'symgraph' has no attribute '{attr}'")


def __dir__():
    return sorted(list(globals()) + list(_LAZY) + ["cpu", "gpu", "Context"])


def _connect_runtime():
    """Register the compiled executor with Symbol.bind (the facade may reach runtime)."""
    importlib.import_module("runtime.executor")


_connect_runtime()
