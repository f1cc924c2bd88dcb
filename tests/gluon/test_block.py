"""Blocks: MXNet's names, deferred initialization, parameter files, errors naming blocks."""

import numpy as np
import pytest

import symgraph as sg
from symgraph import autograd, gluon, nd
from symgraph.gluon import nn


def _mlp():
    net = nn.Sequential()
    with net.name_scope():
        net.add(nn.Dense(8, activation="relu"), nn.Dense(3))
    return net


def test_mxnet_names_under_name_scope():
    net = _mlp()
    names = list(net.collect_params().keys())
    prefix = net.prefix
    assert prefix.startswith("sequential") and prefix.endswith("_")
    assert names == [prefix + n for n in ("dense0_weight", "dense0_bias", "dense1_weight",
                                          "dense1_bias")]
    assert list(net.collect_params(".*weight").keys()) == [names[0], names[2]]


def test_block_without_scope_counts_globally():
    a, b = nn.Dense(2), nn.Dense(2)
    assert a.prefix != b.prefix and a.prefix.startswith("dense")
    assert int(b.prefix[5:-1]) == int(a.prefix[5:-1]) + 1


def test_deferred_initialization_infers_shapes_from_the_first_input():
    net = _mlp()
    net.initialize(sg.init.Xavier())
    w = net[0].weight
    with pytest.raises(gluon.DeferredInitializationError):
        w.data().asnumpy()
    out = net(nd.array(np.ones((5, 4, 2))))  # Dense flattens (5, 4, 2) -> (5, 8)
    assert out.shape == (5, 3)
    assert w.shape == (8, 8) and net[1].weight.shape == (3, 8)
    assert np.abs(w.data().asnumpy()).max() > 0
    assert (net[0].bias.data().asnumpy() == 0).all()  # bias_initializer='zeros'


def test_uninitialized_parameter_raises_mxnet_message():
    net = nn.Dense(3, in_units=4)
    with pytest.raises(RuntimeError, match="has not been initialized"):
        net(nd.ones((2, 4)))


def test_forward_matches_numpy():
    net = nn.Dense(3, in_units=4, activation="tanh")
    net.initialize()
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    w, b = net.weight.data().asnumpy(), net.bias.data().asnumpy()
    np.testing.assert_allclose(net(nd.array(x)).asnumpy(), np.tanh(x @ w.T + b), rtol=1e-5)


def test_save_and_load_parameters_use_structural_names(tmp_path):
    net = _mlp()
    net.initialize()
    x = nd.array(np.random.default_rng(0).standard_normal((2, 6)))
    expect = net(x).asnumpy()
    path = str(tmp_path / "net.params")
    net.save_parameters(path)
    assert sorted(sg.nd.load(path)) == ["0.bias", "0.weight", "1.bias", "1.weight"]
    other = _mlp()
    other.load_parameters(path)
    np.testing.assert_array_equal(other(x).asnumpy(), expect)
    sg.nd.save(path, {"0.weight": np.zeros((8, 6), np.float32)})
    with pytest.raises(AssertionError, match="missing"):
        other.load_parameters(path)
    other.load_parameters(path, allow_missing=True)
    assert (other[0].weight.data().asnumpy() == 0).all()
    sg.nd.save(path, {"0.weight": np.zeros((8, 6), np.float32), "9.weight": np.ones(1)})
    with pytest.raises(AssertionError, match="not present"):
        other.load_parameters(path, allow_missing=True)
    other.load_parameters(path, allow_missing=True, ignore_extra=True)


def test_legacy_parameter_files_match_full_names(tmp_path):
    net = nn.Dense(2, in_units=3, prefix="fc_")
    net.initialize()
    path = str(tmp_path / "legacy.params")
    sg.nd.save(path, {"arg:fc_weight": np.ones((2, 3), np.float32),
                      "arg:fc_bias": np.full(2, 5, np.float32)})
    net.load_parameters(path)
    assert net.bias.data().asnumpy().tolist() == [5, 5]
    # MXNet 1.x's save_params wrote names without the block's prefix; its loader adds it
    sg.nd.save(path, {"weight": np.full((2, 3), 2, np.float32),
                      "bias": np.full(2, 7, np.float32)})
    net.load_parameters(path)
    assert net.bias.data().asnumpy().tolist() == [7, 7]
    assert (net.weight.data().asnumpy() == 2).all()
    sg.nd.save(path, {"weight": np.ones((2, 3), np.float32), "bias": np.ones(2, np.float32),
                      "gamma": np.ones(2, np.float32)})
    with pytest.raises(AssertionError, match="'gamma' loaded from file .* is not present"):
        net.load_parameters(path)


