"""Trainer: step(batch_size) is SGD with rescale_grad = 1/batch_size, over devices."""

import numpy as np
import pytest

import symgraph as sg
from symgraph import autograd, gluon, nd
from symgraph.gluon import nn


def _setup(device=None, optimizer="sgd", params=None):
    net = nn.Dense(2, in_units=3)
    net.initialize(sg.init.Xavier(), device=device)
    trainer = gluon.Trainer(net.collect_params(), optimizer,
                            params or {"learning_rate": 0.1})
    return net, trainer


def test_step_applies_sgd_with_rescaled_gradient():
    net, trainer = _setup()
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    w0, b0 = net.weight.data().asnumpy(), net.bias.data().asnumpy()
    with autograd.record():
        loss = (net(nd.array(x)) ** 2).sum(axis=1)
    loss.backward()
    g = 2 * (x @ w0.T + b0)  # d loss / d out
    trainer.step(4)
    np.testing.assert_allclose(net.weight.data().asnumpy(), w0 - 0.1 * (g.T @ x) / 4,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.bias.data().asnumpy(), b0 - 0.1 * g.sum(0) / 4, rtol=1e-5)
    assert trainer.learning_rate == 0.1
    trainer.set_learning_rate(0.5)
    assert trainer.learning_rate == 0.5


def test_stale_gradient_raises_until_backward_runs_again():
    net, trainer = _setup()
    x = nd.ones((2, 3))
    with autograd.record():
        loss = net(x).sum()
    loss.backward()
    trainer.step(2)
    with pytest.raises(UserWarning, match="has not been updated by backward"):
        trainer.step(2)
    trainer.step(2, ignore_stale_grad=True)


def test_two_devices_sum_gradients_and_stay_in_sync():
    device = [sg.cpu(0), sg.cpu(1)]
    net, trainer = _setup(device)
    single, single_trainer = _setup()
    single.weight.set_data(net.weight.data(device[0]).asnumpy())
    x = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    with autograd.record():
        for part in gluon.utils.split_and_load(nd.array(x), device):
            loss = net(part).sum(axis=1)
            loss.backward()
    trainer.step(4)
    with autograd.record():
        loss = single(nd.array(x)).sum(axis=1)
    loss.backward()
    single_trainer.step(4)
    for ctx in device:
        np.testing.assert_allclose(net.weight.data(ctx).asnumpy(),
                                   single.weight.data().asnumpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,params", [("adam", {"learning_rate": 0.01}),
                                         ("sgd", {"learning_rate": 0.1, "momentum": 0.9}),
                                         ("nag", {"learning_rate": 0.1, "momentum": 0.9})])
def test_other_optimizers_reduce_a_quadratic(name, params):
    net, trainer = _setup(optimizer=name, params=params)
    x = nd.array(np.random.default_rng(2).standard_normal((8, 3)))

    def loss_value():
        return float((net(x) ** 2).mean().asscalar())

    before = loss_value()
    for _ in range(20):
        with autograd.record():
            loss = (net(x) ** 2).sum(axis=1)
        loss.backward()
        trainer.step(8)
    assert loss_value() < before * 0.7


def test_save_and_load_states(tmp_path):
    net, trainer = _setup(params={"learning_rate": 0.1, "momentum": 0.9})
    with autograd.record():
        loss = net(nd.ones((2, 3))).sum()
    loss.backward()
    trainer.step(2)
    path = str(tmp_path / "t.states")
    trainer.save_states(path)
    momentum = np.array(trainer._updater.states[0])
    trainer._updater.load_states({})
    trainer.load_states(path)
    np.testing.assert_array_equal(np.array(trainer._updater.states[0]), momentum)
    assert np.abs(momentum).max() > 0


def test_ignore_stale_grad_skips_only_the_stale_parameters():
    used, unused = nn.Dense(2, in_units=3), nn.Dense(2, in_units=3)
    params = used.collect_params()
    params.update(unused.collect_params())
    params.initialize(sg.init.Xavier())
    trainer = gluon.Trainer(params, "sgd", {"learning_rate": 0.1, "momentum": 0.5})
    x = np.ones((2, 3), np.float32)
    w0, u0 = used.weight.data().asnumpy(), unused.weight.data().asnumpy()
    with autograd.record():
        loss = used(nd.array(x)).sum(axis=1)
    loss.backward()
    with pytest.raises(UserWarning):
        trainer.step(2)
    trainer.step(2, ignore_stale_grad=True)
    np.testing.assert_array_equal(unused.weight.data().asnumpy(), u0)
    np.testing.assert_allclose(used.weight.data().asnumpy(), w0 - 0.1 * (2 * x[:1]) / 2 *
                               np.ones((2, 1)), rtol=1e-5)


def test_updates_follow_buffers_replaced_by_cast():
    net, trainer = _setup()
    x = nd.ones((2, 3))

    def step(dtype):
        with autograd.record():
            loss = net(x.astype(dtype)).sum()
        loss.backward()
        trainer.step(2)

    step("float32")
    net.cast("float64")
    before = net.weight.data().asnumpy().copy()
    step("float64")
    assert net.weight.data().dtype == np.float64
    assert not np.array_equal(net.weight.data().asnumpy(), before)  # the new buffer moved


def test_memory_stays_flat_over_many_steps():
    import gc
    import tracemalloc

    net, trainer = _setup()
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    x, y = nd.array(np.ones((4, 3))), nd.array([0, 1, 0, 1])

    def steps(n):
        for _ in range(n):
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(4)
            loss.mean().asscalar()

    steps(100)
    gc.collect()
    tracemalloc.start()
    steps(100)
    gc.collect()
    first = tracemalloc.get_traced_memory()[0]
    steps(500)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - first
    tracemalloc.stop()
    assert grown < 32 * 1024, f"memory grew by {grown} bytes over 500 steps"
