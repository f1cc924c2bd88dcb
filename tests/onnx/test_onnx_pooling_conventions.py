"""Pooling's 'full' convention against ONNX's ceil mode: MXNet keeps a last window that
ONNX would drop and clips the avg divisor at the padded edge; exports either match or
refuse with the attribute named."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_helpers import F32, assert_close, export_and_run, reference

import symgraph as sg
from runtime.onnx import OnnxError, import_model
from symgraph.reference import evaluate

SHAPES = [(2, 3, 7, 8), (1, 2, 6, 6), (1, 1, 5, 9)]
MATCHING = [
    dict(pool_type="avg", pooling_convention="full", kernel=(3, 3), stride=(2, 2), pad=(1, 1)),
    dict(pool_type="avg", pooling_convention="full", kernel=(2, 2), stride=(2, 2)),
    dict(pool_type="sum", pooling_convention="full", kernel=(3, 2), stride=(2, 2), pad=(1, 0)),
    dict(pool_type="max", pooling_convention="full", kernel=(3, 3), stride=(2, 2), pad=(1, 1)),
    dict(pool_type="sum", kernel=(2, 2), stride=(1, 1), pad=(1, 1)),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("attrs", MATCHING, ids=lambda a: "-".join(str(v) for v in a.values()))
def test_full_convention_matches(tmp_path, attrs, shape):
    net = sg.sym.Pooling(sg.sym.Variable("data"), **attrs)
    x = np.random.default_rng(1).standard_normal(shape).astype(F32)
    want = reference(net, {"data": x})[0]
    _, got = export_and_run(tmp_path, net, {}, {"data": x})
    assert_close(got[0], want, "onnxruntime")
    back, _, _ = import_model(tmp_path / "model.onnx")  # asymmetric pads come back via Pad
    assert_close(np.asarray(evaluate(back.outputs, {"data": x})[0]), want, "imported")


def test_window_wholly_in_padding_is_refused(tmp_path):
    net = sg.sym.Pooling(sg.sym.Variable("data"), pool_type="max", pooling_convention="full",
                         kernel=(3, 3), stride=(3, 3), pad=(1, 1), name="pool")
    with pytest.raises(OnnxError, match="Pooling node 'pool': attribute "
                                        "pooling_convention='full'"):
        export_and_run(tmp_path, net, {}, {"data": np.zeros((1, 1, 8, 8), F32)})
