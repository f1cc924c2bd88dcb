"""The structure trie of traced steps (runtime/ndarray/trace.py): a repeated step records
each op with one lookup of a node validated once, and its final state keys the compiled
executor. These tests check that reusing recorded structure never changes a number (a
replayed step gives bitwise the parameters of a step traced from scratch), that any change
of structure, shape or attribute misses, that mistakes still raise at the user's call, and
that the trie stays bounded."""

import numpy as np
import pytest

import symgraph as sg
from runtime.ndarray import runner, state
from runtime.ndarray import trace as T
from symgraph import autograd, gluon, nd
from symgraph.gluon import nn

IN, HIDDEN, OUT, BATCH = 6, 5, 3, 4


def _net(hybrid=False):
    net = nn.HybridSequential() if hybrid else nn.Sequential()
    net.add(nn.Dense(HIDDEN, activation="relu"), nn.Dense(OUT))
    net.initialize(sg.init.Xavier())
    net(nd.zeros((1, IN)))  # deferred shapes
    return net


def _copy_weights(src, dst):
    for a, b in zip(src.collect_params().values(), dst.collect_params().values()):
        b.set_data(a.data().asnumpy())


def _batches(count, batch=BATCH):
    rng = np.random.default_rng(11)
    return [(rng.standard_normal((batch, IN)).astype(np.float32),
             rng.integers(0, OUT, batch).astype(np.float32)) for _ in range(count)]


def _train(net, batches, fresh_every_step=False):
    """SGD with momentum over ``batches``; with ``fresh_every_step`` the trie and the
    executor cache are emptied before each step, so every step is traced from scratch,
    validated and compiled again (from the compile memo)."""
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    if isinstance(net, nn.HybridSequential) and net._active:
        loss_fn.hybridize()
    trainer = gluon.Trainer(net.collect_params(), "sgd",
                            {"learning_rate": 0.1, "momentum": 0.9})
    losses = []
    for x, y in batches:
        if fresh_every_step:
            T.TRIE.reset()
            runner._EXECUTORS.clear()
        with autograd.record():
            loss = loss_fn(net(nd.array(x)), nd.array(y))
        loss.backward()
        trainer.step(len(x))
        losses.append(loss.asnumpy())
    return [p.data().asnumpy() for p in net.collect_params().values()], losses


@pytest.mark.parametrize("hybrid", [False, True])
def test_replayed_steps_give_bitwise_the_parameters_of_steps_traced_from_scratch(hybrid):
    batches = _batches(6)
    warm, fresh = _net(), _net()
    _copy_weights(warm, fresh)
    if hybrid:
        warm, fresh = _hybrid_copy(warm), _hybrid_copy(fresh)
    params_warm, losses_warm = _train(warm, batches)
    params_fresh, losses_fresh = _train(fresh, batches, fresh_every_step=True)
    for a, b in zip(params_warm, params_fresh):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(losses_warm, losses_fresh):
        np.testing.assert_array_equal(a, b)


def _hybrid_copy(net):
    other = _net(hybrid=True)
    _copy_weights(net, other)
    other.hybridize()
    return other


def test_a_hybridized_step_gives_bitwise_the_traced_step():
    batches = _batches(4)
    traced = _net()
    hybrid = _hybrid_copy(traced)
    params_t, losses_t = _train(traced, batches)
    params_h, losses_h = _train(hybrid, batches)
    for a, b in zip(params_t, params_h):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(losses_t, losses_h):
        np.testing.assert_array_equal(a, b)


def _final_state(fn, train_mode=True):
    """The trie state a recorded step ends in (then its backward, as a step runs)."""
    with autograd.record(train_mode=train_mode):
        out = fn()
    cursor = out._trace.cursor
    out.backward()
    return cursor


def test_the_same_step_reaches_the_same_trie_state_and_one_executor():
    net = _net()
    x = nd.array(np.ones((BATCH, IN), np.float32))
    _final_state(lambda: net(x).sum())  # traced; later calls replay the recorded layers
    first = _final_state(lambda: net(x).sum())
    before = len(runner._EXECUTORS)
    second = _final_state(lambda: net(x).sum())
    assert first is second  # found again: nothing new recorded or compiled
    assert len(runner._EXECUTORS) == before


def test_changed_shape_structure_or_attribute_misses():
    net = _net()
    x = nd.array(np.ones((BATCH, IN), np.float32))
    _final_state(lambda: net(x) * 2.0)  # traced; later calls replay the recorded layers
    base = _final_state(lambda: net(x) * 2.0)
    assert _final_state(lambda: net(x) * 2.0) is base
    states = {
        "batch size": _final_state(lambda: net(nd.array(np.ones((BATCH + 1, IN),
                                                               np.float32))) * 2.0),
        "attribute": _final_state(lambda: net(x) * 3.0),
        "op": _final_state(lambda: net(x) + 2.0),
        "dtype": _final_state(lambda: net[1](net[0](x)).astype("float64") * 2.0),
        "training mode": _final_state(lambda: net(x) * 2.0, train_mode=False),
    }
    for what, cursor in states.items():
        assert cursor is not base, what
    assert len({id(c) for c in states.values()}) == len(states)


