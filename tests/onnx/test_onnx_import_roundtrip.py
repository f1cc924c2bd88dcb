"""symgraph -> ONNX -> symgraph: the imported graph gives the original outputs, for every
op-table case and for the models."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_helpers import F32, assert_close, graph_internal, onnx
from op_table import CASES

from runtime.onnx import OnnxError, export_model, import_model
from symgraph.reference import evaluate

DIMS = (3, 4, 5)
SAMPLED = {"Dropout-always"}


def roundtrip(tmp_path, symbol, params, inputs, **kw):
    path = tmp_path / "model.onnx"
    export_model(symbol, params, in_shapes={k: v.shape for k, v in inputs.items()},
                 onnx_file_path=path, **kw)
    return import_model(path)


@pytest.mark.parametrize("case", [c for c in CASES if c.id not in SAMPLED and
                                  not graph_internal(c)], ids=lambda c: c.id)
def test_case_roundtrip(tmp_path, case):
    symbol = case.symbol()
    rng = np.random.default_rng(11)
    values = {k: v.astype(F32) for k, v in case.values(rng, DIMS).items()}
    aux = set(symbol.list_auxiliary_states())
    params = {k: v for k, v in values.items() if k in aux}
    inputs = {k: v for k, v in values.items() if k not in aux}
    back, arg_params, aux_params = roundtrip(tmp_path, symbol, params, inputs)
    want = evaluate(symbol.outputs, values)
    feed = {**arg_params, **aux_params, **inputs}
    got = evaluate(back.outputs, {k: feed[k] for k in back.list_inputs()})
    for k, (g, w) in enumerate(zip(got, want)):
        assert_close(np.asarray(g), w, f"{case.id} output {k}")


def test_unknown_onnx_op_names_node_and_type(tmp_path):
    h = onnx.helper
    x = h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])
    y = h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3])
    graph = h.make_graph([h.make_node("Hardmax", ["x"], ["y"], name="hm")], "g", [x], [y])
    path = tmp_path / "hardmax.onnx"
    onnx.save(h.make_model(graph), str(path))
    with pytest.raises(OnnxError, match=r"Hardmax node 'hm'.*no symgraph mapping"):
        import_model(path)


def test_node_names_never_shadow_variables(tmp_path):
    """An output named like an input plus '_output' must not make a node named 'data'."""
    h = onnx.helper
    x = h.make_tensor_value_info("data", onnx.TensorProto.FLOAT, [2, 3])
    y = h.make_tensor_value_info("data_output", onnx.TensorProto.FLOAT, [2, 3])
    graph = h.make_graph([h.make_node("Relu", ["data"], ["data_output"])], "g", [x], [y])
    path = tmp_path / "names.onnx"
    onnx.save(h.make_model(graph), str(path))
    sym, _, _ = import_model(path)
    assert sym.list_arguments() == ["data"] and sym.name != "data"
    value = np.array([[-1.0, 2.0, -3.0], [4.0, -5.0, 6.0]], F32)
    np.testing.assert_array_equal(evaluate(sym.outputs, {"data": value})[0], np.maximum(value, 0))
