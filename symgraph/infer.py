"""Shape and dtype inference: MXNet's fixed point of forward and backward sweeps.

Each op rule may fill in its inputs as well as its outputs (that is how a weight gets its
shape from the data shape). Sweeps alternate until no entry changes. A contradiction is a
ShapeError/DTypeError that names the node, the op, the argument, and both shapes.
"""

from __future__ import annotations

import ast
import numbers
import warnings

import numpy as np

from .errors import DTypeError, ShapeError, format_shape
from .graph import Entry, Node, topo_order

MAX_SWEEPS = 100


def _node_context(node: Node, values: dict) -> str:
    parts = []
    for name, entry in zip(node.input_names(), node.inputs):
        parts.append(f"{name}={_fmt(values.get(entry))}")
    return ", ".join(parts)


def _fmt(value) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, tuple):
        return format_shape(value)
    return str(value)


class _Inference:
    """State of one inference run over one graph (shapes or dtypes)."""

    def __init__(self, nodes: list[Node], kind: str):
        self.nodes = nodes
        self.kind = kind
        self.values: dict[Entry, object] = {}
        self.error = ShapeError if kind == "shape" else DTypeError

    def set(self, entry: Entry, value, where: str) -> bool:
        if value is None:
            return False
        if self.kind == "shape" and any(d < 0 for d in value):
            raise ShapeError(f"{self.kind} of {where} is {_fmt(value)}: a negative dimension "
                             "(check the op's attributes against its input shapes)")
        old = self.values.get(entry)
        if old is None:
            self.values[entry] = value
            return True
        if old != value:
            raise self.error(
                f"{self.kind} inconsistent for {where}: provided={_fmt(old)}, "
                f"inferred {self.kind}={_fmt(value)}"
            )
        return False

    def apply(self, node: Node) -> bool:
        opdef = node.opdef
        ins = [self.values.get(e) for e in node.inputs]
        outs = [self.values.get(Entry(node, i)) for i in range(node.num_outputs())]
        try:
            if self.kind == "shape":
                new_ins, new_outs = opdef.infer_shape(node.params, list(ins))
                new_ins = _backward_fill(opdef, node, new_ins, outs)
            else:
                new_ins, new_outs = opdef.infer_type(node.params, list(ins))
        except (ShapeError, DTypeError) as exc:
            raise type(exc)(
                f"{node.op} node '{node.name}': {exc} (inputs: {_node_context(node, self.values)})"
            ) from None
        changed = False
        names = node.input_names()
        for name, entry, value in zip(names, node.inputs, new_ins):
            where = f"input '{name}' of {node.op} node '{node.name}'"
            changed |= self.set(entry, value, where)
        for index, value in enumerate(new_outs):
            where = f"output {index} of {node.op} node '{node.name}'"
            changed |= self.set(Entry(node, index), value, where)
        return changed

    def run(self) -> dict:
        ops = [n for n in self.nodes if not n.is_variable]
        for _ in range(MAX_SWEEPS):
            changed = False
            for node in ops:
                changed |= self.apply(node)
            for node in reversed(ops):
                changed |= self.apply(node)
            if not changed:
                break
        return self.values


def _backward_fill(opdef, node, new_ins, outs):
    """Let an op deduce inputs from known outputs (e.g. elementwise: same shape)."""
    hook = getattr(opdef, "infer_shape_backward", None)
    if hook is None or all(o is None for o in outs):
        return new_ins
    return hook(node.params, list(new_ins), outs)


def _seeded(heads, kind, known, from_attr, normalize):
    """The inference run over ``heads`` with every variable's value seeded from ``known``
    by name, else from its attribute (``__shape__`` / ``__dtype__``)."""
    nodes = topo_order(heads)
    run = _Inference(nodes, kind)
    for node in nodes:
        if node.is_variable:
            value = known.get(node.name, from_attr(node))
            if value is not None:
                run.values[Entry(node, 0)] = normalize(node.name, value)
    return nodes, run


def infer_shapes(heads, known: dict[str, tuple]) -> dict[Entry, tuple]:
    """Shapes of every entry reachable from ``heads``, given shapes of variables by name."""
    _, run = _seeded(heads, "shape", known, attr_shape, given_shape)
    return run.run()


def given_shape(name: str, shape) -> tuple:
    """A shape given for input ``name``, checked: integer dimensions >= 1 (a negative or
    zero dimension would size buffers wrongly long after the call that gave it)."""
    try:
        dims = tuple(shape)
    except TypeError:
        raise ShapeError(f"input '{name}': shape {shape!r} is not a tuple of integers") from None
    for axis, dim in enumerate(dims):
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise ShapeError(f"input '{name}': shape {shape!r} has dimension {axis} = {dim!r}; "
                             "dimensions are integers")
        if dim < 1:
            raise ShapeError(f"input '{name}': shape {format_shape(dims)} has dimension {axis} "
                             f"= {dim}; every dimension must be >= 1 (leave the input out "
                             "to have its shape inferred)")
    return tuple(int(d) for d in dims)


