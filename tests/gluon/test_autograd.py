"""autograd: tracing inside record(), compiled forward+backward, gradients vs numpy."""

import numpy as np
import pytest

from runtime.ndarray import runner
from symgraph import autograd, nd


def _fd_grad(f, x, eps=1e-3):
    g = np.zeros_like(x, dtype=np.float64)
    for i in np.ndindex(x.shape):
        xp, xm = x.astype(np.float64), x.astype(np.float64)
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


def test_scopes_and_flags():
    assert not autograd.is_recording() and not autograd.is_training()
    with autograd.record():
        assert autograd.is_recording() and autograd.is_training()
        with autograd.pause():
            assert not autograd.is_recording() and not autograd.is_training()
        with autograd.predict_mode():
            assert not autograd.is_training()
    with autograd.record(train_mode=False):
        assert autograd.is_recording() and not autograd.is_training()
    with autograd.train_mode():
        assert autograd.is_training() and not autograd.is_recording()
    assert not autograd.is_recording()


def test_ops_inside_record_are_pending_until_read():
    x = nd.array(np.arange(6).reshape(2, 3))
    x.attach_grad()
    with autograd.record():
        y = x * x + 1
        assert y._data is None and y.shape == (2, 3)  # traced, shape inferred, not run
    np.testing.assert_allclose(y.asnumpy(), np.arange(6).reshape(2, 3) ** 2 + 1)


def test_backward_matches_finite_differences_on_non_square_shapes():
    rng = np.random.default_rng(0)
    xv = rng.standard_normal((3, 5)).astype(np.float32)
    wv = rng.standard_normal((4, 5)).astype(np.float32)
    x, w = nd.array(xv), nd.array(wv)
    w.attach_grad()
    x.attach_grad()
    with autograd.record():
        h = nd.FullyConnected(x, w, num_hidden=4, no_bias=True)
        loss = (nd.tanh(h) * nd.tanh(h)).sum(axis=1)
    loss.backward()

    def f_w(wd):
        return float((np.tanh(xv.astype(np.float64) @ wd.T) ** 2).sum())

    def f_x(xd):
        return float((np.tanh(xd @ wv.astype(np.float64).T) ** 2).sum())

    np.testing.assert_allclose(w.grad.asnumpy(), _fd_grad(f_w, wv), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(x.grad.asnumpy(), _fd_grad(f_x, xv), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(loss.asnumpy(), (np.tanh(xv @ wv.T) ** 2).sum(axis=1),
                               rtol=1e-5)


def test_grad_req_add_accumulates_and_write_overwrites():
    x = nd.array([1.0, 2.0, 3.0])
    x.attach_grad(grad_req="add")
    for _ in range(2):
        with autograd.record():
            y = (x * x).sum()
        y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), 2 * 2 * np.array([1, 2, 3]))
    x.attach_grad()
    for _ in range(2):
        with autograd.record():
            y = (x * x).sum()
        y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), 2 * np.array([1, 2, 3]))


def test_head_gradient_and_autograd_grad():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        y = x * 3
    y.backward(nd.array([1.0, 10.0]))
    np.testing.assert_allclose(x.grad.asnumpy(), [3, 30])
    with autograd.record():
        y = (x * x).sum()
    g = autograd.grad(y, x)
    np.testing.assert_allclose(g.asnumpy(), [2, 4])


def test_reading_inside_record_keeps_the_graph_for_backward():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        y = x * x
        assert y.asnumpy().tolist() == [1, 4]
        z = (y * 2).sum()
    z.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), [4, 8])


def test_backward_without_record_is_an_error():
    x = nd.array([1.0])
    with pytest.raises(Exception, match="record"):
        (x * 2).backward()


def test_the_compiled_executor_is_reused_by_structure():
    runner._EXECUTORS.clear()  # counts new executors: earlier tests may have filled the LRU
    x = nd.array(np.ones((2, 3)))
    x.attach_grad()

    def step(value):
        x[:] = value
        with autograd.record():
            y = (x * x).sum(axis=1)
        y.backward()
        return x.grad.asnumpy()

    step(1.0)
    before = len(runner._EXECUTORS)
    for value in (2.0, 3.0):
        np.testing.assert_allclose(step(value), 2 * value * np.ones((2, 3)))
    assert len(runner._EXECUTORS) == before  # same structure: no new compile
    y = nd.array(np.ones((4, 3)))
    y.attach_grad()
    with autograd.record():
        z = (y * y).sum(axis=1)
    z.backward()
    assert len(runner._EXECUTORS) == before + 1  # new shape: one more executor


