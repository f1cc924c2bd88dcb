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
    """A hybridized call's nodes; refs are ("int", i, out) into the segment, ("arg", pos)
    or ("const", k) into ``consts`` (the parameters' arrays, whose identity never
    changes)."""

    __slots__ = ("nodes", "consts", "outputs", "single", "__weakref__")

    def __init__(self, nodes, consts, outputs, single):
        self.nodes, self.consts, self.outputs, self.single = nodes, consts, outputs, single


def signature(args):
    return (tuple([(a._shape, a._dtype) for a in args]), args[0]._ctx, state.STATE.training,
            state.STATE.recording)


def record(block, args, call, sig=None, cache=None):
    """Run ``call()`` (the normal traced call) and keep its nodes as a replayable segment
    in ``cache`` (the block's hybridized segments by default).

    With ``cache`` given (a library block that is not hybridized, whose arrays have their
    values) the capture is strict: a call that read a value, or used an array that is
    neither an argument nor a Parameter's (say, one computed in numpy from the batch), is
    remembered as False and traced every time, since a replay would freeze that value."""
    trace = T.current_trace(state.is_training())
    start, reads = len(trace.nodes), state.STATE.reads
    out = call()
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    segment = None
    strict = cache is not None
    if all(isinstance(o, NDArray) for o in outs) and not (strict and
                                                          state.STATE.reads != reads):
        segment = _capture(trace, start, args, outs, not isinstance(out, (list, tuple)))
        if strict and segment is not None and any(c._label is None for c in segment.consts):
            segment = None
    if segment is not None or cache is not None:
        cache = block._segments if cache is None else cache
        if len(cache) >= MAX_SEGMENTS:
            cache.pop(next(iter(cache)))
        cache[signature(args) if sig is None else sig] = segment or False
    return out


def _capture(trace, start, args, outs, single):
    if state.STATE.trace is not trace or any(o._trace is not trace for o in outs):
        return None  # the call forced or switched graphs: not a pure op segment
    arg_ids = {id(a): i for i, a in enumerate(args)}
    consts, const_ids = [], {}
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
            if pos is not None:
                refs.append(("arg", pos))
                continue
            if id(array) not in const_ids:
                const_ids[id(array)] = len(consts)
                consts.append(array)
            refs.append(("const", const_ids[id(array)]))
        nodes.append((node, tuple(refs)))
    outputs = []
    for out in outs:
        if out._entry[1] < start:
            return None
        outputs.append((out._entry[1] - start, out._entry[2], out._shape, out._dtype))
    return _Segment(tuple(nodes), tuple(consts), tuple(outputs), single)


def _producer(trace, ref):
    for wref, entry in trace.produced:
        array = wref()
        if array is not None and entry == ref:
            return array
    return None


def replay(segment, args):
    """Append the segment to the current trace: one trie lookup keyed by the segment and
    where its arguments and parameters sit in this trace; the nodes it appends were made
    (and validated) the first time the same trace prefix replayed it."""
    trace = T.current_trace(state.STATE.training)
    known = trace._leaf_refs
    refs = [a._entry if a._trace is trace else known.get(id(a)) or T._leaf(trace, a)
            for a in args]
    index_of, leaves = trace._leaf_index, trace.leaves
    for const in segment.consts:  # parameters: concrete arrays, their types fixed in the nodes
        index = index_of.get(id(const))
        if index is None:
            index = index_of[id(const)] = len(leaves)
            leaves.append(const)
        refs.append(index)
    key = (segment, tuple(refs))
    edge = trace.cursor.children.get(key)
    if edge is None:
        edge = _replay_edge(trace, segment, refs, key)
    base = len(trace.nodes)
    trace.nodes.extend(edge.nodes)
    trace.cursor = edge
    pending, produced = NDArray._pending, trace.produced
    ctx = args[0]._ctx
    results = []
    for index, out, shape, dtype in segment.outputs:
        entry = ("node", base + index, out)
        array = pending(ctx, shape, dtype, trace, entry)
        produced.append((weakref.ref(array), entry))
        results.append(array)
    return results[0] if segment.single else results


def _replay_edge(trace, segment, refs, key):
    base, count = len(trace.nodes), len(segment.consts)
    nargs = len(refs) - count
    leaf_refs = refs[:nargs] + [("leaf", i, c._shape, c._dtype)
                                for i, c in zip(refs[nargs:], segment.consts)]
    nodes = []
    for node, refs in segment.nodes:
        inputs = tuple(("node", base + ref[1], ref[2]) if ref[0] == "int" else
                       leaf_refs[ref[1]] if ref[0] == "arg" else leaf_refs[nargs + ref[1]]
                       for ref in refs)
        nodes.append(T.TraceNode(node.opdef, node.params, node.attrs, inputs, node.shapes,
                                 node.dtypes, node.name))
    T.TRIE.grow()
    return trace.cursor.children.setdefault(key, T.Edge(nodes=tuple(nodes)))