def test_values_follow_the_inputs_when_the_structure_is_reused():
    net = _net()
    w0, b0 = (p.data().asnumpy() for p in net[0].collect_params().values())
    w1, b1 = (p.data().asnumpy() for p in net[1].collect_params().values())
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal((BATCH, IN)).astype(np.float32)
        with autograd.record():
            out = net(nd.array(x))
        expect = np.maximum(x @ w0.T + b0, 0) @ w1.T + b1
        np.testing.assert_allclose(out.asnumpy(), expect, rtol=1e-5, atol=1e-6)


def test_a_shape_mistake_after_the_right_shape_was_cached_still_names_the_block():
    net = _net()
    with autograd.record():
        net(nd.ones((BATCH, IN))).backward()
    leaves_before = None
    with pytest.raises(sg.ShapeError, match=r"dense\d+.*FullyConnected.*\(2, 7\)"):
        with autograd.record():
            y = nd.ones((2, 3)) * 1.0  # something recorded before the mistake
            leaves_before = list(state.STATE.trace.leaves)
            net(nd.ones((2, 7)))
    # the failed op left no leaf behind in the trace
    assert state.STATE.trace.leaves == leaves_before
    assert y.shape == (2, 3)


def test_a_second_deferred_network_of_the_same_structure_gets_its_own_shapes():
    first = nn.Sequential()
    first.add(nn.Dense(HIDDEN), nn.Dense(OUT))
    first.initialize()
    second = nn.Sequential()
    second.add(nn.Dense(HIDDEN), nn.Dense(OUT))
    second.initialize()
    x = np.random.default_rng(2).standard_normal((BATCH, IN)).astype(np.float32)
    for net in (first, second):  # the second walks the states the first recorded
        with autograd.record():
            out = net(nd.array(x))
        assert net[0].weight.shape == (HIDDEN, IN) and net[1].weight.shape == (OUT, HIDDEN)
        w0, b0 = net[0].weight.data().asnumpy(), net[0].bias.data().asnumpy()
        w1, b1 = net[1].weight.data().asnumpy(), net[1].bias.data().asnumpy()
        np.testing.assert_allclose(out.asnumpy(), (x @ w0.T + b0) @ w1.T + b1, rtol=1e-5,
                                   atol=1e-6)


def test_the_trie_stays_bounded_and_results_stay_exact(monkeypatch):
    monkeypatch.setattr(T, "MAX_EDGES", 50)
    T.TRIE.reset()
    x = nd.array(np.arange(6, dtype=np.float32).reshape(2, 3))
    x.attach_grad()
    try:
        for step in range(120):  # a new attribute every step: a new structure every step
            with autograd.record():
                y = (x * float(step + 1)).sum()
            y.backward()
            assert T.TRIE.edges <= T.MAX_EDGES
            np.testing.assert_array_equal(x.grad.asnumpy(), np.full((2, 3), step + 1.0))
            assert y.asscalar() == pytest.approx(15.0 * (step + 1))
        assert len(runner._EXECUTORS) <= runner.MAX_EXECUTORS
    finally:  # leave no full executor cache behind for tests that count new executors
        runner._EXECUTORS.clear()
        T.TRIE.reset()


# ---- library blocks replay without hybridize() --------------------------------------------
def _count_forward(monkeypatch, cls):
    calls = []
    original = cls.forward
    monkeypatch.setattr(cls, "forward", lambda self, *a: calls.append(1) or original(self, *a))
    return calls


def test_library_layers_replay_and_user_blocks_always_run(monkeypatch):
    class Scale(gluon.Block):  # user code: must run at every call
        def __init__(self):
            super().__init__()
            self.body = nn.Dense(OUT, in_units=IN)

        def forward(self, x):
            seen.append(x.shape)
            return self.body(x) * 2.0

    seen = []
    user = Scale()
    user.initialize()
    library = _net()
    dense_calls = _count_forward(monkeypatch, nn.Dense)
    x = nd.array(np.random.default_rng(4).standard_normal((BATCH, IN)).astype(np.float32))
    outs = []
    for _ in range(3):
        with autograd.record():
            outs.append((library(x).asnumpy(), user(x).asnumpy()))
    assert len(seen) == 3  # the user's forward ran every time
    # the library net's Dense layers ran only in its first call; the user block's child
    # Dense (a library layer) replays after its first call too
    assert len(dense_calls) == 2 + 1
    for lib, usr in outs[1:]:
        np.testing.assert_array_equal(lib, outs[0][0])
        np.testing.assert_array_equal(usr, outs[0][1])
    w, b = user.body.weight.data().asnumpy(), user.body.bias.data().asnumpy()
    np.testing.assert_allclose(outs[-1][1], (x.asnumpy() @ w.T + b) * 2, rtol=1e-5)


