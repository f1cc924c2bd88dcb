"""Tracing: ops on NDArrays inside ``record()`` or a Block call become graph nodes.

A :class:`Trace` is a flat list of op nodes over *leaves* (concrete arrays that entered it:
batches, parameters). Shapes and dtypes are inferred as each node is added, so a mistake
is raised at the user's call and ``x.shape`` works on pending arrays. Nothing runs until a
value is read or ``backward()`` is called; then the whole pending trace is compiled by the
normal pipeline (see :mod:`runtime.ndarray.runner`) and cached by its structure, so every
later step of a training loop reuses the compiled forward+backward.

The outputs of a run are the trace's arrays still alive in Python (weak references): in a
training loop that is the network output and the loss; intermediates inside Blocks are
gone by then, so they never cost a copy.
"""

from __future__ import annotations

import weakref

from runtime.ndarray import state
from symgraph.errors import DTypeError, OpAttributeError, ShapeError, SymgraphError
from symgraph.ops.params import attr_string

_INFER_CACHE: dict = {}
_PARSE_CACHE: dict = {}
_CACHE_LIMIT = 4096
MAX_EDGES = 8192  # recorded-structure trie size; past it the trie restarts empty


class TraceNode:
    """One recorded op: the op, its parsed params, input references and output types.

    Immutable once made: the structure trie shares it between every trace that records
    the same op at the same place (step N+1 appends step N's node objects)."""

    __slots__ = ("opdef", "params", "attrs", "inputs", "shapes", "dtypes", "name")

    def __init__(self, opdef, params, attrs, inputs, shapes, dtypes, name):
        self.opdef, self.params, self.attrs = opdef, params, attrs
        self.inputs, self.shapes, self.dtypes, self.name = inputs, shapes, dtypes, name


class Edge:
    """A state of the structure trie: the recorded prefix so far. Its ``children`` map
    the next op's structural key (op, attributes, input refs with leaf shapes, block) to
    the next state, which carries the validated node, so a repeated step records each op
    with one dictionary lookup and no shape inference. A trace's final state identifies
    its whole structure: the runner caches executors under it."""

    __slots__ = ("children", "node", "nodes", "visible", "in_shapes", "deferred")

    def __init__(self, node=None, visible=0, in_shapes=(), deferred=False, nodes=()):
        self.children: dict = {}
        self.node = node
        self.nodes = nodes  # a replayed hybridized segment: all its nodes at once
        self.visible = visible
        self.in_shapes = in_shapes
        self.deferred = deferred  # some input had no shape yet (a deferred parameter)


