"""Gluon ``Parameter``, ``Constant`` and ``ParameterDict``.

A Parameter holds one NDArray per device (``data(ctx)``) and one gradient per device.
``initialize()`` with an unknown shape (``nn.Dense(128)`` before it has seen an input) is
*deferred*: ``data()`` returns a placeholder whose shape the first traced op infers; then
the values are drawn once and copied to every device. The NDArray objects returned by
``data()`` never change, so executors and the Trainer can keep them.
"""

from __future__ import annotations

import re
from collections import OrderedDict

import numpy as np

from runtime import initializer as _init
from runtime.context import Context, cpu
from runtime.ndarray.ndarray import NDArray
from runtime.ndarray.state import EPOCH, bump_epoch  # noqa: F401 (Blocks import them here)
from symgraph.errors import SymgraphError


class DeferredInitializationError(SymgraphError, RuntimeError):
    """A parameter's shape is still unknown: run one forward pass first."""


class ParameterError(SymgraphError, RuntimeError):
    """A parameter used before initialize(), or on a device it was not initialized on."""


def _contexts(ctx):
    if ctx is None:
        return [cpu()]
    if isinstance(ctx, (list, tuple)):
        return [c if isinstance(c, Context) else Context(c) for c in ctx]
    return [ctx if isinstance(ctx, Context) else Context(ctx)]


def _known(shape) -> bool:
    return shape is not None and all(d > 0 for d in shape)


class _Deferred:
    """The placeholder hook: the first op using the array tells it its shape."""

    def __init__(self, param):
        self.param = param

    def complete(self, shape):
        self.param._finish_deferred_init(shape)

    def raise_uninitialized(self):
        raise DeferredInitializationError(
            f"Parameter '{self.param.name}' has not been initialized yet because "
            "initialization was deferred. Actual initialization happens during the first "
            "forward pass. Please pass one batch of data through the network before "
            "accessing Parameters.")