def test_hooks_turn_replay_off(monkeypatch):
    net = _net()
    x = nd.ones((BATCH, IN))
    net(x).asnumpy()
    net(x).asnumpy()  # recorded and replayed
    seen = []
    handle = net[1].register_forward_hook(lambda block, inputs, out: seen.append(out.shape))
    for _ in range(2):
        net(x).asnumpy()
    assert seen == [(BATCH, OUT)] * 2
    handle.detach()
    net(x).asnumpy()
    assert len(seen) == 2


def test_structure_and_parameter_changes_invalidate_recorded_calls():
    net = _net()
    x = nd.array(np.random.default_rng(5).standard_normal((BATCH, IN)).astype(np.float32))
    for _ in range(2):
        assert net(x).shape == (BATCH, OUT)
    net.add(nn.Dense(2, in_units=OUT))  # a new layer: the recorded call is stale
    net[2].initialize()
    out = net(x)
    assert out.shape == (BATCH, 2)
    net.initialize(sg.init.Constant(0.5), force_reinit=True)  # new parameter arrays
    expect = x.asnumpy()  # weights 0.5, biases their own 'zeros' initializer
    for width in (HIDDEN, OUT, 2):
        expect = expect @ np.full((expect.shape[1], width), 0.5, np.float32)
        if width == HIDDEN:
            expect = np.maximum(expect, 0)
    np.testing.assert_allclose(net(x).asnumpy(), expect, rtol=1e-5)
    np.testing.assert_allclose(net(x).asnumpy(), expect, rtol=1e-5)  # replayed


def test_a_library_call_that_reads_a_value_is_traced_every_time(monkeypatch):
    original = nn.Dense.hybrid_forward

    def reads(self, F, x, *args, **kwargs):  # a layer whose Python depends on the values
        scale = float(x.asnumpy().mean())
        return original(self, F, x, *args, **kwargs) * scale
    monkeypatch.setattr(nn.Dense, "hybrid_forward", reads)
    net = nn.Dense(OUT, in_units=IN)
    net.initialize()
    w, b = net.weight.data().asnumpy(), net.bias.data().asnumpy()
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal((BATCH, IN)).astype(np.float32)
        with autograd.record():
            out = net(nd.array(x))
        np.testing.assert_allclose(out.asnumpy(), (x @ w.T + b) * x.mean(), rtol=1e-4)


def test_integer_labels_follow_each_batch():
    """The sparse cross-entropy converts integer labels before its call, so its recorded
    nodes take the labels as an argument (not the first batch's converted copy)."""
    net = _net()
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    w0, b0 = (p.data().asnumpy() for p in net[0].collect_params().values())
    w1, b1 = (p.data().asnumpy() for p in net[1].collect_params().values())
    rng = np.random.default_rng(8)
    x = rng.standard_normal((BATCH, IN)).astype(np.float32)
    logits = np.maximum(x @ w0.T + b0, 0) @ w1.T + b1
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    for _ in range(4):
        y = rng.integers(0, OUT, BATCH).astype(np.int32)
        with autograd.record():
            loss = loss_fn(net(nd.array(x)), nd.array(y, dtype=np.int32))
        np.testing.assert_allclose(loss.asnumpy(), -logp[np.arange(BATCH), y], rtol=1e-5)


def test_the_trainer_follows_a_gradient_buffer_replaced_by_attach_grad():
    net = nn.Dense(OUT, in_units=IN)
    net.initialize(sg.init.Constant(0.1))
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 1.0})
    for value, replace in ((1.0, False), (1.0, False), (2.0, True)):  # two steps: the
        # Trainer trusts its buffers from the second one on, until the epoch moves
        if replace:  # a new gradient buffer for the weight, made behind the Parameter
            net.weight.data().attach_grad()
        before = net.weight.data().asnumpy()
        with autograd.record():
            loss = net(nd.full((BATCH, IN), value)).sum()
        loss.backward()
        trainer.step(1)
        # d(sum)/dW = BATCH * value everywhere: the update must read the live gradient
        # (the old buffer still holds the first step's BATCH * 1)
        np.testing.assert_allclose(net.weight.data().asnumpy(), before - BATCH * value,
                                   rtol=1e-6)
