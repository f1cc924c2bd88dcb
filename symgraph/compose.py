"""Building nodes the way MXNet's op creators do: names, attrs, auto-created inputs.

Every public op function (``sg.sym.FullyConnected`` ...) ends in :func:`create`, which
splits its keyword arguments into input Symbols and attributes, names the node through the
current NameManager and creates the missing inputs as ``<name>_<argname>`` variables.
"""

from __future__ import annotations

from .errors import GraphError, OpAttributeError
from .graph import Entry, make_op_node, make_variable, topo_order
from .names import current, current_attr_scope
from .ops.params import attr_string
from .ops.registry import get_op

HIDDEN_KEYS = ("ctx_group", "lr_mult", "wd_mult", "force_mirroring", "mirror_stage")


def _symbol_class():
    from .symbol import Symbol

    return Symbol


def hide_keys(attrs: dict | None) -> dict:
    """MXNet's MXSymbolSetAttr/CreateAtomicSymbol: ``lr_mult`` etc. are stored ``__x__``.

    Applies to attr= dicts and AttrScope attrs too, so ``AttrScope(ctx_group='dev1')``
    around an op gives ``__ctx_group__`` instead of an unknown op parameter.
    """
    return {(f"__{k}__" if k in HIDDEN_KEYS else k): v for k, v in (attrs or {}).items()}


def split_kwargs(op_name: str, kwargs: dict):
    """Separate input Symbols from attribute values; hidden keys get their ``__x__`` form."""
    symbol_cls = _symbol_class()
    inputs, attrs = {}, {}
    for key, value in kwargs.items():
        if isinstance(value, symbol_cls):
            inputs[key] = value
        elif value is None:
            continue
        elif key in HIDDEN_KEYS:
            attrs[f"__{key}__"] = attr_string(value)
        elif key.endswith(tuple("_" + k for k in HIDDEN_KEYS)):
            raise OpAttributeError(
                f"{op_name}: '{key}' is deprecated in MXNet and not supported; set "
                f"{key.rsplit('_', 2)[-2]}_mult with attr= on the variable instead"
            )
        else:
            attrs[key] = attr_string(value)
    return inputs, attrs


def single_entry(symbol, what: str) -> Entry:
    if len(symbol.outputs) != 1:
        raise GraphError(
            f"{what}: an input symbol must have exactly one output, "
            f"got {len(symbol.outputs)} ({', '.join(symbol.list_outputs())})"
        )
    return symbol.outputs[0]


def create(op_name: str, args=(), kwargs=None, name=None, attr=None):
    """Compose one op node from positional and keyword inputs; returns a Symbol."""
    opdef = get_op(op_name)
    kw_inputs, attrs = split_kwargs(opdef.name, dict(kwargs or {}))
    symbol_cls = _symbol_class()
    for arg in args:
        if not isinstance(arg, symbol_cls):
            raise TypeError(f"{opdef.name}: positional inputs must be Symbols, got {type(arg)}")
    if opdef.variadic:
        if kw_inputs:
            raise GraphError(f"{opdef.name} takes its inputs positionally only")
        attrs["num_args"] = str(len(args))
    full_attrs = hide_keys(current_attr_scope().get(attr))
    full_attrs.update(attrs)
    node_name = current().get(name, opdef.hint)
    params = opdef.parse(full_attrs, node_name)
    input_names = opdef.input_names(params)
    var_attrs = _auto_var_attrs(opdef, params, len(input_names), full_attrs)
    entries = _match_inputs(opdef.name, node_name, input_names, list(args), kw_inputs, var_attrs)
    node = make_op_node(opdef.name, node_name, entries, full_attrs)
    visible = node.num_visible_outputs()
    symbol = symbol_cls(tuple(Entry(node, i) for i in range(visible)))
    check_unique_names(symbol.outputs)
    return symbol


def _match_inputs(op, node_name, input_names, args, kw_inputs, var_attrs):
    if len(args) > len(input_names):
        raise GraphError(
            f"{op} node '{node_name}' takes {len(input_names)} inputs "
            f"({', '.join(input_names)}), got {len(args)} positional symbols"
        )
    for key in kw_inputs:
        if key not in input_names:
            raise GraphError(
                f"{op} node '{node_name}': unknown input '{key}'; inputs are "
                f"{', '.join(input_names)}"
            )
    entries = []
    for pos, input_name in enumerate(input_names):
        if pos < len(args):
            if input_name in kw_inputs:
                raise GraphError(f"{op} node '{node_name}': input '{input_name}' given twice")
            entries.append(single_entry(args[pos], f"{op} node '{node_name}'"))
        elif input_name in kw_inputs:
            entries.append(single_entry(kw_inputs[input_name], f"{op} node '{node_name}'"))
        else:
            variable = make_variable(f"{node_name}_{input_name}", var_attrs[pos])
            entries.append(Entry(variable, 0))
    return entries


def _auto_var_attrs(opdef, params, count, op_attrs) -> list[dict]:
    """Attrs of each auto-created input: a copy of the op's whole attr dict (MXNet does
    this), plus what the op asks for its inputs, e.g. BatchNorm's ``__init__`` on the
    moving statistics (MXNet's FSetInputVarAttrOnCompose)."""
    extra = getattr(opdef, "input_var_attrs", lambda p: {})(params)
    result = []
    for index in range(count):
        attrs = dict(op_attrs)
        for key, value in extra.get(index, {}).items():
            attrs.setdefault(key, value)
        result.append(attrs)
    return result


def check_unique_names(heads) -> None:
    """Two distinct variables with one name would make argument lists ambiguous."""
    seen: dict[str, int] = {}
    for node in topo_order(heads):
        if node.is_variable:
            other = seen.setdefault(node.name, id(node))
            if other != id(node):
                raise GraphError(
                    f"duplicate argument name '{node.name}': two different variables carry it; "
                    "give each layer a unique name"
                )