class Parameter:
    """A weight of a Block (MXNet's ``gluon.Parameter``)."""

    def __init__(self, name="weight", grad_req="write", shape=None, dtype=np.float32,
                 lr_mult=1.0, wd_mult=1.0, init=None, allow_deferred_init=False,
                 differentiable=True, stype="default", grad_stype="default"):
        self.name = name
        self._shape = None if shape is None else tuple(
            (shape,) if isinstance(shape, int) else shape)
        self.dtype = np.dtype(dtype).type
        self.lr_mult, self.wd_mult = lr_mult, wd_mult
        self.init = init
        self.allow_deferred_init = allow_deferred_init
        self._differentiable = differentiable
        self._grad_req = grad_req if differentiable else "null"
        self._data = None  # OrderedDict ctx -> NDArray
        self._one = None  # (the _data it was read from, its one ctx, its one array)
        self._pending = None  # (init, default_init) while deferred

    def __repr__(self):
        return f"Parameter {self.name} (shape={self._shape}, dtype={np.dtype(self.dtype)})"

    # ---- shape / grad_req ------------------------------------------------------------
    @property
    def shape(self):
        return self._shape

    @shape.setter
    def shape(self, new_shape):
        new_shape = tuple(new_shape)
        if self._shape is not None and len(self._shape) == len(new_shape) and not all(
                a in (0, b) for a, b in zip(self._shape, new_shape)):
            raise ValueError(f"Expected shape {new_shape} is incompatible with given shape "
                             f"{self._shape} for Parameter '{self.name}'.")
        self._shape = new_shape

    @property
    def grad_req(self):
        return self._grad_req

    @grad_req.setter
    def grad_req(self, req):
        if req not in ("write", "add", "null"):
            raise ValueError(f"grad_req must be one of 'write', 'add', or 'null', got {req!r}")
        self._grad_req = req if self._differentiable else "null"
        bump_epoch()
        for array in (self._data or {}).values():
            if self._grad_req == "null":
                array._grad, array._grad_req = None, "null"
            elif array._data is not None:
                array.attach_grad(self._grad_req)

    # ---- initialization --------------------------------------------------------------
    def initialize(self, init=None, ctx=None, default_init=None, force_reinit=False,
                   device=None):
        if default_init is None:
            default_init = _init.Uniform()
        if self._data is not None and not force_reinit:
            import warnings

            warnings.warn(f"Parameter '{self.name}' is already initialized, ignoring. Set "
                          "force_reinit=True to re-initialize.", stacklevel=2)
            return
        contexts = _contexts(device if device is not None else ctx)
        self._data = OrderedDict((c, self._placeholder(c)) for c in contexts)
        bump_epoch()
        self._pending = (init if init is not None else self.init, default_init)
        if _known(self._shape):
            self._finish_deferred_init(self._shape)
        elif not self.allow_deferred_init:
            raise ValueError(f"Cannot initialize Parameter '{self.name}' because it has "
                             f"invalid shape: {self._shape}.")

    def _placeholder(self, ctx) -> NDArray:
        array = NDArray(None, ctx, shape=None, dtype=self.dtype)
        array._deferred = _Deferred(self)
        array._label = self.name
        return array

    def _finish_deferred_init(self, shape):
        if self._shape is not None and len(self._shape) == len(shape):
            self.shape = shape
        self._shape = tuple(shape)
        init, default_init = self._pending
        values = np.zeros(self._shape, dtype=self.dtype)
        desc_attrs = {"__init__": _init_name(init)} if init is not None else {}
        initializer = _init.create(default_init) if not isinstance(
            default_init, _init.Initializer) else default_init
        initializer(_init.InitDesc(self.name, desc_attrs), values)
        for array in self._data.values():
            self._fill(array, values.copy())
        self._pending = None

    def _fill(self, array, values):
        bump_epoch()  # a new buffer (deferred shapes filled, cast, reset_ctx)
        array._data, array._shape = values, values.shape
        array._dtype = values.dtype.name
        array._deferred = None
        if self._grad_req != "null":
            array.attach_grad(self._grad_req)

    def _check(self, ctx=None):
        one = self._one  # one device: the common, hot case (iterating an OrderedDict
        if one is not None and one[0] is self._data:  # hashes its keys: Context's Python hash)
            if ctx is None or ctx is one[1] or ctx == one[1]:
                return one[2]
        elif self._data is not None and len(self._data) == 1:
            (only, array), = self._data.items()
            self._one = (self._data, only, array)
            return self._check(ctx)
        if self._data is None:
            raise ParameterError(
                f"Parameter '{self.name}' has not been initialized. Note that you should "
                "initialize parameters and create Trainer with Block.collect_params() "
                "instead of Block.params because the later does not include Parameters of "
                "nested child Blocks")
        if ctx is None:
            return next(iter(self._data.values()))
        ctx = ctx if isinstance(ctx, Context) else Context(ctx)
        array = self._data.get(ctx)
        if array is None:
            raise ParameterError(
                f"Parameter '{self.name}' was not initialized on context {ctx}. It was only "
                f"initialized on {list(self._data)}.")
        return array

    # ---- access ----------------------------------------------------------------------
    def data(self, ctx=None, device=None) -> NDArray:
        return self._check(device if device is not None else ctx)

    def list_data(self) -> list:
        self._check()
        return list(self._data.values())

    def grad(self, ctx=None, device=None) -> NDArray:
        array = self._check(device if device is not None else ctx)
        if array._grad is None:
            if array._deferred is not None:
                array._deferred.raise_uninitialized()
            raise ParameterError(f"Cannot get gradient array for Parameter '{self.name}' "
                                 "because grad_req='null'")
        return array._grad

    def list_grad(self) -> list:
        return [self.grad(c) for c in self.list_ctx()]

    def list_ctx(self) -> list:
        self._check()
        return list(self._data)

    list_device = list_ctx

    def zero_grad(self):
        for array in (self._data or {}).values():
            if array._grad is not None:
                array._grad._data[...] = 0

    def set_data(self, data):
        values = np.asarray(data, dtype=self.dtype)
        if self._data is None or self._pending is not None:
            self.shape = values.shape  # the setter refuses a shape the layer cannot take
            if self._data is None:
                self.initialize(init="zeros", ctx=cpu())  # any name, e.g. running_mean
            elif self._pending is not None:
                self._pending = None
                for array in self._data.values():
                    self._fill(array, values.copy())
        for array in self._data.values():
            if array._shape != values.shape:
                raise ValueError(f"Parameter '{self.name}': set_data got shape "
                                 f"{values.shape}, expected {array._shape}")
            np.copyto(array._data, values)

    def reset_ctx(self, ctx):
        values = self.data()._value().copy()
        self._data = OrderedDict((c, self._placeholder(c)) for c in _contexts(ctx))
        bump_epoch()
        for array in self._data.values():
            self._fill(array, values.copy())

    reset_device = reset_ctx

    def cast(self, dtype):
        self.dtype = np.dtype(dtype).type
        if self._data is None or self._pending is not None:
            return
        for array in self._data.values():
            self._fill(array, array._data.astype(self.dtype))

    def var(self):
        from symgraph.symbol import Variable

        return Variable(self.name, shape=self._shape, dtype=np.dtype(self.dtype).name,
                        lr_mult=self.lr_mult, wd_mult=self.wd_mult)


class Constant(Parameter):
    """A parameter that is never updated (``grad_req='null'``), initialized to ``value``."""

    def __init__(self, name, value):
        value = np.asarray(value.asnumpy() if hasattr(value, "asnumpy") else value)
        if value.dtype == np.float64:
            value = value.astype(np.float32)
        super().__init__(name, grad_req="null", shape=value.shape, dtype=value.dtype,
                         init=_init.Constant(value.tolist()), differentiable=False)
        self.value = value

    def _finish_deferred_init(self, shape):
        self._shape = tuple(shape)
        for array in self._data.values():
            self._fill(array, self.value.astype(self.dtype).copy())
        self._pending = None


