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


_OPDEFS: dict = {}  # op name -> OpDef, so a traced op skips the registry's alias lookup
_TYPES = {}  # the array type and its converter, bound by ndarray.py (it imports this module)


def bind_array_type(array_type, converter) -> None:
    _TYPES["array"], _TYPES["convert"] = array_type, converter


def opdef_of(op_name: str):
    opdef = _OPDEFS.get(op_name)
    if opdef is None:
        opdef = _OPDEFS[op_name] = get_op(op_name)
    return opdef


def call(op_name: str, inputs: list, attrs: dict, out=None):
    """Run or record ``op_name``; one output is returned bare, several as a list."""
    opdef = _OPDEFS.get(op_name)
    if opdef is None:
        opdef = opdef_of(op_name)
    return call_op(opdef, inputs, attrs, out)


def call_op(opdef, inputs: list, attrs: dict, out=None):
    """:func:`call` for a resolved op: the path every traced op takes, kept short."""
    arrays = inputs
    array_type = _TYPES["array"]
    for x in inputs:
        if type(x) is not array_type:
            ctx = next((x._ctx for x in inputs if isinstance(x, array_type)), None)
            arrays = [_TYPES["convert"](x, ctx) for x in inputs]
            break
    if opdef.variadic:
        attrs = dict(attrs, num_args=len(arrays))
    key = T.attr_key(attrs) if attrs else ()
    st = state.STATE
    if st.recording or st.block_depth:
        outputs = T.record_op(opdef, key, arrays)
    else:
        outputs = _eager(opdef, key, arrays)
    if out is not None:
        np.copyto(out._value(), outputs[0]._value(), casting="unsafe")
        return out
    return outputs[0] if len(outputs) == 1 else outputs


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