def infer_dtypes(heads, known: dict[str, str], default: str | None = None) -> dict[Entry, str]:
    nodes, run = _seeded(heads, "dtype", known, attr_dtype, lambda _, d: np.dtype(d).name)
    values = run.run()
    if default is not None:
        for node in nodes:
            if node.is_variable and Entry(node, 0) not in values:
                values[Entry(node, 0)] = np.dtype(default).name
        values = _rerun_with(nodes, values)
    return values


def _rerun_with(nodes, values):
    run = _Inference(nodes, "dtype")
    run.values.update({k: v for k, v in values.items() if k.node.is_variable})
    return run.run()


def attr_shape(node: Node):
    """A variable's ``__shape__`` attr; a 0 dimension means unknown (MXNet legacy mode)."""
    text = node.attrs.get("__shape__")
    if not text:
        return None
    shape = tuple(ast.literal_eval(text))
    if any(d == 0 for d in shape) or not shape:
        return None
    return given_shape(node.name, shape)


def label_only_variables(heads) -> set:
    """Names of the variables read only as targets of loss ops (``OpDef.label_inputs``):
    those may be bound with any numeric dtype and take the graph's float dtype instead."""
    readers: dict[str, list] = {}
    for node in topo_order(heads):
        if node.is_variable:
            continue
        labels = set(getattr(node.opdef, "label_inputs", ()))
        for name, entry in zip(node.input_names(), node.inputs):
            if entry.node.is_variable:
                readers.setdefault(entry.node.name, []).append(name in labels)
    return {name for name, uses in readers.items() if all(uses)}


def attr_dtype(node: Node):
    from .symbol import CODE_DTYPES

    code = node.attrs.get("__dtype__")
    return None if code is None else CODE_DTYPES[int(code)]


# ---- Symbol-level API ------------------------------------------------------------------
def _known_from_call(symbol, args, kwargs, what: str) -> dict:
    arg_names = symbol.list_arguments()
    if args and kwargs:
        raise ValueError(f"infer_{what} takes positional or keyword arguments, not both")
    if args:
        if len(args) > len(arg_names):
            raise ValueError(f"infer_{what}: {len(args)} positional values for "
                             f"{len(arg_names)} arguments")
        return {n: v for n, v in zip(arg_names, args) if v is not None}
    inputs = set(symbol.list_inputs())
    for key in kwargs:
        if key not in inputs:
            raise ValueError(
                f"infer_{what}: '{key}' is not an input of the symbol; inputs are "
                f"{', '.join(symbol.list_inputs())}"
            )
    return {k: v for k, v in kwargs.items() if v is not None}


def _collect(symbol, values, default):
    nodes = topo_order(symbol.outputs)
    by_name = {n.name: values.get(Entry(n, 0)) for n in nodes if n.is_variable}
    args = [by_name[n] for n in symbol.list_arguments()]
    outs = [values.get(e) for e in symbol.outputs]
    aux = [by_name[n] for n in symbol.list_auxiliary_states()]
    def fix(value):
        return default if value is None else value

    return [fix(v) for v in args], [fix(v) for v in outs], [fix(v) for v in aux]


def symbol_infer_shape(symbol, args, kwargs, partial: bool):
    known = _known_from_call(symbol, args, kwargs, "shape")
    known = {k: given_shape(k, v) for k, v in known.items()}
    values = infer_shapes(symbol.outputs, known)
    arg_s, out_s, aux_s = _collect(symbol, values, None)
    unknown = [n for n, s in zip(symbol.list_arguments(), arg_s) if s is None]
    if partial:
        return _collect(symbol, values, ())
    if unknown or any(s is None for s in out_s + aux_s):
        warnings.warn(
            "Cannot decide shape for the following arguments (0s in shape means unknown "
            f"dimensions). Consider providing them as input: {unknown}", stacklevel=2
        )
        return None, None, None
    return arg_s, out_s, aux_s


def symbol_infer_type(symbol, args, kwargs, partial: bool):
    known = _known_from_call(symbol, args, kwargs, "type")
    known = {k: np.dtype(v).name for k, v in known.items()}
    values = infer_dtypes(symbol.outputs, known)
    arg_t, out_t, aux_t = _collect(symbol, values, None)
    if not partial and any(t is None for t in arg_t + out_t + aux_t):
        return None, None, None
    def conv(dtype):
        return None if dtype is None else np.dtype(dtype).type

    return [conv(t) for t in arg_t], [conv(t) for t in out_t], [conv(t) for t in aux_t]
