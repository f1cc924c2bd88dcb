"""export_model's MXNet signature and its errors: files or objects, opsets, dynamic shapes,
ops and attributes without a mapping, and a clear message when onnx is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx_helpers import F32, assert_close, onnx, reference, run_onnx
from op_table import CASES

import symgraph as sg
from runtime.checkpoint import save_checkpoint
from runtime.onnx import OnnxError, export_model
from runtime.onnx.table import registered_without_export

S = sg.sym
ROOT = Path(__file__).resolve().parents[2]


def small_net():
    net = S.Convolution(S.Variable("data"), name="conv", kernel=(3, 3), num_filter=4, pad=(1, 1))
    net = S.Activation(net, name="relu", act_type="relu")
    net = S.Pooling(net, name="pool", kernel=(2, 2), stride=(2, 2), pool_type="max")
    net = S.FullyConnected(net, name="fc", num_hidden=5)
    return S.SoftmaxOutput(net, name="softmax")


def small_params(rng):
    return {"conv_weight": rng.standard_normal((4, 2, 3, 3)).astype(F32),
            "conv_bias": rng.standard_normal(4).astype(F32),
            "fc_weight": rng.standard_normal((5, 4 * 3 * 4)).astype(F32),
            "fc_bias": rng.standard_normal(5).astype(F32)}


def test_files_in_and_label_dropped(tmp_path):
    rng = np.random.default_rng(0)
    net, params = small_net(), small_params(rng)
    prefix = str(tmp_path / "net")
    save_checkpoint(prefix, 3, net, params, {})
    path = export_model(prefix + "-symbol.json", prefix + "-0003.params", [(2, 2, 6, 8)],
                        onnx_file_path=tmp_path / "net.onnx")
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["data"]  # softmax_label is dropped
    assert [o.name for o in model.graph.output] == ["softmax_output"]
    x = rng.standard_normal((2, 2, 6, 8)).astype(F32)
    (got,) = run_onnx(path, {"data": x})
    want = reference(net, {"data": x, "softmax_label": np.zeros(2, F32), **params})[0]
    assert_close(got, want, "files")


@pytest.mark.parametrize("opset", [13, 17, 18, 20])
@pytest.mark.parametrize("case", [c for c in CASES if c.op in (
    "sum", "mean", "max", "LeakyReLU", "SliceChannel", "expand_dims", "squeeze", "Pooling")],
    ids=lambda c: c.id)
def test_older_opsets(tmp_path, case, opset):
    """Reduce axes moved from attribute to input at 18, Gelu arrived at 20."""
    rng = np.random.default_rng(3)
    values = {k: v.astype(F32) for k, v in case.values(rng, (3, 4, 5)).items()}
    symbol = case.symbol()
    path = export_model(symbol, {}, {k: v.shape for k, v in values.items()},
                        onnx_file_path=tmp_path / "m.onnx", opset_version=opset)
    model = onnx.load(str(path))
    assert model.opset_import[0].version == opset
    onnx.checker.check_model(model, full_check=True)
    for g, w in zip(run_onnx(path, values), reference(symbol, values)):
        assert_close(g, w, f"{case.id} opset {opset}")


def test_opset_out_of_range():
    with pytest.raises(OnnxError, match="opset_version=11"):
        export_model(small_net(), small_params(np.random.default_rng(0)), [(1, 2, 6, 8)],
                     opset_version=11)


def test_dynamic_input_shapes_and_types(tmp_path):
    x, y = S.Variable("x"), S.Variable("y")
    net = S.broadcast_add(S.sum(x, axis=1), y, name="out")
    path = export_model(net, {}, [(2, 3), (1,)], [np.float64, np.float64],
                        onnx_file_path=tmp_path / "m.onnx", dynamic=True,
                        dynamic_input_shapes=[(None, 3), (1,)])
    graph = onnx.load(str(path)).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert graph.input[1].type.tensor_type.shape.dim[0].dim_value == 1
    xv, yv = np.arange(15.0).reshape(5, 3), np.array([0.5])
    (got,) = run_onnx(path, {"x": xv, "y": yv})
    np.testing.assert_allclose(got, xv.sum(1) + 0.5)


def test_op_without_mapping_names_node_and_op():
    """A gradient graph holds internal ops (here _softmax_output_grad) with no ONNX form."""
    grad = S.grad(small_net(), ["fc_weight"])
    params = small_params(np.random.default_rng(0))
    with pytest.raises(OnnxError, match=r"_\w+_grad node '.*': op _\w+_grad has no ONNX mapping"):
        export_model(grad, params, {"data": (1, 2, 6, 8), "softmax_label": (1,)})


def test_attribute_without_mapping_names_it():
    net = S.dot(S.Variable("a"), S.Variable("b"), transpose_a=True, name="nd")
    with pytest.raises(sg.SymgraphError, match="dot node 'nd': attribute transpose_a=True"):
        export_model(net, {}, [(2, 3, 4), (3, 5)])


def test_missing_input_shape_is_clear():
    with pytest.raises(OnnxError, match="no shape for input 'data'"):
        export_model(small_net(), small_params(np.random.default_rng(0)))


def test_registered_ops_without_export_are_internal_only():
    """What is left are the graph-internal gradient ops (reported to the user)."""
    missing = registered_without_export()
    assert all(op.startswith("_") for op in missing), missing


def test_module_imports_without_onnx_and_says_what_to_install(tmp_path):
    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('onnx', 'onnxruntime'):\n"
        "            raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import symgraph as sg\n"
        "d = sg.sym.Variable('data')\n"
        "try:\n"
        "    sg.onnx.export_model(sg.sym.relu(d), {}, [(1, 2)], onnx_file_path='x.onnx')\n"
        "except sg.SymgraphError as err:\n"
        "    print('ERR', err)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ERR" in out.stdout and "pip install" in out.stdout and "onnx" in out.stdout
    assert not (tmp_path / "x.onnx").exists()


def test_float64_params_follow_the_float32_inputs(tmp_path):
    rng = np.random.default_rng(6)
    params = {k: v.astype(np.float64) for k, v in small_params(rng).items()}
    path = export_model(small_net(), params, [(2, 2, 6, 8)], onnx_file_path=tmp_path / "m.onnx")
    model = onnx.load(str(path))
    assert {t.data_type for t in model.graph.initializer} == {onnx.TensorProto.FLOAT}
    x = rng.standard_normal((2, 2, 6, 8)).astype(F32)
    (got,) = run_onnx(path, {"data": x})
    f32 = {k: v.astype(F32) for k, v in params.items()}
    assert_close(got, reference(small_net(), {"data": x, "softmax_label": np.zeros(2, F32),
                                              **f32})[0], "float64 params")


def test_dynamic_input_shapes_must_fit_in_shapes():
    net = S.relu(S.Variable("x"), name="out")
    with pytest.raises(OnnxError, match=r"dynamic_input_shapes gives 'x' \(None, 4\)"):
        export_model(net, {}, [(2, 3)], dynamic=True, dynamic_input_shapes=[(None, 4)])


def test_run_shape_inference_records_intermediate_shapes(tmp_path):
    rng = np.random.default_rng(8)
    path = export_model(small_net(), small_params(rng), [(2, 2, 6, 8)], run_shape_inference=True,
                        onnx_file_path=tmp_path / "m.onnx")
    infos = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
             for v in onnx.load(str(path)).graph.value_info}
    assert infos["conv_output"] == [2, 4, 6, 8] and infos["pool_output"] == [2, 4, 3, 4]
