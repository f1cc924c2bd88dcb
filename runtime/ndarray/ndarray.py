"""``sg.nd.NDArray``: a numpy buffer with MXNet's array API, traced inside ``record()``.

An NDArray is either *concrete* (``_data`` holds a numpy array) or *pending*: made by an op
while tracing, it knows its shape and dtype and the trace node that will compute it.
Reading a pending value (``asnumpy``, ``asscalar``, ``float()``, printing, numpy calls
through ``__array__``) runs its trace; so does ``backward()``.
"""

from __future__ import annotations

import numbers

import numpy as np

from runtime.context import Context, cpu
from runtime.ndarray import invoke as _inv
from runtime.ndarray import runner as _runner
from runtime.ndarray.reshape import np_shape
from symgraph.errors import SymgraphError
from symgraph.ops.shape_ops import reshape_target

_DTYPE_NAMES: dict = {}
_CAST_DTYPES = ("float32", "float64")  # what the Cast op converts between, compiled


def dtype_name(dtype) -> str:
    """``np.dtype(x).name``, memoized (it is on every traced op's path)."""
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = np.dtype(dtype).name
    return name


class AutogradError(SymgraphError, RuntimeError):
    """backward() on an array that no recorded graph produced, and similar misuse."""


class HybridizedReadError(SymgraphError, RuntimeError):
    """A value read inside a hybridized block's forward (MXNet: a Symbol has no value)."""


def _refuse_read(array, what) -> None:
    """Raise where the user reads a value inside a hybridized forward. The first call is
    replayed afterwards without running Python, so a branch on a value would be frozen."""
    block = _inv.state.current_block_name()
    raise HybridizedReadError(
        f"{what} inside the hybridized block '{block}' (array of shape {array._shape}, "
        f"{array._dtype}): in hybridized code the arrays are graph values, as MXNet's "
        "symbols, and have no value yet. Compute with F/nd ops only (shapes may be read), "
        "or read the value outside the block or without hybridize()")


