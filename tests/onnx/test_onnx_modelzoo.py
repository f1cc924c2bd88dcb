"""The MXNet 1.9.1 model-zoo checkpoints (tests/modelzoo/data, written by MXNet itself):
exported to ONNX, run in onnxruntime, they give MXNet's own inference outputs; imported
back, symgraph's reference interpreter gives them again."""

from __future__ import annotations

import os

import numpy as np
import pytest
from onnx_helpers import onnx, run_onnx

import symgraph as sg
from runtime.onnx import export_model, import_model
from symgraph.reference import evaluate

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "modelzoo",
                    "data")
NAMES = sorted(os.listdir(DATA))  # in the repository: a missing folder is an error
TOLERANCE = 2e-4  # the model-zoo tests' bound: float32 rounding through ~100 layers


def assert_close(actual, expected, what):
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = float(np.max(np.abs(expected)))
    worst = float(np.max(np.abs(actual - expected)))
    assert worst <= TOLERANCE * scale, f"{what}: max deviation {worst:.3g} of {scale:.3g}"


@pytest.fixture(scope="module", params=NAMES)
def exported(request, tmp_path_factory):
    name = request.param
    ref = sg.nd.load(os.path.join(DATA, name, "reference.nd"))
    x = np.asarray(ref["data"], dtype=np.float32)
    prefix = os.path.join(DATA, name, "model")
    path = tmp_path_factory.mktemp(name) / f"{name}.onnx"
    export_model(prefix + "-symbol.json", prefix + "-0000.params", [x.shape],
                 onnx_file_path=path, dynamic=True)
    return name, path, x, np.asarray(ref["infer_out"])


def test_onnxruntime_matches_mxnet(exported):
    name, path, x, want = exported
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    (got,) = run_onnx(path, {"data": x})
    assert_close(got, want, f"{name} onnxruntime vs MXNet")
    if len(x) > 1:  # the batch axis is symbolic: one sample alone gives its own row
        (first,) = run_onnx(path, {"data": x[:1]})
        assert_close(first, want[:1], f"{name} batch of one")


def test_import_roundtrip_matches_mxnet(exported):
    name, path, x, want = exported
    sym, arg_params, aux_params = import_model(path)
    (got,) = evaluate(sym.outputs, {"data": x, **arg_params, **aux_params})
    assert_close(np.asarray(got), want, f"{name} imported vs MXNet")
