"""Importing ONNX files written by other producers (built here with onnx.helper in the
forms PyTorch's exporter uses, at opsets 11 and 17): symgraph's imported graph gives
onnxruntime's outputs."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_helpers import F32, assert_close, onnx, run_onnx

from runtime.onnx import import_model
from symgraph.reference import evaluate

h = onnx.helper
FLOAT = onnx.TensorProto.FLOAT


def tensor(name, array):
    return onnx.numpy_helper.from_array(np.asarray(array), name)


def model(nodes, inputs, outputs, inits, opset):
    graph = h.make_graph(nodes, "foreign", [h.make_tensor_value_info(n, FLOAT, s)
                                            for n, s in inputs],
                         [h.make_tensor_value_info(n, FLOAT, s) for n, s in outputs],
                         initializer=inits)
    m = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)],
                     ir_version=h.find_min_ir_version_for([h.make_opsetid("", opset)]))
    onnx.checker.check_model(m, full_check=True)
    return m


def convnet_opset11(rng):
    inits = [tensor("w", rng.standard_normal((4, 3, 3, 3)).astype(F32)),
             tensor("b", rng.standard_normal(4).astype(F32)),
             tensor("scale", rng.uniform(0.5, 2, 4).astype(F32)),
             tensor("shift", rng.standard_normal(4).astype(F32)),
             tensor("mean", rng.standard_normal(4).astype(F32)),
             tensor("var", rng.uniform(0.5, 2, 4).astype(F32)),
             tensor("fc_w", rng.standard_normal((5, 4 * 4 * 5)).astype(F32)),
             tensor("fc_b", rng.standard_normal(5).astype(F32))]
    nodes = [
        h.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        h.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["bn"],
                    epsilon=1e-5),
        h.make_node("Relu", ["bn"], ["r"]),
        h.make_node("Softmax", ["r"], ["chan"], axis=1),  # opset 11: over C*H*W per sample
        h.make_node("MaxPool", ["chan"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        h.make_node("Constant", [], ["shape"], value=tensor("s", np.array([0, -1], np.int64))),
        h.make_node("Reshape", ["p", "shape"], ["flat"]),
        h.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1),
        h.make_node("Dropout", ["logits"], ["d"]),
        h.make_node("Softmax", ["d"], ["y"], axis=1),
    ]
    return model(nodes, [("x", [2, 3, 8, 10])], [("y", [2, 5])], inits, 11), {"x": (2, 3, 8, 10)}


def mixed_opset17(rng):
    inits = [tensor("w", rng.standard_normal((6, 3, 1, 1)).astype(F32)),
             tensor("fc_w", rng.standard_normal((6, 4)).astype(F32)),
             tensor("fc_b", rng.standard_normal((1, 4)).astype(F32)),
             tensor("lo", np.array(-0.5, F32)), tensor("hi", np.array(0.5, F32)),
             tensor("axes", np.array([1], np.int64)),
             tensor("pads", np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64))]
    nodes = [
        h.make_node("Pad", ["x", "pads"], ["xp"], mode="reflect"),
        h.make_node("Conv", ["xp", "w"], ["c"], kernel_shape=[1, 1], strides=[2, 2]),
        h.make_node("Clip", ["c", "lo", "hi"], ["cl"]),
        h.make_node("AveragePool", ["cl"], ["ap"], kernel_shape=[3, 3], strides=[2, 2],
                    pads=[1, 1, 1, 1], ceil_mode=1),
        h.make_node("GlobalAveragePool", ["ap"], ["g"]),
        h.make_node("Flatten", ["g"], ["f"]),
        h.make_node("Gemm", ["f", "fc_w", "fc_b"], ["z"], alpha=0.5, beta=2.0),
        h.make_node("Unsqueeze", ["z", "axes"], ["zu"]),
        h.make_node("ReduceMean", ["zu"], ["m"], axes=[2], keepdims=1),
        h.make_node("Sub", ["zu", "m"], ["zc"]),
        h.make_node("Squeeze", ["zc", "axes"], ["zs"]),
        h.make_node("LogSoftmax", ["zs"], ["y"], axis=-1),
    ]
    return model(nodes, [("x", [3, 3, 9, 7])], [("y", [3, 4])], inits, 17), {"x": (3, 3, 9, 7)}


@pytest.mark.parametrize("build", [convnet_opset11, mixed_opset17],
                         ids=lambda f: f.__name__)
def test_foreign_model_imports(tmp_path, build):
    rng = np.random.default_rng(4)
    m, shapes = build(rng)
    path = tmp_path / "foreign.onnx"
    onnx.save(m, str(path))
    feeds = {k: rng.standard_normal(s).astype(F32) for k, s in shapes.items()}
    (want,) = run_onnx(path, feeds)
    sym, arg_params, aux_params = import_model(path)
    if "mean" in arg_params or "mean" in aux_params:
        assert set(aux_params) == {"mean", "var"}
    (got,) = evaluate(sym.outputs, {**feeds, **arg_params, **aux_params})
    assert_close(np.asarray(got), want, build.__name__)