class NDArray:
    """MXNet's ``mx.nd.NDArray`` (and ``mx.np.ndarray``) over one numpy buffer."""

    __slots__ = ("_data", "_trace", "_entry", "_shape", "_dtype", "_ctx", "_grad",
                 "_grad_req", "_label", "_deferred", "_fresh_grad", "__weakref__")
    __array_priority__ = 1000.0

    def __init__(self, data=None, ctx=None, *, shape=None, dtype=None):
        self._data = data
        self._trace = None
        self._entry = None
        if data is not None:
            shape, dtype = data.shape, data.dtype
        self._shape = None if shape is None else tuple(shape)
        self._dtype = None if dtype is None else dtype_name(dtype)
        self._ctx = ctx if ctx is not None else cpu()
        self._grad = None
        self._grad_req = "null"
        self._label = None
        self._deferred = None
        self._fresh_grad = False

    @classmethod
    def _pending(cls, ctx, shape, dtype, trace, entry):
        """A traced op's output (``dtype`` already a name): the tracer's fast constructor."""
        array = cls.__new__(cls)
        array._data = None
        array._trace, array._entry = trace, entry
        array._shape, array._dtype = shape, dtype
        array._ctx = ctx if ctx is not None else cpu()
        array._grad, array._grad_req = None, "null"
        array._label = array._deferred = None
        array._fresh_grad = False
        return array

    # ---- values --------------------------------------------------------------------
    def _force(self) -> None:
        if self._data is None:
            if self._deferred is not None:
                self._deferred.raise_uninitialized()
            _runner.run(self._trace)

    def _value(self) -> np.ndarray:
        _inv.state.STATE.reads += 1  # a recorded block call that read a value is not replayed
        if self._data is None:
            if _inv.state.STATE.symbolic:  # an eager path on a graph value
                _refuse_read(self, "reading the value")
            self._force()
        return self._data

    def _read(self, what) -> np.ndarray:
        """The value for a user-facing read, named in the error a hybridized forward gets."""
        if _inv.state.STATE.symbolic:
            _refuse_read(self, what)
        return self._value()

    def _complete_shape(self, shape) -> None:
        """A deferred parameter learns its shape from the first op that uses it."""
        self._deferred.complete(tuple(shape))

    def asnumpy(self) -> np.ndarray:
        return np.array(self._read("asnumpy()"))

    def __array__(self, dtype=None, copy=None):
        value = self._read("converting to a numpy array")
        return value if dtype is None else value.astype(dtype, copy=False)

    def asscalar(self, what="asscalar()/item()"):
        value = self._read(what)
        if self.size != 1:
            raise ValueError(f"The current array is not a scalar (shape {self.shape})")
        return value.reshape(()).item()

    item = asscalar

    def wait_to_read(self):
        self._read("wait_to_read()")
        return self

    @property
    def shape(self) -> tuple:
        return self._shape

    @property
    def dtype(self):
        return np.dtype(self._dtype).type

    @property
    def size(self) -> int:
        return int(np.prod(self._shape, dtype=np.int64))

    @property
    def ndim(self) -> int:
        return len(self._shape)

    @property
    def context(self) -> Context:
        return self._ctx

    ctx = context
    device = context

    @property
    def stype(self) -> str:
        return "default"

    def __len__(self):
        return self._shape[0]

    def __repr__(self):
        body = np.array2string(self._read("printing"), separator=" ", threshold=50)
        dims = "x".join(str(d) for d in self._shape)
        return f"\n{body}\n<NDArray {dims} @{self._ctx}>"

    __str__ = __repr__

    def __float__(self):
        return float(self.asscalar("float()"))

    def __int__(self):
        return int(self.asscalar("int()"))

    def __index__(self):
        return int(self.asscalar("using an array as an index"))

    def __bool__(self):
        self._read("bool() (an if/while on an array)")
        if self.size != 1:
            raise ValueError("The truth value of an NDArray with multiple elements is "
                             "ambiguous.")
        return bool(self.asscalar())

    def __format__(self, spec):
        self._read("formatting")
        if self.size == 1:
            return format(self.asscalar(), spec)
        return format(str(self), spec)

    def __iter__(self):
        self._read("iterating")
        for index in range(self._shape[0]):
            yield self[index]

    def __hash__(self):
        return id(self)

    def __getattr__(self, name):
        """Other numpy array attributes (``ravel``, ``all``, ``std``, ...) act on the value,
        so code written for the numpy arrays symgraph used to return keeps working."""
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return getattr(self._read("a numpy attribute"), name)
        except AttributeError:
            raise AttributeError(f"'NDArray' object has no attribute '{name}'") from None

    # ---- devices, copies, dtypes -------------------------------------------------------
    def as_in_context(self, ctx):
        ctx = _one_context(ctx)
        if ctx == self._ctx:
            return self
        return NDArray(self._read("as_in_context() to another device").copy(), ctx)

    as_in_ctx = as_in_context
    to_device = as_in_context
    copyto_device = as_in_context

    def copy(self):
        if _inv.state.tracing():
            return _inv.call("_copy", [self], {})  # stays in the graph (and its gradient)
        return NDArray(self._value().copy(), self._ctx)

    def copyto(self, other):
        value = self._read("copyto()")
        if isinstance(other, Context):
            return NDArray(value.copy(), other)
        np.copyto(other._value(), value, casting="unsafe")
        return other

    def astype(self, dtype, copy=True):
        dtype = np.dtype(dtype)
        if dtype.name == self._dtype:
            return self.copy() if copy else self
        if _inv.state.tracing() and dtype.name in _CAST_DTYPES and self._dtype in _CAST_DTYPES:
            return _inv.call("Cast", [self], {"dtype": dtype.name})  # gradient flows back
        return NDArray(self._read(f"astype({dtype.name})").astype(dtype), self._ctx)

    def detach(self):
        if self._data is None or _inv.state.tracing():
            return _inv.call("BlockGrad", [self], {})
        return NDArray(self._data, self._ctx)

    def tolist(self):
        return self._read("tolist()").tolist()

    def __getitem__(self, key):
        value = self._read("indexing (use F.slice_axis, F.take or F.split)")
        if isinstance(key, NDArray):
            key = key._value().astype(np.int64)
        return NDArray(np.asarray(value[key]), self._ctx)

    def __setitem__(self, key, value):
        target = self._read("assigning by index")
        if isinstance(value, NDArray):
            value = value._value()
        target[key] = value

    # ---- autograd ----------------------------------------------------------------------
    def attach_grad(self, grad_req="write", stype=None):
        if grad_req not in ("write", "add", "null"):
            raise ValueError(f"grad_req must be 'write', 'add' or 'null', got {grad_req!r}")
        self._value()
        self._grad = NDArray(np.zeros(self._shape, self._dtype), self._ctx)
        self._grad_req = grad_req
        if self._label is not None:  # a Parameter's array: its gradient buffer changed
            _inv.state.bump_epoch()

    @property
    def grad(self):
        return self._grad

    def backward(self, out_grad=None, retain_graph=False, train_mode=True):
        if self._trace is None:
            raise AutogradError("backward(): this array was not computed inside "
                                "autograd.record(), so there is no graph to differentiate")
        head_grad = None if out_grad is None else np.asarray(out_grad, dtype=self._dtype)
        if head_grad is not None and head_grad.shape != self._shape:
            raise AutogradError(f"backward(): out_grad has shape {head_grad.shape}, the "
                                f"array has shape {self._shape}")
        trace = self._trace
        _runner.run(trace, head=self, head_grad=head_grad)
        trace.closed = True
        self._trace, self._entry = None, None

    # ---- shape methods -----------------------------------------------------------------
    def reshape(self, *shape, **kwargs):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = kwargs.pop("shape", shape)
        reverse = kwargs.pop("reverse", False)
        rule = np_shape if _inv.np_mode() else reshape_target
        target = rule(self._shape, tuple(shape), reverse)
        return _inv.call("Reshape", [self], {"shape": target})

    def reshape_like(self, other):
        return self.reshape(other.shape)

    def expand_dims(self, axis):
        return _inv.call("expand_dims", [self], {"axis": axis})

    def flatten(self):
        return _inv.call("Flatten", [self], {})

    def squeeze(self, axis=None):
        return _inv.call("squeeze", [self], {"axis": axis})

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _inv.call("transpose", [self], {"axes": axes or None})

    @property
    def T(self):
        return self.transpose()

    def swapaxes(self, dim1, dim2):
        return _inv.call("SwapAxis", [self], {"dim1": dim1, "dim2": dim2})

    def split(self, num_outputs, axis=1, squeeze_axis=False):
        return _inv.call("SliceChannel", [self], {"num_outputs": num_outputs, "axis": axis,
                                                  "squeeze_axis": squeeze_axis})

    def broadcast_to(self, shape):
        return _inv.call("broadcast_to", [self], {"shape": tuple(shape)})

    def one_hot(self, depth, on_value=1.0, off_value=0.0, dtype="float32"):
        return _inv.call("one_hot", [self], {"depth": depth, "on_value": on_value,
                                             "off_value": off_value, "dtype": dtype})

    def clip(self, a_min, a_max):
        return _inv.call("clip", [self], {"a_min": a_min, "a_max": a_max})

    # ---- arithmetic (table-driven below) -------------------------------------------------
    def __neg__(self):
        return _inv.call("negative", [self], {})

    def __pos__(self):
        return self

    def __abs__(self):
        return _inv.call("abs", [self], {})

    def __matmul__(self, other):
        return _matmul(self, other)

    def __rmatmul__(self, other):
        return _matmul(as_ndarray(other, self._ctx), self)

    def __iadd__(self, other):
        return _inplace(self, self + other)

    def __isub__(self, other):
        return _inplace(self, self - other)

    def __imul__(self, other):
        return _inplace(self, self * other)

    def __itruediv__(self, other):
        return _inplace(self, self / other)


