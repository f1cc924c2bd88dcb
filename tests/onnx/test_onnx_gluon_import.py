"""import_to_gluon: an exported model back as a Gluon SymbolBlock gives the same outputs."""

from __future__ import annotations

import numpy as np
from onnx_helpers import F32, assert_close, reference

import symgraph as sg
from runtime.onnx import export_model, import_to_gluon

S = sg.sym


def test_symbol_block_from_onnx(tmp_path):
    rng = np.random.default_rng(2)
    net = S.Convolution(S.Variable("data"), name="conv", kernel=(3, 3), num_filter=4)
    net = S.Activation(net, name="relu", act_type="relu")
    net = S.FullyConnected(net, name="fc", num_hidden=3)
    params = {"conv_weight": rng.standard_normal((4, 2, 3, 3)).astype(F32),
              "conv_bias": rng.standard_normal(4).astype(F32),
              "fc_weight": rng.standard_normal((3, 4 * 3 * 4)).astype(F32),
              "fc_bias": rng.standard_normal(3).astype(F32)}
    x = rng.standard_normal((2, 2, 5, 6)).astype(F32)
    path = export_model(net, params, [x.shape], onnx_file_path=tmp_path / "m.onnx")
    block = import_to_gluon(path, ctx=sg.cpu())
    got = block(sg.nd.array(x))
    assert_close(np.asarray(got.asnumpy()), reference(net, {"data": x, **params})[0], "gluon")
