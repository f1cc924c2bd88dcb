"""``sg.onnx.import_model``: an ONNX file as ``(sym, arg_params, aux_params)``.

Each ONNX node goes through its entry in the import table (``import_ops.py``). Initializers
a node reads as data become variables with their arrays as parameters; those it reads as
settings (a Reshape target, Slice bounds, Clip limits) stay constants. Two ONNX idioms
have no tensor in symgraph and are tracked instead: ``Shape(x)`` (a later Reshape, Expand
or ConstantOfShape becomes reshape_like / broadcast_like / zeros_like of ``x``) and the
int64 or bool views of a float tensor (Cast to int64 before a Gather, a comparison's bool),
since symgraph keeps indices and flags as floats, as MXNet does.
"""

from __future__ import annotations

import os
import re

import numpy as np

from runtime.onnx.errors import OnnxError, require
from runtime.onnx.table import IMPORTERS, _load_tables
from symgraph import compose
from symgraph import symbol as symbol_mod


class ImportContext:
    """The symgraph view of the ONNX tensors met so far."""

    def __init__(self, onnx, model):
        self.onnx = onnx
        self.symbols: dict[str, object] = {}
        self.consts: dict[str, np.ndarray] = {}
        self._names: set[str] = set()
        self.shape_of: dict[str, object] = {}
        self.kind: dict[str, str] = {}
        self.topk_of: dict[str, tuple] = {}  # TopK indices -> (data, k, axis, ascend)
        self.filled: dict[str, float] = {}  # ConstantOfShape outputs -> their value
        self.params: dict[str, np.ndarray] = {}
        self.ranks: dict[str, int] = {}
        self.dims: dict[str, tuple] = {}
        self.dtypes: dict[str, np.dtype] = {}
        self.node = None
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                          13)
        for init in model.graph.initializer:
            self.consts[init.name] = onnx.numpy_helper.to_array(init)
        self._names.update(self.consts)  # node names never shadow a variable's
        self._names.update(info.name for info in model.graph.input)
        self._read_value_info(model)

    def _read_value_info(self, model):
        try:
            inferred = self.onnx.shape_inference.infer_shapes(model)
        except Exception:  # noqa: BLE001 - shapes are a help, not a requirement
            inferred = model
        graph = inferred.graph
        for info in list(graph.input) + list(graph.value_info) + list(graph.output):
            tensor = info.type.tensor_type
            if not tensor.HasField("shape"):
                continue
            dims = tuple(d.dim_value if d.HasField("dim_value") else None
                         for d in tensor.shape.dim)
            self.ranks[info.name] = len(dims)
            self.dims[info.name] = dims
            if tensor.elem_type:
                self.dtypes[info.name] = np.dtype(
                    self.onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type))

    # ---- reading inputs ------------------------------------------------------------------
    def has(self, name: str) -> bool:
        return bool(name)

    def is_const(self, name: str) -> bool:
        return name in self.consts and name not in self.symbols

    def const(self, name: str, what: str = "input") -> np.ndarray:
        if name not in self.consts:
            self.fail(f"{what} '{name}' must be a constant (an initializer or Constant)")
        return self.consts[name]

    def sym(self, name: str):
        """The symbol for tensor ``name``; a constant read as data becomes a variable."""
        if name in self.symbols:
            return self.symbols[name]
        if name in self.consts:
            var = symbol_mod.Variable(name)
            self.params[name] = self.consts[name]
            self.symbols[name] = var
            return var
        if name in self.shape_of:
            self.fail(f"the shape tensor '{name}' is used as data, which symgraph cannot "
                      "express")
        self.fail(f"input '{name}' is not produced by any earlier node")

    def rank(self, name: str) -> int:
        if name in self.consts and name not in self.symbols:
            return self.consts[name].ndim
        if name not in self.ranks:
            self.fail(f"the rank of '{name}' is unknown (run onnx shape inference first)")
        return self.ranks[name]

    def shape(self, name: str) -> tuple:
        if name in self.consts and name not in self.symbols:
            return tuple(self.consts[name].shape)
        return self.dims.get(name, ())

    # ---- writing outputs -----------------------------------------------------------------
    def name(self, index: int = 0) -> str:
        """A node name from the output name, so exported ``fc1_output`` comes back as fc1."""
        out = self.node.output[index] if index < len(self.node.output) else self.node.name
        base = re.sub(r"_output\d*$", "", out) or self.node.op_type.lower()
        name, k = base, 0
        while name in self._names:
            k += 1
            name = f"{base}_{k}"
        self._names.add(name)
        return name

    def op(self, op_name: str, *inputs, name: str | None = None, **attrs):
        attrs = {k: v for k, v in attrs.items() if v is not None}
        return compose.create(op_name, inputs, attrs, name=name or self.name())

    def fail(self, why: str):
        node = self.node
        raise OnnxError(f"ONNX {node.op_type} node '{node.name or node.output[0]}': {why}")

    def reject(self, attr: str, value, why: str):
        self.fail(f"attribute {attr}={value!r} has no symgraph mapping ({why})")


