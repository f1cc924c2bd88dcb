"""The bounded caches of traced execution: the runner's executors (MAX_EXECUTORS, least
recently used evicted) and a hybridized block's replay segments (MAX_SEGMENTS). Past the
cap, results stay correct: an evicted signature is rebuilt and binds the parameters'
current buffers, so training through many signatures matches a numpy reference."""

import numpy as np

from runtime.gluon import hybrid
from runtime.ndarray import runner
from symgraph import autograd, gluon, nd
from symgraph.gluon import nn

IN, OUT, LR = 5, 3, 0.1


def _net(hybridize):
    net = nn.HybridSequential()
    net.add(nn.Dense(OUT, in_units=IN))
    net.initialize()
    if hybridize:
        net.hybridize()
    return net


def _keys():
    return set(runner._EXECUTORS)


def _train_through_signatures(hybridize, batch_sizes):
    """SGD on an L2 loss, one step per batch size; checks every step against numpy."""
    net = _net(hybridize)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": LR})
    loss_fn = gluon.loss.L2Loss()
    w = net[0].weight.data().asnumpy().astype(np.float64)
    b = net[0].bias.data().asnumpy().astype(np.float64)
    rng = np.random.default_rng(7)
    for batch in batch_sizes:
        x = rng.standard_normal((batch, IN)).astype(np.float32)
        y = rng.standard_normal((batch, OUT)).astype(np.float32)
        with autograd.record():
            out = net(nd.array(x))
            loss = loss_fn(out, nd.array(y))
        loss.backward()
        trainer.step(batch)
        ref_out = x @ w.T + b
        np.testing.assert_allclose(out.asnumpy(), ref_out, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(loss.asnumpy(), ((ref_out - y) ** 2).sum(1) / OUT / 2,
                                   rtol=1e-4, atol=1e-6)
        dout = (ref_out - y) / OUT / batch
        w, b = w - LR * dout.T @ x, b - LR * dout.sum(0)
        np.testing.assert_allclose(net[0].weight.data().asnumpy(), w, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(net[0].bias.data().asnumpy(), b, rtol=1e-4, atol=1e-6)
        assert len(runner._EXECUTORS) <= runner.MAX_EXECUTORS
    return net


def test_the_17th_signature_evicts_the_oldest_and_results_stay_correct():
    cap = runner.MAX_EXECUTORS
    assert cap == 16
    sizes = list(range(1, cap + 2))  # 17 distinct batch sizes: one past the cap
    first_keys = []
    net = _net(False)
    for batch in sizes:  # inference calls: one executor per batch size
        before = _keys()
        out = net(nd.array(np.ones((batch, IN), np.float32))).asnumpy()  # runs it
        assert out.shape == (batch, OUT)
        first_keys.extend(_keys() - before)
    assert len(first_keys) == len(sizes)
    assert len(runner._EXECUTORS) == cap
    assert first_keys[0] not in runner._EXECUTORS  # the least recently used went first
    assert all(k in runner._EXECUTORS for k in first_keys[1:])
    x = np.random.default_rng(0).standard_normal((1, IN)).astype(np.float32)
    expect = x @ net[0].weight.data().asnumpy().T + net[0].bias.data().asnumpy()
    np.testing.assert_allclose(net(nd.array(x)).asnumpy(), expect, rtol=1e-6)  # rebuilt
    assert first_keys[0] in runner._EXECUTORS and first_keys[1] not in runner._EXECUTORS


def test_training_through_more_signatures_than_the_cap_matches_numpy():
    cap = runner.MAX_EXECUTORS
    # 20 distinct sizes, cycled twice: every signature is evicted and rebuilt once, and
    # the rebuilt executors must see the weights the Trainer updated in between
    sizes = [1 + (i % (cap + 4)) for i in range(2 * (cap + 4))]
    _train_through_signatures(False, sizes)


def test_hybridized_segments_past_their_cap_replay_correctly():
    cap = hybrid.MAX_SEGMENTS
    sizes = [1 + (i % (cap + 3)) for i in range(2 * (cap + 3))]
    net = _train_through_signatures(True, sizes)
    assert len(net._segments) <= cap