def test_custom_block_with_children_and_parameters():
    class Net(gluon.Block):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            with self.name_scope():
                self.fc = nn.Dense(4)
                self.scale = self.params.get("scale", shape=(1,), init=sg.init.One())

        def forward(self, x):
            return self.fc(x) * self.scale.data().asscalar()

    net = Net()
    net.initialize()
    keys = list(net.collect_params().keys())
    # own parameters first, then the children's (MXNet's collect_params order)
    assert keys == [net.prefix + n for n in ("scale", "dense0_weight", "dense0_bias")]
    assert net(nd.ones((2, 3))).shape == (2, 4)


def test_shape_error_names_the_block_and_is_raised_at_the_call():
    net = nn.Sequential()
    net.add(nn.Dense(4, in_units=5))
    net.initialize()
    with pytest.raises(sg.ShapeError, match=r"dense\d+.*FullyConnected"):
        with autograd.record():
            net(nd.ones((2, 3)))


def test_hybridize_is_accepted_and_results_are_unchanged():
    net = nn.HybridSequential()
    net.add(nn.Dense(4, in_units=3), nn.Activation("relu"))
    net.initialize()
    x = nd.array(np.random.default_rng(3).standard_normal((2, 3)))
    before = net(x).asnumpy()
    net.hybridize(static_alloc=True, static_shape=True)
    np.testing.assert_array_equal(net(x).asnumpy(), before)


def test_multi_device_parameters_are_copies():
    net = nn.Dense(2, in_units=3)
    net.initialize(device=[sg.cpu(0), sg.cpu(1)])
    a, b = (net.weight.data(c).asnumpy() for c in (sg.cpu(0), sg.cpu(1)))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(RuntimeError, match="not initialized on context"):
        net.weight.data(sg.cpu(2))


def test_forward_hooks_and_constants():
    seen = []
    net = nn.Dense(2, in_units=3)
    net.initialize()
    handle = net.register_forward_hook(lambda blk, inputs, out: seen.append(out.shape))
    pre = net.register_forward_pre_hook(lambda blk, inputs: seen.append(inputs[0].shape))
    net(nd.ones((4, 3)))
    assert seen == [(4, 3), (4, 2)]
    handle.detach()
    pre.detach()
    net(nd.ones((4, 3)))
    assert len(seen) == 2

    class Scaled(gluon.Block):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.scale = self.params.get_constant("scale", [[2.0, 3.0]])

        def forward(self, x):
            return x * self.scale.data()

    block = Scaled()
    block.initialize()
    assert block.scale.grad_req == "null"
    np.testing.assert_array_equal(block(nd.ones((1, 2))).asnumpy(), [[2, 3]])


def test_summary_counts_parameters_after_deferred_shapes_and_cast():
    net = nn.Sequential()
    net.add(nn.Dense(4, in_units=3), nn.Dense(2))
    net.initialize()
    assert net.summary(nd.ones((2, 3))) == 3 * 4 + 4 + 4 * 2 + 2
    net.cast("float64")
    assert net[0].weight.data().dtype == np.float64
    assert net(nd.ones((2, 3), dtype="float64")).dtype == np.float64


def test_np_random_seed_makes_initialization_reproducible():
    weights = []
    for _ in range(2):
        sg.np.random.seed(42)
        net = nn.Dense(3, in_units=4)
        net.initialize(sg.init.Xavier(magnitude=2.24))
        weights.append(net.weight.data().asnumpy())
    np.testing.assert_array_equal(*weights)
    assert sg.test_utils.list_gpus() == []


def test_empty_prefix_container_has_no_scope_of_its_own():
    """As in MXNet, ``prefix=''`` blocks count their children in the enclosing scope, so a
    Dense made inside such a container and one made beside it get different names."""
    class Net(nn.HybridBlock):
        def __init__(self):
            super().__init__(prefix="net_")
            with self.name_scope():
                self.features = nn.HybridSequential(prefix="")
                with self.features.name_scope():
                    self.features.add(nn.Dense(3), nn.Dense(3))
                self.output = nn.Dense(2)

        def hybrid_forward(self, F, x):
            return self.output(self.features(x))

    names = list(Net().collect_params().keys())
    assert names == [f"net_dense{i}_{p}" for i in range(3) for p in ("weight", "bias")]