def _one_context(ctx):
    if isinstance(ctx, (list, tuple)):
        if len(ctx) != 1:
            raise ValueError(f"expected one device, got {ctx}; split the batch with "
                             "gluon.utils.split_and_load")
        ctx = ctx[0]
    return ctx if isinstance(ctx, Context) else Context(ctx)


def _matmul(lhs, rhs):
    rhs = as_ndarray(rhs, lhs._ctx)
    if lhs.ndim == 2 and rhs.ndim == 2:
        return _inv.call("dot", [lhs, rhs], {})
    what = "matmul (@) of arrays that are not both 2-D (use F.batch_dot or F.dot)"
    return NDArray(np.matmul(lhs._read(what), rhs._read(what)), lhs._ctx)


def _inplace(target, result):
    """``a += b`` outside tracing writes into a's buffer (views see it), as in MXNet."""
    if target._trace is None and result._trace is None and target._data is not None:
        np.copyto(target._data, result._data, casting="unsafe")
        return target
    return result


# (method, op on two arrays of one shape, broadcasting op, scalar op, reflected scalar op)
_BINARY = (
    ("add", "elemwise_add", "broadcast_add", "_plus_scalar", "_plus_scalar"),
    ("sub", "elemwise_sub", "broadcast_sub", "_minus_scalar", "_rminus_scalar"),
    ("mul", "elemwise_mul", "broadcast_mul", "_mul_scalar", "_mul_scalar"),
    ("truediv", "elemwise_div", "broadcast_div", "_div_scalar", "_rdiv_scalar"),
    ("mod", "_mod", "broadcast_mod", "_mod_scalar", "_rmod_scalar"),
    ("pow", "_power", "broadcast_power", "_power_scalar", "_rpower_scalar"),
    ("eq", "_equal", "broadcast_equal", "_equal_scalar", "_equal_scalar"),
    ("ne", "_not_equal", "broadcast_not_equal", "_not_equal_scalar", "_not_equal_scalar"),
    ("gt", "_greater", "broadcast_greater", "_greater_scalar", "_lesser_scalar"),
    ("ge", "_greater_equal", "broadcast_greater_equal", "_greater_equal_scalar",
     "_lesser_equal_scalar"),
    ("lt", "_lesser", "broadcast_lesser", "_lesser_scalar", "_greater_scalar"),
    ("le", "_lesser_equal", "broadcast_lesser_equal", "_lesser_equal_scalar",
     "_greater_equal_scalar"),
)
_REFLECTED = {"add", "sub", "mul", "truediv", "mod", "pow"}


