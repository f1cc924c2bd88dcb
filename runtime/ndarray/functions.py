"""Op functions over NDArrays (``nd.FullyConnected(x, w, b, num_hidden=10)``), made on
demand from the op registry so every registered op has one, plus array constructors.

Positional arguments and NDArray keyword arguments are the op's inputs (by the op's input
names); the other keywords are attributes. ``name`` and ``attr`` are accepted and ignored
(imperative calls have no node names), ``out=`` writes into an existing array.
"""

from __future__ import annotations

import numpy as np

from runtime.context import Context, cpu
from runtime.ndarray import invoke as _inv
from runtime.ndarray import trace as T
from runtime.ndarray.ndarray import NDArray, as_ndarray
from symgraph.errors import GraphError
from symgraph.ops.registry import get_op, has_op

_IGNORED = ("name", "attr", "ctx")


def op_function(op_name: str):
    opdef = get_op(op_name)

    count, variadic, call_op = len(opdef.arguments), opdef.variadic, _inv.call_op

    def function(*args, **kwargs):
        out, named, attrs = None, None, {}
        for key, value in kwargs.items():  # one pass: the traced hot path
            if value is None or key in _IGNORED:
                continue
            if key == "out":
                out = value
            elif type(value) is NDArray or isinstance(value, np.ndarray):
                named = named or {}
                named[key] = value
            else:
                attrs[key] = value
        inputs = list(args)
        if len(inputs) > count and not variadic:
            inputs = _positional_attrs(opdef, inputs, attrs)
        if named:
            inputs = _place_named(opdef, attrs, inputs, named)
        return call_op(opdef, inputs, attrs, out)

    function.__name__ = op_name
    function.__doc__ = f"The registered op ``{opdef.name}`` on NDArrays (see sg.sym.{op_name})."
    return function


def _positional_attrs(opdef, inputs, attrs) -> list:
    """MXNet's generated functions take an op's parameters positionally after its inputs
    (``nd.clip(x, 0, 6)``): scalars past the op's inputs fill its parameters in order."""
    count = len(opdef.arguments)
    extra = inputs[count:]
    if any(isinstance(v, (NDArray, np.ndarray)) for v in extra):
        return inputs
    free = [spec.name for spec in opdef.params if spec.name not in attrs]
    if len(extra) > len(free):
        raise GraphError(f"{opdef.name} takes {count} inputs and the parameters "
                         f"{[spec.name for spec in opdef.params]}; got {len(inputs)} "
                         "positional arguments")
    attrs.update(zip(free, extra))
    return inputs[:count]


def _place_named(opdef, attrs, inputs, named) -> list:
    if opdef.variadic:
        raise GraphError(f"{opdef.name} takes its inputs positionally only")
    names = opdef.input_names(T.parsed(opdef, T.attr_key(attrs), opdef.hint))
    slots = inputs + [None] * (len(names) - len(inputs))
    for key, value in named.items():
        if key not in names:
            raise GraphError(f"{opdef.name}: unknown input '{key}'; inputs are {names}")
        if slots[names.index(key)] is not None:
            raise GraphError(f"{opdef.name}: input '{key}' given twice")
        slots[names.index(key)] = value
    while slots and slots[-1] is None:
        slots.pop()
    if any(v is None for v in slots):
        raise GraphError(f"{opdef.name}: input '{names[slots.index(None)]}' is missing")
    return slots


def lookup(name: str):
    """The op function for ``name`` if an op of that name is registered, else None."""
    if has_op(name):
        return op_function(name)
    return None


def namespace_getattr(namespace: dict, label: str, renamed=None):
    """A module ``__getattr__`` (sg.nd, sg.np, sg.npx) serving every registered op as a
    function, ``renamed`` mapping the namespace's spelling onto the op's name; each one is
    made once and kept in the module's ``namespace``."""
    renamed = renamed or {}

    def __getattr__(name):
        function = lookup(renamed.get(name, name))
        if function is None:
            raise AttributeError(f"module '{label}' has no attribute '{name}'")
        namespace[name] = function
        return function
    return __getattr__


def _ctx(ctx=None, device=None):
    ctx = device if device is not None else ctx
    if ctx is None:
        return cpu()
    return ctx if isinstance(ctx, Context) else Context(ctx)


def array(source_array, ctx=None, dtype=None, device=None):
    """A copy of ``source_array`` as an NDArray (float32 unless ``dtype``, as MXNet)."""
    if isinstance(source_array, NDArray):
        source_array = source_array._read("nd.array() of an array (a copy of its value)")
        dtype = dtype or source_array.dtype
    return NDArray(np.array(source_array, dtype=np.float32 if dtype is None else dtype),
                   _ctx(ctx, device))


def zeros(shape, ctx=None, dtype=np.float32, device=None, **kwargs):
    return NDArray(np.zeros(shape, dtype=dtype or np.float32), _ctx(ctx, device))


def ones(shape, ctx=None, dtype=np.float32, device=None, **kwargs):
    return NDArray(np.ones(shape, dtype=dtype or np.float32), _ctx(ctx, device))


def full(shape, val, ctx=None, dtype=np.float32, device=None, **kwargs):
    return NDArray(np.full(shape, val, dtype=dtype or np.float32), _ctx(ctx, device))


def empty(shape, ctx=None, dtype=np.float32, device=None, **kwargs):
    return zeros(shape, ctx, dtype, device)


def arange(start, stop=None, step=1.0, repeat=1, ctx=None, dtype=np.float32, device=None,
           **kwargs):
    values = np.arange(start, stop, step, dtype=dtype or np.float32)
    return NDArray(np.repeat(values, repeat) if repeat > 1 else values, _ctx(ctx, device))


def concat(*arrays, dim=1, **kwargs):
    return _inv.call("Concat", list(arrays), {"dim": dim})


def stack(*arrays, axis=0, **kwargs):
    expanded = [as_ndarray(a).expand_dims(axis) for a in arrays]
    return _inv.call("Concat", expanded, {"dim": axis})


def waitall():
    """Nothing runs asynchronously here; pending traces run when read."""


def dot(lhs, rhs, transpose_a=False, transpose_b=False, **kwargs):
    return _inv.call("dot", [lhs, rhs], {"transpose_a": transpose_a,
                                         "transpose_b": transpose_b})


def maximum(lhs, rhs):
    return _pairwise(lhs, rhs, "_maximum", "broadcast_maximum", "_maximum_scalar")


def minimum(lhs, rhs):
    return _pairwise(lhs, rhs, "_minimum", "broadcast_minimum", "_minimum_scalar")


def _pairwise(lhs, rhs, same, bcast, scalar):
    if not isinstance(lhs, (NDArray, np.ndarray)):
        lhs, rhs = rhs, lhs
    if np.isscalar(rhs):
        return _inv.call(scalar, [lhs], {"scalar": float(rhs)})
    lhs, rhs = as_ndarray(lhs), as_ndarray(rhs)
    return _inv.call(same if lhs.shape == rhs.shape else bcast, [lhs, rhs], {})
