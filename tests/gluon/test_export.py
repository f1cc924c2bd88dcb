"""hybridize() + export(): files the Module API loads; SymbolBlock.imports reads them back."""

import numpy as np
import pytest

import symgraph as sg
from symgraph import autograd, gluon, nd
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


def test_hybridized_calls_replay_the_cached_segment():
    from runtime.ndarray import state

    net = _net()
    net.hybridize()
    x = nd.array(np.random.default_rng(1).standard_normal((2, 1, 8, 8)))
    first = net(x).asnumpy()  # traced, and cached as a segment
    plain = _net()  # the same network, not hybridized, with the same weights
    plain(x)
    for a, b in zip(net.collect_params().values(), plain.collect_params().values()):
        b.set_data(a.data().asnumpy())
    assert len(net._segments) == 1
    calls = []
    original = type(net[0]).forward
    type(net[0]).forward = lambda self, *a: calls.append(1) or original(self, *a)
    try:
        again = net(x)
        assert calls == []  # replayed: no Python forward of the layers
        assert len(state.STATE.trace.nodes) == len(list(net._segments.values())[0].nodes)
        np.testing.assert_array_equal(again.asnumpy(), first)
        np.testing.assert_array_equal(plain(x).asnumpy(), first)
        with autograd.record():  # another signature (recording): traced once more
            loss = net(x).sum()
        loss.backward()
        assert len(net._segments) == 2 and calls
        weight = net[0].weight
        assert np.abs(weight.grad().asnumpy()).sum() > 0
        grad = weight.grad().asnumpy().copy()
        calls.clear()
        with autograd.record():
            loss = net(x).sum()
        loss.backward()
        assert calls == []
        np.testing.assert_allclose(weight.grad().asnumpy(), grad, rtol=1e-6)
    finally:
        type(net[0]).forward = original
