"""``hybridize()``: a HybridBlock's traced call is cached per input signature and replayed.

The first call of a hybridized block (at the top level) is traced as usual; the nodes it
added become a *segment*: op nodes whose inputs are the call's arguments (by position),
parameters (the arrays themselves, which never change identity) or earlier nodes of the
segment. A later call with the same signature (argument shapes, dtypes, device, training
and recording mode) appends the segment to the current trace without running the Python
``forward``: no per-layer calls, no shape inference, no intermediate arrays.
"""

from __future__ import annotations

import weakref

from runtime.ndarray import state
from runtime.ndarray import trace as T
from runtime.ndarray.ndarray import NDArray

MAX_SEGMENTS = 16


class _Segment:
    __slots__ = ("nodes", "outputs", "single")

    def __init__(self, nodes, outputs, single):
        self.nodes, self.outputs, self.single = nodes, outputs, single


def signature(args):
    return (tuple((a._shape, a._dtype) for a in args), args[0]._ctx, state.is_training(),
            state.is_recording())


def record(block, args, call):
    """Run ``call()`` (the normal traced call) and keep its nodes as a replayable segment."""
    trace = T.current_trace(state.is_training())
    start = len(trace.nodes)
    out = call()
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    segment = _capture(trace, start, args, outs, not isinstance(out, (list, tuple)))
    if segment is not None:
        cache = block._segments
        if len(cache) >= MAX_SEGMENTS:
            cache.pop(next(iter(cache)))
        cache[signature(args)] = segment
    return out


def _capture(trace, start, args, outs, single):
    if state.STATE.trace is not trace or any(o._trace is not trace for o in outs):
        return None  # the call forced or switched graphs: not a pure op segment
    arg_ids = {id(a): i for i, a in enumerate(args)}
    nodes = []
    for node in trace.nodes[start:]:
        refs = []
        for ref in node.inputs:
            if ref[0] == "node" and ref[1] >= start:
                refs.append(("int", ref[1] - start, ref[2]))
                continue
            array = trace.leaves[ref[1]] if ref[0] == "leaf" else _producer(trace, ref)
            if array is None:
                return None
            pos = arg_ids.get(id(array))
            refs.append(("arg", pos) if pos is not None else ("const", array))
        nodes.append((node, tuple(refs)))
    outputs = []
    for out in outs:
        if out._entry[0] < start:
            return None
        outputs.append((out._entry[0] - start, out._entry[1], out._shape, out._dtype))
    return _Segment(nodes, outputs, single)


def _producer(trace, ref):
    for wref, entry in trace.produced:
        array = wref()
        if array is not None and entry == (ref[1], ref[2]):
            return array
    return None


def replay(segment, args):
    trace = T.current_trace(state.is_training())
    base = len(trace.nodes)
    for node, refs in segment.nodes:
        inputs = []
        for ref in refs:
            if ref[0] == "int":
                inputs.append(("node", base + ref[1], ref[2]))
            else:
                array = args[ref[1]] if ref[0] == "arg" else ref[1]
                inputs.append(T._ref(trace, array))
        inputs = tuple(inputs)
        copy = T.TraceNode(node.opdef, node.params, node.attrs, inputs, node.shapes,
                           node.dtypes, node.name)
        trace.add(copy, (node.opdef.name, node.attrs, inputs))
    ctx = args[0]._ctx
    results = []
    for index, out, shape, dtype in segment.outputs:
        array = NDArray(None, ctx, shape=shape, dtype=dtype)
        array._trace, array._entry = trace, (base + index, out)
        trace.produced.append((weakref.ref(array), array._entry))
        results.append(array)
    return results[0] if segment.single else results
