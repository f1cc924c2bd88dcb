"""Run an exported model in onnxruntime and compare it with symgraph's reference."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from runtime.onnx import export_model  # noqa: E402
from runtime.onnx.table import find_exporter  # noqa: E402
from symgraph.reference import evaluate  # noqa: E402

F32 = np.float32


def run_onnx(path, feeds: dict) -> list:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, {k: feeds[k] for k in names})


def export_and_run(tmp_path, symbol, params, inputs: dict, name="model.onnx", **kw):
    """Export with the inputs' shapes, check the file, run it; returns (paths, outputs)."""
    path = tmp_path / name
    shapes = {k: v.shape for k, v in inputs.items()}
    export_model(symbol, params, in_shapes=shapes, onnx_file_path=path, **kw)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    return path, run_onnx(path, inputs)


def assert_close(got, want, what=""):
    want = np.asarray(want, dtype=F32)
    scale = max(1.0, float(np.abs(want).max()) if want.size else 1.0)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * scale, err_msg=what)


def reference(symbol, values: dict) -> list:
    return evaluate(symbol.outputs, values, is_train=False)


def graph_internal(case) -> bool:
    """Op-table cases of graph-internal ops (gradient kernels) that have no ONNX form."""
    return case.op.startswith("_") and find_exporter(case.op) is None
