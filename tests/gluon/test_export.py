"""hybridize() + export(): files the Module API loads; SymbolBlock.imports reads them back."""

import numpy as np
import pytest

import symgraph as sg
from symgraph import gluon, nd
from symgraph.gluon import nn


def _net():
    net = nn.HybridSequential()
    net.add(nn.Conv2D(3, kernel_size=3, activation="relu"), nn.MaxPool2D(2, 2),
            nn.Dense(5, activation="tanh"), nn.Dense(4))
    net.initialize(sg.init.Xavier())
    return net


def test_export_needs_a_hybridized_call(tmp_path):
    net = _net()
    net(nd.ones((2, 1, 8, 8)))
    with pytest.raises(RuntimeError, match="hybridize"):
        net.export(str(tmp_path / "m"))


def test_export_loads_in_module_and_symbol_block(tmp_path):
    net = _net()
    net.hybridize()
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    expect = net(nd.array(x)).asnumpy()
    prefix = str(tmp_path / "model")
    net.export(prefix, epoch=3)
    symbol, args, aux = sg.model.load_checkpoint(prefix, 3)
    assert symbol.list_arguments()[0] == "data"
    assert sorted(args) == sorted(net.collect_params().keys()) and not aux
    mod = sg.mod.Module(symbol, data_names=["data"], label_names=None)
    mod.bind(data_shapes=[("data", (2, 1, 8, 8))], for_training=False)
    mod.set_params(args, aux)
    mod.forward(sg.io.DataBatch([x]), is_train=False)
    np.testing.assert_allclose(np.asarray(mod.get_outputs()[0]), expect, rtol=1e-5, atol=1e-6)

    block = gluon.SymbolBlock.imports(f"{prefix}-symbol.json", ["data"],
                                      f"{prefix}-0003.params")
    np.testing.assert_allclose(block(nd.array(x)).asnumpy(), expect, rtol=1e-5, atol=1e-6)
