"""symgraph: MXNet-1.x-style symbolic graphs, compiled to native code through llvmlite.

``import symgraph as sg`` is the one door: ``sg.sym`` (graphs), ``sg.mod`` (Module),
``sg.io``, ``sg.init``, ``sg.optimizer``, ``sg.lr_scheduler``, ``sg.metric``, ``sg.callback``,
``sg.model``, ``sg.viz``, ``sg.random``, ``sg.image``, ``sg.datasets``, ``sg.test_utils``,
``sg.kv`` (kvstores, distributed over MPI), ``sg.distributed`` (Horovod's API),
``sg.cpu()``, ``sg.set_memory_limit``. The symbolic core (this package's modules) never
imports codegen or runtime; only this facade reaches them, lazily, so that the dependency
arrows stay runtime -> codegen -> symgraph.
"""

from __future__ import annotations

import importlib

from . import sym
from .errors import (  # noqa: F401
    BindError,
    CompileError,
    DTypeError,
    ExecutorError,
    GraphError,
    MemoryLimitError,
    OpAttributeError,
    ParameterError,
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
    "optimizer": "runtime.optim",
    "opt": "runtime.optim",
    "lr_scheduler": "runtime.optim.lr_scheduler",
    "metric": "runtime.metric",
    "callback": "runtime.callback",
    "model": "runtime.model",
    "viz": "runtime.viz",
    "visualization": "runtime.viz",
    "random": "runtime.random",
    "test_utils": "runtime.test_utils",
    "image": "runtime.image",
    "datasets": "runtime.datasets",
    "nd": "runtime.nd",
    "ndarray": "runtime.nd",
    "gluon": "runtime.gluon",
    "autograd": "runtime.ndarray.autograd",
    "np": "runtime.numpy_api",
    "numpy": "runtime.numpy_api",
    "npx": "runtime.numpy_api.npx",
    "executor": "runtime.executor",
    "context": "runtime.context",
    "onnx": "runtime.onnx",
    "kv": "runtime.kvstore",
    "kvstore": "runtime.kvstore",
    "distributed": "runtime.distributed",
}


#: the compute-thread setting, in PyTorch's spellings too
_THREADS = {"set_num_threads": "set_num_threads", "num_threads": "num_threads",
            "get_num_threads": "num_threads"}


def __getattr__(attr):
    if attr in _LAZY:
        module = importlib.import_module(_LAZY[attr])
        globals()[attr] = module
        return module
    if attr in ("cpu", "gpu", "Context", "current_context"):
        return getattr(importlib.import_module("runtime.context"), attr)
    if attr in ("set_memory_limit", "memory_limit"):
        return getattr(importlib.import_module("codegen.limits"), attr)
    if attr in _THREADS:
        return getattr(importlib.import_module("codegen.threadpool"), _THREADS[attr])
    raise AttributeError(f"module 'symgraph' has no attribute '{attr}'")


def __dir__():
    return sorted(list(globals()) + list(_LAZY) + list(_THREADS) + [
        "cpu", "gpu", "Context", "set_memory_limit", "memory_limit"])


class _AliasFinder:
    """``import symgraph.gluon.nn`` (and ``from symgraph.gluon.data.vision import ...``)
    resolve to the runtime modules behind the lazy namespaces, never to second copies."""

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        head, _, rest = fullname.partition(".")
        top, _, tail = rest.partition(".")
        if head != __name__ or top not in _LAZY:
            return None
        real = _LAZY[top] + ("." + tail if tail else "")
        import importlib.util

        return importlib.util.spec_from_loader(fullname, _AliasLoader(real))


class _AliasLoader:
    def __init__(self, real):
        self._real = real

    def create_module(self, spec):
        return importlib.import_module(self._real)

    def exec_module(self, module):
        pass


def _connect_runtime():
    """Register the compiled executor with Symbol.bind (the facade may reach runtime)."""
    importlib.import_module("runtime.executor")


_connect_runtime()
# First in line: after the path finder, ``symgraph.gluon.model_zoo`` would be found on the
# aliased package's __path__ and run a second time under the alias name (a second copy of
# block.py, whose Blocks are not the user's Blocks).
if not any(isinstance(f, _AliasFinder) for f in __import__("sys").meta_path):
    __import__("sys").meta_path.insert(0, _AliasFinder())