class _Trie:
    """The roots (one per training mode) and the edge count that bounds the trie."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        """Forget every recorded structure (traces in progress keep their own states)."""
        self.roots = {True: Edge(), False: Edge()}
        self.edges = 0

    def grow(self) -> None:
        self.edges += 1
        if self.edges > MAX_EDGES:  # a loop of ever-new structures: start over
            self.reset()


TRIE = _Trie()


class Trace:
    """A pending graph: nodes in program order, leaves, and weak refs to produced arrays."""

    __slots__ = ("is_train", "nodes", "leaves", "_leaf_index", "_leaf_refs", "produced",
                 "closed", "cursor")

    def __init__(self, is_train: bool):
        self.is_train = is_train
        self.nodes: list[TraceNode] = []
        self.leaves: list = []
        self._leaf_index: dict[int, int] = {}
        self._leaf_refs: dict[int, tuple] = {}  # id -> its ref (a replayed segment's
        # parameters enter through _leaf_index alone; leaf_ref() makes theirs on demand)
        self.produced: list = []  # (weakref to NDArray, ("node", index, output))
        self.closed = False
        self.cursor = TRIE.roots[is_train]  # the trie state of what is recorded so far

    def leaf_ref(self, array) -> tuple:
        """("leaf", index, shape, dtype) as the leaf entered (the shape and dtype make the
        ref structural); made once per leaf and trace."""
        ref = self._leaf_refs.get(id(array))
        if ref is None:
            index = self._leaf_index.get(id(array))
            if index is None:
                index = self._leaf_index[id(array)] = len(self.leaves)
                self.leaves.append(array)
            ref = self._leaf_refs[id(array)] = ("leaf", index, array._shape, array._dtype)
        return ref

    def forget_leaves(self, count: int) -> None:
        """Drop leaves added after the first ``count`` (an op that failed validation)."""
        for leaf in self.leaves[count:]:
            del self._leaf_index[id(leaf)]
            self._leaf_refs.pop(id(leaf), None)
        del self.leaves[count:]

    def alive(self) -> list:
        """(array, entry) of every produced array still referenced, in creation order."""
        result, seen = [], set()
        for ref, entry in self.produced:
            array = ref()
            if array is not None and array._trace is self and id(array) not in seen:
                seen.add(id(array))
                result.append((array, entry))
        return result


_KEY_CACHE: dict = {}


def attr_key(attrs: dict) -> tuple:
    """The attributes as sorted (name, MXNet string) pairs; memoized for hashable values
    (keyed with each value's type too, since ``True == 1`` but their strings differ)."""
    if not attrs:
        return ()
    raw = (tuple(attrs.items()), tuple(map(type, attrs.values())))
    try:
        hit = _KEY_CACHE.get(raw)
    except TypeError:  # a list value: not hashable, compute it
        raw, hit = None, None
    if hit is None:
        hit = tuple(sorted((k, attr_string(v)) for k, v in attrs.items() if v is not None))
        if raw is not None and len(_KEY_CACHE) < _CACHE_LIMIT:
            _KEY_CACHE[raw] = hit
    return hit


def parsed(opdef, key: tuple, node_name: str):
    cache_key = (opdef.name, key)
    params = _PARSE_CACHE.get(cache_key)
    if params is None:
        params = opdef.parse(dict(key), node_name)
        if len(_PARSE_CACHE) < _CACHE_LIMIT:
            _PARSE_CACHE[cache_key] = params
    return params


def infer(opdef, params, key, shapes, dtypes, node_name):
    """(input shapes, output shapes, output dtypes), memoized: a training loop repeats them."""
    cache_key = (opdef.name, key, tuple(shapes), tuple(dtypes))
    hit = _INFER_CACHE.get(cache_key)
    if hit is not None:
        return hit
    in_shapes, out_shapes = opdef.infer_shape(params, list(shapes))
    _, out_types = opdef.infer_type(params, list(dtypes))
    for index, shape in enumerate(out_shapes):
        if shape is None:
            raise ShapeError(f"{opdef.name} node '{node_name}': cannot infer the shape of "
                             f"output {index} from inputs {list(shapes)}")
    out_types = [t if t is not None else (dtypes[0] if dtypes else "float32")
                 for t in out_types]
    result = (tuple(tuple(s) if s is not None else None for s in in_shapes),
              tuple(tuple(s) for s in out_shapes), tuple(out_types))
    if len(_INFER_CACHE) < _CACHE_LIMIT:
        _INFER_CACHE[cache_key] = result
    return result


def describe_error(err: SymgraphError, opdef, name: str, shapes, dtypes) -> SymgraphError:
    """The same error class, prefixed with the block, the op and what it was given."""
    block = state.current_block_name()
    where = f"in block '{block}', " if block else ""
    message = (f"{where}{opdef.name} ('{name}') with input shapes "
               f"{[tuple(s) if s is not None else None for s in shapes]} and dtypes "
               f"{list(dtypes)}: {err}")
    cls = type(err) if isinstance(err, (ShapeError, DTypeError, OpAttributeError)) else ShapeError
    return cls(message)


def current_trace(is_train: bool) -> Trace:
    trace = state.STATE.trace
    if trace is None or trace.closed or trace.is_train != is_train:
        trace = Trace(is_train)
        state.STATE.trace = trace
    return trace


_MAKE = {}  # "pending": NDArray._pending, bound by ndarray.py


def record_op(opdef, key, arrays) -> list:
    """Append one node for ``opdef`` over ``arrays``; returns its visible output arrays.

    The hot path of every traced op: the structural key of this op at this point of the
    trace finds the trie state a previous step made (validated then), so only a miss
    (a new structure, shape or attribute) parses and infers, and raises its mistakes."""
    st = state.STATE
    trace = st.trace
    if trace is None or trace.closed or trace.is_train != st.training:
        trace = current_trace(st.training)
    known = trace._leaf_refs
    refs = tuple([a._entry if a._trace is trace else known.get(id(a)) or _leaf(trace, a)
                  for a in arrays])
    block = st.blocks[-1] if st.blocks else ""
    edge_key = (opdef, key, refs, block)
    edge = trace.cursor.children.get(edge_key)
    if edge is None:
        edge = _new_edge(trace, opdef, key, arrays, refs, block, edge_key)
    elif edge.deferred:
        _complete(arrays, edge.in_shapes)
    trace.cursor = edge
    index = len(trace.nodes)
    node = edge.node
    trace.nodes.append(node)
    ctx = arrays[0]._ctx if arrays else None
    pending, produced = _MAKE["pending"], trace.produced
    outputs = []
    for out in range(edge.visible):
        entry = ("node", index, out)
        array = pending(ctx, node.shapes[out], node.dtypes[out], trace, entry)
        produced.append((weakref.ref(array), entry))
        outputs.append(array)
    return outputs


def _new_edge(trace, opdef, key, arrays, refs, block, edge_key) -> Edge:
    """Validate a node seen for the first time here and add its trie state."""
    name = f"{block}_{opdef.hint}" if block else opdef.hint
    try:
        params = parsed(opdef, key, name)
        shapes = [a._shape for a in arrays]
        dtypes = [a._dtype for a in arrays]
        in_shapes, out_shapes, out_types = infer(opdef, params, key, shapes, dtypes, name)
    except SymgraphError as err:
        _forget_new_leaves(trace, refs)
        raise describe_error(err, opdef, name, [a._shape for a in arrays],
                             [a._dtype for a in arrays]) from None
    deferred = any(a._shape is None for a in arrays)
    if deferred:
        _complete(arrays, in_shapes)
    node = TraceNode(opdef, params, key, refs, out_shapes, out_types, name)
    edge = Edge(node, opdef.num_visible_outputs(params), in_shapes, deferred)
    TRIE.grow()
    return trace.cursor.children.setdefault(edge_key, edge)


def _forget_new_leaves(trace, refs) -> None:
    """The leaves only the failed op brought in (they sit at the end of the list)."""
    used = {r[1] for node in trace.nodes for r in node.inputs if r[0] == "leaf"}
    mine = {r[1] for r in refs if r[0] == "leaf"}
    count = len(trace.leaves)
    while count and count - 1 in mine and count - 1 not in used:
        count -= 1
    trace.forget_leaves(count)


def _complete(arrays, in_shapes) -> None:
    for array, shape in zip(arrays, in_shapes):
        if array._shape is None:
            array._complete_shape(shape)


def _leaf(trace, array) -> tuple:
    if array._data is None and array._deferred is None:
        array._force()  # pending in another (closed or other-mode) trace: make it concrete
    return trace.leaf_ref(array)


def _ref(trace, array) -> tuple:
    if array._trace is trace:
        return array._entry
    return _leaf(trace, array)
