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


class TraceNode:
    """One recorded op: the op, its parsed params, input references and output types."""

    __slots__ = ("opdef", "params", "attrs", "inputs", "shapes", "dtypes", "name")

    def __init__(self, opdef, params, attrs, inputs, shapes, dtypes, name):
        self.opdef, self.params, self.attrs = opdef, params, attrs
        self.inputs, self.shapes, self.dtypes, self.name = inputs, shapes, dtypes, name


class Trace:
    """A pending graph: nodes in program order, leaves, and weak refs to produced arrays."""

    def __init__(self, is_train: bool):
        self.is_train = is_train
        self.nodes: list[TraceNode] = []
        self.signature: list[tuple] = []
        self.leaves: list = []
        self._leaf_index: dict[int, int] = {}
        self.produced: list = []  # (weakref to NDArray, (node, output))
        self.closed = False

    def leaf_ref(self, array) -> tuple:
        index = self._leaf_index.get(id(array))
        if index is None:
            index = len(self.leaves)
            self._leaf_index[id(array)] = index
            self.leaves.append(array)
        return ("leaf", index)

    def add(self, node: TraceNode, key: tuple) -> int:
        self.nodes.append(node)
        self.signature.append(key)
        return len(self.nodes) - 1

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
    try:
        raw = tuple((k, v, type(v)) for k, v in attrs.items())
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
    trace = getattr(state.STATE, "trace", None)
    if trace is None or trace.closed or trace.is_train != is_train:
        trace = Trace(is_train)
        state.STATE.trace = trace
    return trace


def record_op(opdef, key, arrays, make_array) -> list:
    """Append one node for ``opdef`` over ``arrays``; returns its visible output arrays."""
    trace = current_trace(state.is_training())
    name = f"{state.current_block_prefix()}{opdef.hint}"
    try:
        params = parsed(opdef, key, name)
        shapes = [a._shape for a in arrays]
        dtypes = [a._dtype for a in arrays]
        in_shapes, out_shapes, out_types = infer(opdef, params, key, shapes, dtypes, name)
    except SymgraphError as err:
        raise describe_error(err, opdef, name, [a._shape for a in arrays],
                             [a._dtype for a in arrays]) from None
    refs = []
    for array, shape in zip(arrays, in_shapes):
        if array._shape is None:
            array._complete_shape(shape)
        refs.append(_ref(trace, array))
    node = TraceNode(opdef, params, key, tuple(refs), out_shapes, out_types, name)
    index = trace.add(node, (opdef.name, key, tuple(refs)))
    outputs = []
    for out in range(opdef.num_visible_outputs(params)):
        array = make_array(trace, (index, out), out_shapes[out], out_types[out])
        trace.produced.append((weakref.ref(array), (index, out)))
        outputs.append(array)
    return outputs


def _ref(trace, array) -> tuple:
    if array._trace is trace:
        return ("node",) + array._entry
    if array._data is None:
        array._force()  # pending in another (closed or other-mode) trace: make it concrete
    return trace.leaf_ref(array)