def _init_name(init):
    if isinstance(init, str):
        return init
    return init.dumps()


class ParameterDict:
    """An ordered name -> Parameter map with a prefix (MXNet's ``gluon.ParameterDict``)."""

    def __init__(self, prefix="", shared=None):
        self._prefix = prefix
        self._params = OrderedDict()
        self._shared = shared

    def __repr__(self):
        body = "\n".join(f"  {p}" for p in self._params.values())
        return f"{self._prefix} (\n{body}\n)"

    @property
    def prefix(self):
        return self._prefix

    def __getitem__(self, key):
        return self._params[key]

    def __contains__(self, key):
        return key in self._params

    def __iter__(self):
        return iter(self._params)

    def __len__(self):
        return len(self._params)

    def keys(self):
        return self._params.keys()

    def values(self):
        return self._params.values()

    def items(self):
        return self._params.items()

    def get(self, name, **kwargs) -> Parameter:
        """The parameter ``prefix + name``, created with ``kwargs`` if it is new."""
        full = self._prefix + name
        param = self._params.get(full)
        if param is None and self._shared is not None and full in self._shared:
            param = self._shared[full]
            self._params[full] = param
        if param is None:
            param = Parameter(full, **kwargs)
            self._params[full] = param
            return param
        for key, value in kwargs.items():
            if key == "shape" and value is not None and param.shape is not None:
                param.shape = tuple(v if v else p for v, p in zip(value, param.shape)) \
                    if len(value) == len(param.shape) else value
            elif hasattr(param, key) and key not in ("shape", "init"):
                setattr(param, key, value)
        return param

    def get_constant(self, name, value=None) -> Constant:
        full = self._prefix + name
        param = self._params.get(full)
        if param is None:
            if value is None:
                raise KeyError(f"No constant named '{full}'. Please specify value")
            param = Constant(full, value)
            self._params[full] = param
        return param

    def update(self, other):
        for key, value in other.items():
            if key in self._params and self._params[key] is not value:
                raise ValueError(f"Cannot update self with other because they have different "
                                 f"Parameters with the same name '{key}'")
            self._params[key] = value

    def initialize(self, init=None, ctx=None, verbose=False, force_reinit=False,
                   device=None):
        init = init if init is not None else _init.Uniform()
        for param in self._params.values():
            param.initialize(None, device if device is not None else ctx, init,
                             force_reinit=force_reinit)

    def zero_grad(self):
        for param in self._params.values():
            param.zero_grad()

    def reset_ctx(self, ctx):
        for param in self._params.values():
            param.reset_ctx(ctx)

    reset_device = reset_ctx

    def list_ctx(self):
        contexts = []
        for param in self._params.values():
            contexts.extend(c for c in param.list_ctx() if c not in contexts)
        return contexts

    def setattr(self, name, value):
        for param in self._params.values():
            setattr(param, name, value)

    def select(self, pattern):
        regex = re.compile(pattern)
        result = ParameterDict(self._prefix)
        result._params.update((k, v) for k, v in self._params.items() if regex.match(k))
        return result

    def save(self, filename, strip_prefix=""):
        from runtime.ndarray_io import save

        arrays = {}
        for param in self._params.values():
            name = param.name[len(strip_prefix):] if param.name.startswith(strip_prefix) \
                else param.name
            arrays[name] = np.asarray(param.data())
        save(filename, arrays)

    def load(self, filename, ctx=None, allow_missing=False, ignore_extra=False,
             restore_prefix="", cast_dtype=False, dtype_source="current"):
        from runtime.ndarray_io import load

        loaded = {restore_prefix + k.split(":", 1)[-1]: v for k, v in load(filename).items()}
        _assign(self._params, loaded, allow_missing, ignore_extra, filename, ctx, cast_dtype)


def _assign(params, loaded, allow_missing, ignore_extra, filename, ctx, cast_dtype):
    """Copy ``loaded`` name -> array into ``params`` name -> Parameter, MXNet's checks."""
    if not allow_missing:
        missing = [k for k in params if k not in loaded]
        if missing:
            raise AssertionError(f"Parameter '{missing[0]}' is missing in file '{filename}', "
                                 "which contains parameters: " + ", ".join(sorted(loaded))
                                 + ". Set allow_missing=True to ignore missing parameters.")
    for name, value in loaded.items():
        param = params.get(name)
        if param is None:
            if ignore_extra:
                continue
            raise AssertionError(f"Parameter '{name}' loaded from file '{filename}' is not "
                                 "present in this Block. Set ignore_extra=True to ignore.")
        if cast_dtype:
            value = value.astype(param.dtype)
        if param._data is None and ctx is not None:
            param._shape = value.shape
            param.initialize(ctx=ctx, default_init=_init.Zero())
        param.set_data(value)
