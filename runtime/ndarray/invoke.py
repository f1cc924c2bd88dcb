"""Calling a registered op on NDArrays: traced while recording or inside a Block, eager
(the op's numpy reference rule) otherwise.

Eager calls are for the small things scripts do between steps (a loss mean, an argmax for
accuracy); the network itself always runs compiled, because Block calls are traced.
"""

from __future__ import annotations

import numpy as np

from runtime.ndarray import state
from runtime.ndarray import trace as T
from symgraph.errors import SymgraphError
from symgraph.ops.registry import get_op
from symgraph.reference import RefContext

_MODE = {"np": False}


def np_mode() -> bool:
    """True after ``npx.set_np()``: reshape codes follow ``npx.reshape``."""
    return _MODE["np"]


def set_np_mode(flag: bool) -> None:
    _MODE["np"] = bool(flag)


def call(op_name: str, inputs: list, attrs: dict, out=None):
    """Run or record ``op_name``; one output is returned bare, several as a list."""
    from runtime.ndarray.ndarray import NDArray, as_ndarray  # noqa: F811 (cheap after the first call)

    opdef = get_op(op_name)
    if all(type(x) is NDArray for x in inputs):
        arrays = inputs
    else:
        ctx = next((x._ctx for x in inputs if isinstance(x, NDArray)), None)
        arrays = [as_ndarray(x, ctx) for x in inputs]
    if opdef.variadic:
        attrs = dict(attrs, num_args=len(arrays))
    key = T.attr_key(attrs)
    if state.tracing():
        outputs = T.record_op(opdef, key, arrays, _pending_maker(arrays))
    else:
        outputs = _eager(opdef, key, arrays)
    if out is not None:
        np.copyto(out._value(), outputs[0]._value(), casting="unsafe")
        return out
    return outputs[0] if len(outputs) == 1 else outputs


def _pending_maker(arrays):
    from runtime.ndarray.ndarray import NDArray

    ctx = arrays[0]._ctx if arrays else None

    def make(trace, entry, shape, dtype):
        array = NDArray(None, ctx, shape=shape, dtype=dtype)
        array._trace, array._entry = trace, entry
        return array
    return make



def _eager(opdef, key, arrays) -> list:
    from runtime.ndarray.ndarray import NDArray

    name = opdef.hint
    values = [a._value() for a in arrays]
    try:
        params = T.parsed(opdef, key, name)
        T.infer(opdef, params, key, [v.shape for v in values],
                [v.dtype.name for v in values], name)
        results = opdef.reference(params, values, RefContext(is_train=state.is_training(),
                                                              node_name=name))
    except SymgraphError as err:
        raise T.describe_error(err, opdef, name, [v.shape for v in values],
                               [v.dtype.name for v in values]) from None
    ctx = arrays[0]._ctx if arrays else None
    count = opdef.num_visible_outputs(params)
    return [NDArray(np.asarray(r), ctx) for r in results[:count]]