def binary(lhs, rhs, same_op, bcast_op, scalar_op, rscalar_op, reflected=False):
    """One binary op between an NDArray and an NDArray, numpy array or number."""
    kind = type(rhs)
    if kind is NDArray:
        a, b = (rhs, lhs) if reflected else (lhs, rhs)
        return _inv.call(same_op if a._shape == b._shape else bcast_op, [a, b], {})
    if kind is float or kind is int or isinstance(rhs, numbers.Number) or (
            isinstance(rhs, np.ndarray) and rhs.ndim == 0):
        op = rscalar_op if reflected else scalar_op
        return _inv.call(op, [lhs], {"scalar": float(rhs)})
    if not isinstance(rhs, NDArray):
        if not isinstance(rhs, np.ndarray):
            return NotImplemented
        rhs = NDArray(np.asarray(rhs, dtype=lhs._dtype), lhs._ctx)
    a, b = (rhs, lhs) if reflected else (lhs, rhs)
    return _inv.call(same_op if a._shape == b._shape else bcast_op, [a, b], {})


def _make_binary(same_op, bcast_op, scalar_op, rscalar_op, reflected):
    def method(self, other):
        return binary(self, other, same_op, bcast_op, scalar_op, rscalar_op, reflected)
    return method


for _name, _same, _bcast, _scalar, _rscalar in _BINARY:
    setattr(NDArray, f"__{_name}__", _make_binary(_same, _bcast, _scalar, _rscalar, False))
    if _name in _REFLECTED:
        setattr(NDArray, f"__r{_name}__", _make_binary(_same, _bcast, _scalar, _rscalar, True))
NDArray.__div__ = NDArray.__truediv__
NDArray.__rdiv__ = NDArray.__rtruediv__


def _make_reduce(op):
    def method(self, axis=None, keepdims=False, exclude=False, **kwargs):
        attrs = {"axis": axis, "keepdims": keepdims}
        if exclude:
            attrs["exclude"] = True
        return _inv.call(op, [self], attrs)
    method.__name__ = op
    return method


def _make_unary(op):
    def method(self, **kwargs):
        return _inv.call(op, [self], kwargs)
    method.__name__ = op
    return method


for _op in ("sum", "mean", "max", "min"):
    setattr(NDArray, _op, _make_reduce(_op))
for _op in ("exp", "log", "log1p", "sqrt", "rsqrt", "square", "abs", "sign", "relu", "sigmoid",
            "tanh", "floor", "ceil", "round", "trunc", "reciprocal", "softmax", "log_softmax",
            "zeros_like", "ones_like"):
    setattr(NDArray, _op, _make_unary(_op))


def _argreduce(op):
    def method(self, axis=None, keepdims=False):
        return _inv.call(op, [self], {"axis": axis, "keepdims": keepdims})
    method.__name__ = op
    return method


NDArray.argmax = _argreduce("argmax")
NDArray.argmin = _argreduce("argmin")


def as_ndarray(value, ctx=None, dtype=None) -> NDArray:
    """An NDArray over ``value`` (no copy when it already is a numpy array of the dtype)."""
    if isinstance(value, NDArray):
        return value
    array = np.asarray(value, dtype=dtype)
    if dtype is None and array.dtype == np.float64 and not isinstance(value, np.ndarray):
        array = array.astype(np.float32)
    return NDArray(array, ctx)


_inv.bind_array_type(NDArray, as_ndarray)
_inv.T._MAKE["pending"] = NDArray._pending