def test_two_threads_training_at_once_get_the_single_thread_results():
    import threading

    def work(seed, out):
        x = nd.array(np.random.default_rng(seed).standard_normal((3, 4)))
        x.attach_grad()
        for _ in range(20):
            with autograd.record():
                y = (nd.tanh(x) * x).sum(axis=1)
            y.backward()
        out[seed] = x.grad.asnumpy()

    alone, together = {}, {}
    for seed in (1, 2):
        work(seed, alone)
    threads = [threading.Thread(target=work, args=(s, together)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed in (1, 2):
        np.testing.assert_array_equal(together[seed], alone[seed])


def test_unread_inference_outputs_do_not_pile_up():
    from runtime.ndarray import state
    from symgraph.gluon import nn

    net = nn.Dense(3, in_units=2)
    net.initialize()
    x = nd.ones((4, 2))
    for _ in range(5):
        net(x)  # results dropped
    assert len(state.STATE.trace.nodes) == 1
    kept = net(x)
    net(x)  # the held result of the previous call is computed, not re-traced later
    assert kept._data is not None and len(state.STATE.trace.nodes) == 1


def test_attribute_keys_keep_python_types_apart():
    from runtime.ndarray.trace import attr_key

    assert attr_key({"a": 1}) == (("a", "1"),) and attr_key({"a": True}) == (("a", "True"),)
    assert attr_key({"k": [1, 2], "n": None}) == (("k", "(1, 2)"),)


def test_backward_from_several_heads_sums_their_gradients():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        a = (x * x).sum()
        b = x * 3
    autograd.backward([a, b], [None, nd.array([1.0, 2.0])])
    np.testing.assert_allclose(x.grad.asnumpy(), 2 * np.array([1, 2]) + 3 * np.array([1, 2]))
    assert a.asscalar() == 5 and b.asnumpy().tolist() == [3, 6]


def test_backward_with_nothing_to_differentiate_is_a_clear_error():
    x = nd.array([1.0, 2.0])
    for train in (True, False):
        with autograd.record(train_mode=train):
            y = (x * x).sum()
        with pytest.raises(Exception, match="attach_grad"):
            y.backward()


def test_record_in_predict_mode_differentiates_with_dropout_off():
    from symgraph.gluon import nn

    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record(train_mode=False):
        z = (nn.Dropout(0.5)(x) * x).sum()
    z.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), [2, 4])


def test_astype_inside_record_keeps_the_graph():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        y = (x * x).astype("float32")  # same dtype: an identity node, gradient flows
        z = y.sum()
    z.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), [2, 4])
    with autograd.record():
        labels = nd.array([1, 0]).astype("int32")  # leaves without gradients: fine
        counts = (x * 3).astype("int32")  # to an integer type: the value, no gradient
    assert labels.dtype == np.int32 and counts.asnumpy().tolist() == [3, 6]
    assert counts.dtype == np.int32


@pytest.mark.parametrize("source, target", [("float32", "float64"), ("float64", "float32")])
def test_astype_inside_record_is_a_cast_node_with_a_gradient(source, target):
    """As MXNet's astype under record(): a Cast node; the gradient comes back in the
    input's dtype and matches finite differences of the same function."""
    rng = np.random.default_rng(3)
    xv = rng.uniform(-1.5, 1.5, (3, 5)).astype(source)
    wv = rng.standard_normal((3, 5)).astype(target)
    x = nd.array(xv, dtype=source)
    x.attach_grad()
    with autograd.record():
        y = x.astype(target)
        assert y.dtype == np.dtype(target) and y.shape == (3, 5)
        assert y._trace.nodes[-1].opdef.name == "Cast"
        z = (y * y * y * nd.array(wv, dtype=target)).sum()
    z.backward()
    assert x.grad.dtype == np.dtype(source)
    np.testing.assert_allclose(y.asnumpy(), xv.astype(target))

    def f(v):
        return float((v.astype(target).astype(np.float64) ** 3 * wv).sum())

    rtol = 1e-4 if "float32" in (source, target) else 1e-7
    np.testing.assert_allclose(x.grad.asnumpy(), 3 * xv.astype(np.float64) ** 2 * wv,
                               rtol=rtol)
    np.testing.assert_allclose(x.grad.asnumpy(), _fd_grad(f, xv.astype(np.float64), 1e-4),
                               rtol=1e-2, atol=1e-3)


def test_astype_of_a_pending_value_chains_casts_in_the_graph():
    x = nd.array(np.arange(1, 7, dtype=np.float32).reshape(2, 3))
    x.attach_grad()
    with autograd.record():
        z = ((x * 2).astype("float64").astype("float32") * x).sum()
    z.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), 4 * x.asnumpy())


def _last_executor():
    return next(reversed(runner._EXECUTORS.values())).executor


def test_parameters_are_bound_into_the_executor_not_copied():
    from symgraph.gluon import nn

    net = nn.HybridSequential()
    net.add(nn.Dense(4, in_units=3), nn.BatchNorm(in_channels=4))
    net.initialize()
    x = nd.array(np.random.default_rng(0).standard_normal((5, 3)))
    with autograd.record():
        loss = net(x).sum()
    loss.backward()
    exe = _last_executor()
    bound = {id(a) for d in (exe.arg_dict, exe.aux_dict, exe.grad_dict) for a in d.values()}
    for param in net.collect_params().values():
        array = param.data()
        assert id(array._data) in bound, param.name
        if param.grad_req != "null":
            assert id(array._grad._data) in bound, param.name
    assert id(x._data) not in bound  # a batch is copied in: the next one is another array


def test_parameter_grad_req_add_accumulates_over_steps_until_zero_grad():
    from symgraph.gluon import nn

    net = nn.Dense(2, in_units=3)
    net.initialize()
    x = nd.array(np.random.default_rng(1).standard_normal((4, 3)))

    def step():
        with autograd.record():
            loss = (net(x) * net(x)).sum()
        loss.backward()
        return net.weight.grad().asnumpy()

    once = step()
    net.collect_params().setattr("grad_req", "add")
    net.collect_params().zero_grad()
    step()
    np.testing.assert_allclose(step(), 2 * once, rtol=1e-6)
    net.collect_params().zero_grad()
    np.testing.assert_allclose(step(), once, rtol=1e-6)