def node_attrs(onnx, node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _decode(value):
    return value.decode() if isinstance(value, bytes) else value


def _run_node(ic: ImportContext, node) -> None:
    ic.node = node
    if node.op_type == "Constant":
        ic.consts[node.output[0]] = _constant_value(ic, node)
        return
    if node.domain not in ("", "ai.onnx"):
        ic.fail(f"operator domain '{node.domain}' is not supported")
    convert = IMPORTERS.get(node.op_type)
    if convert is None:
        ic.fail(f"op type {node.op_type} has no symgraph mapping yet "
                "(see runtime/onnx/import_ops.py)")
    attrs = {k: _decode(v) for k, v in node_attrs(ic.onnx, node).items()}
    outputs = convert(ic, node, attrs)
    if outputs is None:
        return
    for name, value in zip(node.output, outputs):
        if name and value is not None:
            ic.symbols[name] = value


def _constant_value(ic, node) -> np.ndarray:
    attrs = node_attrs(ic.onnx, node)
    if "value" in attrs:
        return ic.onnx.numpy_helper.to_array(attrs["value"])
    for key, dtype in (("value_float", np.float32), ("value_int", np.int64),
                       ("value_floats", np.float32), ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    ic.fail(f"Constant with {sorted(attrs)} is not supported")


def _load(path_or_model, onnx):
    if isinstance(path_or_model, (str, os.PathLike)):
        return onnx.load(os.fspath(path_or_model))
    return path_or_model


def import_model(model_file):
    """``(sym, arg_params, aux_params)`` for an ONNX file (or ModelProto), MXNet's
    ``mx.onnx.import_model``; the params are numpy arrays keyed by variable name."""
    onnx = require("onnx")
    _load_tables()
    model = _load(model_file, onnx)
    ic = ImportContext(onnx, model)
    for info in model.graph.input:
        if info.name not in ic.consts:
            ic.symbols[info.name] = symbol_mod.Variable(info.name)
    for node in model.graph.node:
        _run_node(ic, node)
    heads = []
    for info in model.graph.output:
        if info.name not in ic.symbols:
            raise OnnxError(f"ONNX output '{info.name}' is not a tensor symgraph can build")
        heads.append(ic.symbols[info.name])
    sym = heads[0] if len(heads) == 1 else symbol_mod.Group(heads)
    aux_names = set(sym.list_auxiliary_states())
    used = set(sym.list_inputs())
    arg_params = {k: v for k, v in ic.params.items() if k in used and k not in aux_names}
    aux_params = {k: v for k, v in ic.params.items() if k in aux_names}
    return sym, arg_params, aux_params


def import_to_gluon(model_file, ctx=None):
    """The imported model as a ``gluon.SymbolBlock`` with its parameters set (MXNet's
    ``mx.contrib.onnx.import_to_gluon``)."""
    import symgraph as sg

    sym, arg_params, aux_params = import_model(model_file)
    values = {**arg_params, **aux_params}
    data_names = [n for n in sym.list_inputs() if n not in values]
    block = sg.gluon.SymbolBlock(sym, [symbol_mod.Variable(n) for n in data_names])
    params = block.collect_params()
    for name, value in values.items():
        param = params[name]
        param.shape = value.shape
        param.initialize(ctx=ctx, force_reinit=True)
        param.set_data(sg.nd.array(value, dtype=value.dtype))
    return block
