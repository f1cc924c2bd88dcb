"""The user's Symbol: a thin handle on a tuple of graph entries, with MXNet's API.

Everything structural (order of arguments, output names, internals) is computed from the
immutable graph on demand; the handle itself holds nothing else, so two Symbols that share
nodes share them for real.
"""

from __future__ import annotations

import json
import numbers

import numpy as np

from . import compose
from .errors import GraphError
from .graph import Entry, Node, dump, make_variable, topo_order
from .names import current_attr_scope
from .ops.params import attr_string

_BINDER = None  # set by runtime.executor; keeps this core module free of runtime imports


def set_binder(binder) -> None:
    """Runtime registers the object that implements bind/simple_bind/eval."""
    global _BINDER
    _BINDER = binder


class Symbol:
    """A symbolic expression with one or more outputs (MXNet's ``mx.sym.Symbol``)."""

    __slots__ = ("outputs",)

    def __init__(self, outputs):
        self.outputs = tuple(outputs)

    # ---- structure --------------------------------------------------------------------
    @property
    def name(self):
        if len(self.outputs) != 1:
            return None
        return self.outputs[0].node.name

    def _nodes(self) -> list[Node]:
        return topo_order(self.outputs)

    def _aux_ids(self, nodes) -> set[int]:
        aux = set()
        for node in nodes:
            if node.is_variable:
                continue
            for index in node.opdef.mutate_inputs(node.params):
                aux.add(id(node.inputs[index].node))
        return aux

    def list_arguments(self) -> list[str]:
        nodes = self._nodes()
        aux = self._aux_ids(nodes)
        return [n.name for n in nodes if n.is_variable and id(n) not in aux]

    def list_auxiliary_states(self) -> list[str]:
        nodes = self._nodes()
        aux = self._aux_ids(nodes)
        return [n.name for n in nodes if n.is_variable and id(n) in aux]

    def list_inputs(self) -> list[str]:
        return [n.name for n in self._nodes() if n.is_variable]

    def list_outputs(self) -> list[str]:
        return [entry.label for entry in self.outputs]

    def get_internals(self) -> Symbol:
        entries = []
        for node in self._nodes():
            entries.extend(Entry(node, i) for i in range(node.num_visible_outputs()))
        return Symbol(entries)

    def get_children(self):
        inputs = [e for head in self.outputs for e in head.node.inputs]
        return Symbol(inputs) if inputs else None

    def __len__(self) -> int:
        return len(self.outputs)

    def __iter__(self):
        return (Symbol((entry,)) for entry in self.outputs)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Symbol(self.outputs[index])
        if isinstance(index, str):
            matches = [i for i, name in enumerate(self.list_outputs()) if name == index]
            if not matches:
                raise ValueError(f"cannot find output that matches name '{index}'")
            if len(matches) > 1:
                raise ValueError(f"there are multiple outputs with name '{index}'")
            index = matches[0]
        if not isinstance(index, int):
            raise TypeError(f"Symbol index must be int, str or slice, not {type(index)}")
        if not -len(self.outputs) <= index < len(self.outputs):
            raise IndexError(f"Symbol has {len(self.outputs)} outputs, index {index}")
        return Symbol((self.outputs[index],))

    def __repr__(self) -> str:
        if len(self.outputs) == 1:
            return f"<Symbol {self.name}>"
        return "<Symbol group [" + ", ".join(e.node.name for e in self.outputs) + "]>"

    # ---- attributes -------------------------------------------------------------------
    def attr(self, key: str):
        if len(self.outputs) != 1:
            return None
        attrs = self.outputs[0].node.attrs
        if key in attrs:
            return attrs[key]
        return attrs.get(f"__{key}__")

    def list_attr(self, recursive: bool = False) -> dict:
        if recursive:
            raise DeprecationWarning("list_attr(recursive=True) is deprecated; use attr_dict()")
        if len(self.outputs) != 1:
            return {}
        return dict(self.outputs[0].node.attrs)

    def attr_dict(self) -> dict:
        result = {}
        for node in self._nodes():
            attrs = dict(node.attrs)
            for key, value in node.attrs.items():
                if key.startswith("__") and key.endswith("__"):
                    attrs[key[2:-2]] = value
            if attrs:
                result[node.name] = attrs
        return result

    def _set_attr(self, **kwargs) -> None:
        """Copy-on-write: the head node is rebuilt with the new attrs (nodes are immutable)."""
        if len(self.outputs) != 1:
            raise GraphError("_set_attr needs a single-output symbol")
        old = self.outputs[0].node
        attrs = dict(old.attrs)
        attrs.update(compose.hide_keys({k: attr_string(v) for k, v in kwargs.items()}))
        params = old.params if old.is_variable else old.opdef.parse(attrs, old.name)
        new = Node(old.op, old.name, attrs, old.inputs, params)
        self.outputs = (Entry(new, self.outputs[0].index),)

    # ---- composition ------------------------------------------------------------------
    def __call__(self, *args, **kwargs) -> Symbol:
        """Copy the graph with variables replaced by the given symbols (by name)."""
        name = kwargs.pop("name", None)
        if args:
            arg_names = self.list_arguments()
            if len(args) > len(arg_names):
                raise GraphError(f"too many positional inputs: {len(args)} > {len(arg_names)}")
            kwargs.update(dict(zip(arg_names, args)))
        from .passes.substitute import substitute_variables

        result = Symbol(substitute_variables(self.outputs, kwargs))
        if name is not None and len(result.outputs) == 1:
            result._rename_head(name)
        compose.check_unique_names(result.outputs)
        return result

    _compose = __call__

    def _rename_head(self, name: str) -> None:
        old = self.outputs[0].node
        new = Node(old.op, name, dict(old.attrs), old.inputs, old.params)
        self.outputs = (Entry(new, self.outputs[0].index),)

    def __copy__(self):
        return Symbol(self.outputs)

    def __deepcopy__(self, memo):
        return load_json(self.tojson())

    def __getstate__(self):
        return {"json": self.tojson()}

    def __setstate__(self, state):
        self.outputs = load_json(state["json"]).outputs

    # ---- inference --------------------------------------------------------------------
    def infer_shape(self, *args, **kwargs):
        from .infer import symbol_infer_shape

        return symbol_infer_shape(self, args, kwargs, partial=False)

    def infer_shape_partial(self, *args, **kwargs):
        from .infer import symbol_infer_shape

        return symbol_infer_shape(self, args, kwargs, partial=True)

    def infer_type(self, *args, **kwargs):
        from .infer import symbol_infer_type

        return symbol_infer_type(self, args, kwargs, partial=False)

    def infer_type_partial(self, *args, **kwargs):
        from .infer import symbol_infer_type

        return symbol_infer_type(self, args, kwargs, partial=True)

    # ---- serialization and display ----------------------------------------------------
    def tojson(self, remove_amp_cast: bool = True) -> str:
        from .serialize import to_json

        return to_json(self.outputs)

    def save(self, fname: str, remove_amp_cast: bool = True) -> None:
        from .serialize import save_text

        save_text(fname, self.tojson())

    def debug_str(self) -> str:
        lines = []
        for node in self._nodes():
            kind = (f"Variable:{node.name}" if node.is_variable
                    else f"Op:{node.op}, Name={node.name}")
            lines.append("-" * 20)
            lines.append(kind)
            if node.inputs:
                lines.append("Inputs:")
                for i, entry in enumerate(node.inputs):
                    lines.append(f"\targ[{i}]={entry.node.name}({entry.index})")
            if node.attrs:
                lines.append("Attrs:")
                for key in sorted(node.attrs):
                    lines.append(f"\t{key}={node.attrs[key]}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return dump(self.outputs)

    # ---- execution (implemented by runtime) -------------------------------------------
    def _binder(self):
        if _BINDER is None:
            raise RuntimeError("no executor backend: import symgraph (the package) first")
        return _BINDER

    def simple_bind(self, ctx=None, grad_req="write", type_dict=None, stype_dict=None,
                    group2ctx=None, shared_arg_names=None, shared_exec=None,
                    shared_buffer=None, **kwargs):
        return self._binder().simple_bind(self, ctx, grad_req=grad_req, type_dict=type_dict,
                                          shared_exec=shared_exec, **kwargs)

    def bind(self, ctx=None, args=None, args_grad=None, grad_req="write", aux_states=None,
             group2ctx=None, shared_exec=None):
        return self._binder().bind(self, ctx, args, args_grad=args_grad, grad_req=grad_req,
                                   aux_states=aux_states, shared_exec=shared_exec)

    def eval(self, ctx=None, **kwargs):
        return self.bind(ctx, kwargs).forward()

    # ---- arithmetic -------------------------------------------------------------------
    def _binary(self, other, op, scalar_op, rscalar_op=None, reverse=False):
        if isinstance(other, Symbol):
            args = (other, self) if reverse else (self, other)
            return compose.create(op, args, {}, name=None)
        if isinstance(other, (numbers.Number, np.generic)) and not isinstance(other, bool):
            chosen = rscalar_op if (reverse and rscalar_op) else scalar_op
            return compose.create(chosen, (self,), {"scalar": float(other)}, name=None)
        raise TypeError(f"type {type(other).__name__} not supported with Symbol")

    def __add__(self, other):
        return self._binary(other, "elemwise_add", "_plus_scalar")

    __radd__ = __add__

    def __sub__(self, other):
        return self._binary(other, "elemwise_sub", "_minus_scalar")

    def __rsub__(self, other):
        return self._binary(other, "elemwise_sub", "_minus_scalar", "_rminus_scalar", True)

    def __mul__(self, other):
        return self._binary(other, "elemwise_mul", "_mul_scalar")

    __rmul__ = __mul__

    def __truediv__(self, other):
        return self._binary(other, "elemwise_div", "_div_scalar")

    def __rtruediv__(self, other):
        return self._binary(other, "elemwise_div", "_div_scalar", "_rdiv_scalar", True)

    def __mod__(self, other):
        return self._binary(other, "_mod", "_mod_scalar")

    def __rmod__(self, other):
        return self._binary(other, "_mod", "_mod_scalar", "_rmod_scalar", True)

    def __pow__(self, other):
        return self._binary(other, "_power", "_power_scalar")

    def __rpow__(self, other):
        return self._binary(other, "_power", "_power_scalar", "_rpower_scalar", True)

    def __neg__(self):
        return compose.create("_mul_scalar", (self,), {"scalar": -1.0}, name=None)

    def __abs__(self):
        return compose.create("abs", (self,), {}, name=None)

    def __eq__(self, other):
        return self._binary(other, "_equal", "_equal_scalar")

    def __ne__(self, other):
        return self._binary(other, "_not_equal", "_not_equal_scalar")

    def __gt__(self, other):
        return self._binary(other, "_greater", "_greater_scalar")

    def __ge__(self, other):
        return self._binary(other, "_greater_equal", "_greater_equal_scalar")

    def __lt__(self, other):
        return self._binary(other, "_lesser", "_lesser_scalar")

    def __le__(self, other):
        return self._binary(other, "_lesser_equal", "_lesser_equal_scalar")

    __hash__ = object.__hash__

    def __bool__(self):
        raise NotImplementedError("the truth value of a Symbol is not defined")

    def _inplace(self, other):
        raise NotImplementedError("in-place operators are not supported on Symbols")

    __iadd__ = __isub__ = __imul__ = __itruediv__ = _inplace

    # ---- fluent methods ---------------------------------------------------------------
    def _fluent(self, op, **kwargs):
        return compose.create(op, (self,), kwargs, name=kwargs.pop("name", None))

    def reshape(self, *args, **kwargs):
        if args:
            kwargs["shape"] = args[0] if len(args) == 1 else args
        return self._fluent("Reshape", **kwargs)

    def flatten(self, **kw):
        return self._fluent("Flatten", **kw)

    def expand_dims(self, axis, **kw):
        return self._fluent("expand_dims", axis=axis, **kw)

    def transpose(self, axes=None, **kw):
        return self._fluent("transpose", axes=axes, **kw)

    def sum(self, axis=None, keepdims=False, **kw):
        return self._fluent("sum", axis=axis, keepdims=keepdims, **kw)

    def mean(self, axis=None, keepdims=False, **kw):
        return self._fluent("mean", axis=axis, keepdims=keepdims, **kw)

    def max(self, axis=None, keepdims=False, **kw):
        return self._fluent("max", axis=axis, keepdims=keepdims, **kw)

    def min(self, axis=None, keepdims=False, **kw):
        return self._fluent("min", axis=axis, keepdims=keepdims, **kw)

    def argmax(self, axis=None, keepdims=False, **kw):
        return self._fluent("argmax", axis=axis, keepdims=keepdims, **kw)

    def softmax(self, axis=-1, **kw):
        return self._fluent("softmax", axis=axis, **kw)

    def log_softmax(self, axis=-1, **kw):
        return self._fluent("log_softmax", axis=axis, **kw)

    def clip(self, a_min, a_max, **kw):
        return self._fluent("clip", a_min=a_min, a_max=a_max, **kw)

    def relu(self, **kw):
        return self._fluent("relu", **kw)

    def sigmoid(self, **kw):
        return self._fluent("sigmoid", **kw)

    def tanh(self, **kw):
        return self._fluent("tanh", **kw)

    def exp(self, **kw):
        return self._fluent("exp", **kw)

    def log(self, **kw):
        return self._fluent("log", **kw)

    def sqrt(self, **kw):
        return self._fluent("sqrt", **kw)

    def square(self, **kw):
        return self._fluent("square", **kw)

    def abs(self, **kw):
        return self._fluent("abs", **kw)

    def one_hot(self, depth, **kw):
        return self._fluent("one_hot", depth=depth, **kw)


def Variable(name, attr=None, shape=None, lr_mult=None, wd_mult=None, dtype=None, init=None,
             stype=None, **kwargs) -> Symbol:
    """A named input of the graph: data, label or parameter (MXNet's ``mx.sym.Variable``)."""
    if not isinstance(name, str):
        raise TypeError("Variable name must be a string")
    attrs = compose.hide_keys(current_attr_scope().get(attr))
    if shape is not None:
        attrs["__shape__"] = str(tuple(shape))
    if lr_mult is not None:
        attrs["__lr_mult__"] = str(lr_mult)
    if wd_mult is not None:
        attrs["__wd_mult__"] = str(wd_mult)
    if dtype is not None:
        attrs["__dtype__"] = str(dtype_code(dtype))
    if init is not None:
        attrs["__init__"] = init if isinstance(init, str) else init.dumps()
    if stype is not None:
        attrs["__storage_type__"] = str({"default": 0, "row_sparse": 1, "csr": 2}[stype])
    for key, value in kwargs.items():
        if not (key.startswith("__") and key.endswith("__")):
            raise ValueError(f"Attribute name={key} is not supported. Additional attributes "
                             "must start and end with double underscores, e.g, __yourattr__")
        attrs[key] = str(value)
    return Symbol((Entry(make_variable(name, attrs), 0),))


var = Variable


def Group(symbols) -> Symbol:
    """One symbol whose outputs are the outputs of ``symbols``, in order."""
    symbols = list(symbols)
    if not symbols or not all(isinstance(s, Symbol) for s in symbols):
        raise TypeError("Expected a list of symbols as input")
    entries = [entry for s in symbols for entry in s.outputs]
    compose.check_unique_names(entries)
    return Symbol(entries)


DTYPE_CODES = {
    "float32": 0, "float64": 1, "float16": 2, "uint8": 3, "int32": 4, "int8": 5, "int64": 6,
    "bool": 7, "int16": 8, "uint16": 9, "uint32": 10, "uint64": 11,
}
CODE_DTYPES = {code: name for name, code in DTYPE_CODES.items()}


def dtype_code(dtype) -> int:
    return DTYPE_CODES[np.dtype(dtype).name]


def load(fname: str) -> Symbol:
    """Read a symbol JSON file (MXNet's ``mx.sym.load``)."""
    from .serialize import load_file

    return Symbol(load_file(fname))


def load_json(json_str: str) -> Symbol:
    """Read a symbol from JSON text (MXNet's ``mx.sym.load_json``)."""
    from .serialize import from_json

    if not isinstance(json_str, str):
        raise TypeError("load_json expects a string")
    return Symbol(from_json(json_str))


__all__ = ["Symbol", "Variable", "var", "Group", "load", "load_json", "json"]
