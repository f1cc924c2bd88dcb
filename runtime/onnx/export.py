"""``sg.onnx.export_model``: a symbol and its parameters as an ONNX model (MXNet's signature).

The exported graph is the inference graph: each node goes through its entry in the converter
table (``table.py``), training-only inputs (SoftmaxOutput's label) are dropped, and the
shapes symgraph infers are what reshape-like converters write. With ``dynamic=True`` the
batch axis is symbolic: shape inference runs twice, at the given batch and at twice it, and
the dims that change are the ones written as -1 or as a symbolic dim.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from runtime.onnx.emit import Emitter, NodeView
from runtime.onnx.errors import OnnxError, require
from runtime.onnx.table import find_exporter
from symgraph import symbol as symbol_mod
from symgraph.errors import SymgraphError
from symgraph.fileio import atomic_write
from symgraph.graph import Entry, topo_order
from symgraph.infer import attr_shape, infer_dtypes, infer_shapes

MIN_OPSET = 13


# ---- inputs: files or objects ---------------------------------------------------------------
def _load_symbol(sym):
    if isinstance(sym, (str, os.PathLike)):
        return symbol_mod.load(os.fspath(sym))
    if not isinstance(sym, symbol_mod.Symbol):
        raise OnnxError(f"export_model: sym must be a Symbol or a -symbol.json path, got "
                        f"{type(sym).__name__}")
    return sym


def _load_params(params) -> dict:
    """A dict of arrays (MXNet's 'arg:'/'aux:' prefixes stripped) or a .params file."""
    if params is None:
        return {}
    if isinstance(params, (str, os.PathLike)):
        from runtime import ndarray_io

        params = ndarray_io.load(os.fspath(params))
        if isinstance(params, list):
            raise OnnxError("export_model: the params file holds arrays without names")
    if isinstance(params, (tuple, list)) and len(params) == 2 and all(
            isinstance(p, dict) for p in params):
        params = {**params[0], **params[1]}
    out = {}
    for key, value in dict(params).items():
        kind, sep, rest = key.partition(":")
        name = rest if sep and kind in ("arg", "aux") else key
        out[name] = np.asarray(value.asnumpy() if hasattr(value, "asnumpy") else value)
    return out


# ---- which variables the exported graph reads -------------------------------------------------
def _reached_variables(heads) -> set[int]:
    """Variables reachable without passing a dropped (training-only) input slot."""
    seen, reached, stack = set(), set(), [e.node for e in heads]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.is_variable:
            reached.add(id(node))
            continue
        entry = find_exporter(node.op)
        drops = entry.drops if entry else ()
        stack.extend(e.node for i, e in enumerate(node.inputs) if i not in drops)
    return reached


@dataclass
class _Inputs:
    names: list
    shapes: dict
    dtypes: dict
    dynamic: dict  # name -> tuple of per-dim "symbolic" flags
    reached: set  # ids of the variable nodes the exported graph reads (params included)


def _data_inputs(symbol, nodes, params, in_shapes, in_types, dynamic, dynamic_input_shapes):
    reached = _reached_variables(symbol.outputs)
    aux = set(symbol.list_auxiliary_states())
    names = [n.name for n in nodes if n.is_variable and id(n) in reached
             and n.name not in params]
    missing_aux = [name for name in names if name in aux]
    if missing_aux:
        raise OnnxError(f"export_model: params have no value for the auxiliary states "
                        f"{missing_aux}")
    shapes = _named(names, in_shapes, "in_shapes", nodes)
    dtypes = _named(names, in_types if isinstance(in_types, (list, tuple, dict)) else
                    [in_types] * len(names), "in_types", nodes, shape=False)
    dtypes = {name: np.dtype(dtypes.get(name, np.float32)).name for name in names}
    return _Inputs(names, shapes, dtypes, _dynamic_dims(names, shapes, dynamic,
                                                        dynamic_input_shapes), reached)


def _dynamic_dims(names, shapes, dynamic, dynamic_input_shapes) -> dict:
    """Per input, which dims are symbolic: the None dims of dynamic_input_shapes, else the
    batch axis (MXNet's default for dynamic=True)."""
    if not dynamic:
        return {name: (False,) * len(shapes[name]) for name in names}
    if dynamic_input_shapes is None:
        return {name: tuple(k == 0 for k in range(len(shapes[name]))) for name in names}
    given = list(dynamic_input_shapes)
    if len(given) != len(names):
        raise OnnxError(f"export_model: dynamic_input_shapes has {len(given)} entries for the "
                        f"{len(names)} inputs {names}")
    out = {}
    for name, dims in zip(names, given):
        if len(dims) != len(shapes[name]) or any(
                d is not None and d != s for d, s in zip(dims, shapes[name])):
            raise OnnxError(f"export_model: dynamic_input_shapes gives '{name}' "
                            f"{tuple(dims)}, which does not fit in_shapes {shapes[name]}")
        out[name] = tuple(d is None for d in dims)
    return out


def _named(names, given, what, nodes, shape=True) -> dict:
    if isinstance(given, dict):
        variables = {n.name for n in nodes if n.is_variable}
        unknown = set(given) - variables
        if unknown:
            raise OnnxError(f"export_model: {what} names {sorted(unknown)} are not inputs; the "
                            f"inputs are {names}")
        values = {k: v for k, v in given.items() if k in names}  # labels are dropped
    else:
        values = dict(zip(names, list(given or [])))
        if given is not None and len(list(given)) != len(names):
            raise OnnxError(f"export_model: {what} has {len(list(given))} entries for the "
                            f"{len(names)} inputs {names}")
    if shape:
        by_name = {n.name: n for n in nodes if n.is_variable}
        for name in names:
            if name not in values:  # a Variable(shape=...) carries its own
                values[name] = attr_shape(by_name[name])
                if values[name] is None:
                    raise OnnxError(f"export_model: no shape for input '{name}'; pass "
                                    "in_shapes")
        return {k: tuple(int(d) for d in v) for k, v in values.items()}
    return {k: v for k, v in values.items()}


# ---- the opset -----------------------------------------------------------------------------------
def _runtime_max_opset(onnx) -> int | None:
    """The newest opset the installed onnxruntime loads (None without onnxruntime)."""
    try:
        import onnxruntime
    except ImportError:
        return None
    h = onnx.helper
    best = None
    for version in range(MIN_OPSET, onnx.defs.onnx_opset_version() + 1):
        value = h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
        graph = h.make_graph([h.make_node("Identity", ["x"], ["y"])], "probe", [value],
                             [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
        model = _model(onnx, graph, version)
        try:
            onnxruntime.InferenceSession(model.SerializeToString(),
                                         providers=["CPUExecutionProvider"])
        except Exception:  # noqa: BLE001 - any refusal means "not this opset"
            break
        best = version
    return best


_OPSET_CACHE: dict = {}


def default_opset(onnx) -> int:
    if "default" not in _OPSET_CACHE:
        newest = onnx.defs.onnx_opset_version()
        runtime = _runtime_max_opset(onnx)
        _OPSET_CACHE["default"] = newest if runtime is None else min(newest, runtime)
    return _OPSET_CACHE["default"]


def _model(onnx, graph, opset: int):
    opsets = [onnx.helper.make_opsetid("", opset)]
    ir = onnx.helper.find_min_ir_version_for(opsets)
    return onnx.helper.make_model(graph, opset_imports=opsets, ir_version=ir,
                                  producer_name="symgraph", producer_version="0.1.0")


# ---- the graph ---------------------------------------------------------------------------------
def _tensor_name(entry: Entry) -> str:
    return entry.label


def _dyn_flags(shapes, alt_shapes, entry):
    a, b = shapes.get(entry), alt_shapes.get(entry)
    if a is None or b is None:
        return ()
    return tuple(x != y for x, y in zip(a, b))


def _infer(heads, inputs: _Inputs, params, scale_dynamic: bool):
    known = {name: tuple(d * 2 if scale_dynamic and flag else d for d, flag in
                         zip(inputs.shapes[name], inputs.dynamic[name]))
             for name in inputs.names}
    known.update({name: tuple(v.shape) for name, v in params.items()})
    try:
        return infer_shapes(heads, known)
    except SymgraphError as err:
        if not scale_dynamic:
            raise
        raise OnnxError(f"export_model: the graph does not keep its shape rules when the "
                        f"dynamic dims change ({err}); export with dynamic=False") from None


def _view(node, export_entry, names, shapes, alt, dtypes) -> NodeView:
    ins = [("" if i in export_entry.drops else names[id(e.node), e.index])
           for i, e in enumerate(node.inputs)]
    outs = [Entry(node, k) for k in range(node.num_outputs())]
    return NodeView(
        name=node.name, op=node.op, p=node.params, inputs=ins,
        outputs=[_tensor_name(e) for e in outs],
        in_shapes=[shapes.get(e) for e in node.inputs], out_shapes=[shapes.get(e) for e in outs],
        in_dtypes=[dtypes.get(e) for e in node.inputs], out_dtypes=[dtypes.get(e) for e in outs],
        in_dyn=[_dyn_flags(shapes, alt, e) for e in node.inputs],
        out_dyn=[_dyn_flags(shapes, alt, e) for e in outs])


def _value_info(onnx, name, dtype, shape, dyn, dim_names):
    dims = [dim_names.get((name, k), f"{name}_dim{k}") if flag else d
            for k, (d, flag) in enumerate(zip(shape, dyn or (False,) * len(shape)))]
    return onnx.helper.make_tensor_value_info(name, onnx.helper.np_dtype_to_tensor_dtype(
        np.dtype(dtype)), dims)


def build_model(sym, params, in_shapes=None, in_types=np.float32, dynamic=False,
                dynamic_input_shapes=None, opset_version=None):
    """The ONNX ModelProto (not checked, not written); export_model wraps this."""
    onnx = require("onnx")
    symbol = _load_symbol(sym)
    params = _load_params(params)
    opset = int(opset_version) if opset_version is not None else default_opset(onnx)
    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise OnnxError(f"export_model: opset_version={opset} is outside {MIN_OPSET}.."
                        f"{onnx.defs.onnx_opset_version()} (the installed onnx's newest)")
    heads = list(symbol.outputs)
    nodes = topo_order(heads)
    inputs = _data_inputs(symbol, nodes, params, in_shapes, in_types, dynamic,
                          dynamic_input_shapes)
    used = {n.name for n in nodes if n.is_variable}
    params = {k: v for k, v in params.items() if k in used}
    shapes = _infer(heads, inputs, params, False)
    alt = _infer(heads, inputs, params, True) if any(
        any(flags) for flags in inputs.dynamic.values()) else shapes
    # the inputs' dtypes decide (params follow them, as binding casts them in MXNet), so
    # float64 arrays made with numpy still export a float32 model
    dtypes = infer_dtypes(heads, dict(inputs.dtypes), default=np.dtype(np.float32).name)
    return _emit(onnx, symbol, nodes, inputs, params, shapes, alt, dtypes, opset)


def _emit(onnx, symbol, nodes, inputs, params, shapes, alt, dtypes, opset):
    ctx = Emitter(onnx, opset)
    names: dict = {}
    for node in nodes:
        for k in range(node.num_outputs()):
            names[id(node), k] = _tensor_name(Entry(node, k))
            ctx.reserve(names[id(node), k])
    for node in nodes:
        if node.is_variable:
            if node.name in params and id(node) in inputs.reached:
                dtype = dtypes.get(Entry(node, 0), params[node.name].dtype.name)
                ctx.add_param(node.name, params[node.name].astype(dtype, copy=False))
            continue
        entry = find_exporter(node.op)
        if entry is None:
            raise OnnxError(f"{node.op} node '{node.name}': op {node.op} has no ONNX mapping "
                            "yet (see runtime/onnx/export_*.py)")
        ctx.scope = node.name
        entry.convert(ctx, _view(node, entry, names, shapes, alt, dtypes))
    dim_names = {(name, k): ("batch" if k == 0 else f"{name}_dim{k}")
                 for name in inputs.names for k, flag in enumerate(inputs.dynamic[name]) if flag}
    graph_inputs = [_value_info(onnx, name, inputs.dtypes[name], inputs.shapes[name],
                                inputs.dynamic[name], dim_names) for name in inputs.names]
    graph_outputs = []
    for e in symbol.outputs:
        name = _tensor_name(e)
        dyn = _dyn_flags(shapes, alt, e)
        out_names = {(name, 0): "batch"} if dyn and dyn[0] else {}
        graph_outputs.append(_value_info(onnx, name, dtypes[e], shapes[e], dyn, out_names))
    read = {name for node in ctx.nodes for name in node.input}
    read.update(_tensor_name(e) for e in symbol.outputs)
    initializers = [t for t in ctx.initializers if t.name in read]  # fix_gamma's gamma: unread
    graph = onnx.helper.make_graph(ctx.nodes, _graph_name(symbol), graph_inputs, graph_outputs,
                                   initializer=initializers)
    return _model(onnx, graph, opset)


def _graph_name(symbol) -> str:
    return symbol.name or "symgraph"


def export_model(sym, params, in_shapes=None, in_types=np.float32,
                 onnx_file_path="model.onnx", dynamic=False, dynamic_input_shapes=None,
                 run_shape_inference=False, opset_version=None, verbose=False):
    """Export ``sym`` with ``params`` to ``onnx_file_path`` (MXNet 1.9's signature); returns
    the path. The file passes ``onnx.checker.check_model`` and is written atomically."""
    onnx = require("onnx")
    model = build_model(sym, params, in_shapes, in_types, dynamic, dynamic_input_shapes,
                        opset_version)
    if run_shape_inference:
        model = onnx.shape_inference.infer_shapes(model)
    try:
        onnx.checker.check_model(model, full_check=run_shape_inference)
    except onnx.checker.ValidationError as err:
        raise OnnxError(f"export_model: the exported model fails onnx.checker: {err}") from None
    path = os.fspath(onnx_file_path)
    atomic_write(path, model.SerializeToString())
    if verbose:
        print(f"exported {len(model.graph.node)} ONNX nodes (opset "
              f"{model.opset_import[0].version}) to {path}")
    return path
