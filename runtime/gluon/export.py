"""``HybridBlock.export``: the block as ``path-symbol.json`` + ``path-%04d.params``.

The block is traced once more (inference mode, fresh zero inputs of the shapes of its last
call) and the trace becomes a Symbol whose variables are ``data`` (``data0``, ``data1``...
for several inputs) and the parameters' own names; parameters are saved with ``arg:``
keys (``aux:`` for aux states), the Module checkpoint format, so ``sg.mod.Module`` and
MXNet load them.
"""

from __future__ import annotations

import numpy as np

from runtime.ndarray import state
from runtime.ndarray.ndarray import NDArray
from runtime.ndarray.runner import build_symbol
from runtime.ndarray_io import save


def _trace_call(block, inputs):
    old_train = state.set_training(False)
    old_trace, state.STATE.trace = state.STATE.trace, None
    try:
        out = block(*inputs)
    finally:
        state.set_training(old_train)
        trace, state.STATE.trace = state.STATE.trace, old_trace
    return out, trace


def export_block(block, path, epoch=0):
    if block._cached_export is None:
        raise RuntimeError("Please first call block.hybridize() and then run forward with "
                           "this block at least once before calling export.")
    types, ctx = block._cached_export[:2]  # the last call's (shape, dtype) pairs, device
    inputs = [NDArray(np.zeros(shape, dtype), ctx) for shape, dtype in types]
    out, trace = _trace_call(block, inputs)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    if trace is None or any(o._trace is not trace for o in outs):
        raise RuntimeError("export: the block's forward did not produce traced outputs")
    input_ids = {id(a): i for i, a in enumerate(inputs)}
    names = []
    for leaf in trace.leaves:
        if id(leaf) in input_ids:
            index = input_ids[id(leaf)]
            names.append("data" if len(inputs) == 1 else f"data{index}")
        elif leaf._label is not None:
            names.append(leaf._label)
        else:
            raise RuntimeError("export: the forward uses an array that is neither an input "
                               "nor a Parameter; make it a Constant")
    symbol = build_symbol(trace, [o._entry for o in outs], (), names)
    trace.closed = True
    symbol.save(f"{path}-symbol.json")
    kinds = dict.fromkeys(symbol.list_arguments(), "arg")
    kinds.update(dict.fromkeys(symbol.list_auxiliary_states(), "aux"))  # BatchNorm's stats
    params = {f"{kinds[name]}:{name}": np.asarray(leaf._data)
              for name, leaf in zip(names, trace.leaves)
              if name in kinds and id(leaf) not in input_ids}
    save(f"{path}-{epoch:04d}.params", params)
    return symbol
