"""Symbolic gradients: printable, serializable, optimizable, and numerically right."""

import numpy as np
import pytest
from sg_helpers import S, node_count, run

from symgraph.passes.pipeline import optimize_symbol


def small_tanh_mlp():
    data = S.Variable("data")
    h = S.tanh(S.FullyConnected(data, num_hidden=4, name="fc1"), name="t1")
    return S.FullyConnected(h, num_hidden=2, name="fc2")


def values_for(net, rng, **shapes):
    arg_shapes, out_shapes, _ = net.infer_shape(**shapes)
    values = {n: rng.normal(size=s) for n, s in zip(net.list_arguments(), arg_shapes)}
    return values, out_shapes


def test_gradient_matches_finite_differences():
    net = small_tanh_mlp()
    rng = np.random.default_rng(3)
    values, (out_shape,) = values_for(net, rng, data=(3, 5))
    head = rng.normal(size=out_shape)
    g = S.grad(net)
    assert sorted(g.list_arguments()) == sorted(net.list_arguments() + ["fc2_output_head_grad"])
    grads = run(g, {**values, "fc2_output_head_grad": head})

    def loss(vals):
        return float(np.sum(run(net, vals)[0] * head))

    eps = 1e-6
    for name, grad in zip(net.list_arguments(), grads):
        assert grad.shape == values[name].shape
        numeric = np.zeros_like(values[name])
        for idx in np.ndindex(values[name].shape):
            plus, minus = dict(values), dict(values)
            plus[name] = values[name].copy()
            minus[name] = values[name].copy()
            plus[name][idx] += eps
            minus[name][idx] -= eps
            numeric[idx] = (loss(plus) - loss(minus)) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8, err_msg=name)


def test_gradient_graph_prints_serializes_and_optimizes(mlp):
    g = S.grad(mlp)
    text = str(g)
    assert "_softmax_output_grad" in text and text.startswith("%data = var")
    loaded = S.load_json(g.tojson())
    assert loaded.tojson() == g.tojson()
    assert loaded.list_outputs() == g.list_outputs()
    optimized = optimize_symbol(g)
    assert optimized.list_outputs() == g.list_outputs()
    rng = np.random.default_rng(0)
    values, _ = values_for(mlp, rng, data=(6, 16))
    values["softmax_label"] = np.arange(6.0)
    for want, got, again in zip(run(g, values), run(optimized, values), run(loaded, values)):
        np.testing.assert_allclose(got, want, rtol=1e-12)
        np.testing.assert_array_equal(again, want)


def test_gradient_of_unused_argument_is_zero():
    x, y = S.Variable("x"), S.Variable("y")
    net = S.Group([S.MakeLoss(S.sum(x * x)), S.BlockGrad(y)])
    g = S.grad(net, ["y", "x"])
    assert g.list_outputs()[0] == "y_zero_grad_output"
    values = {"x": np.array([[1.0, -2.0]]), "y": np.array([[3.0, 4.0]]),
              "blockgrad0_output_head_grad": np.ones((1, 2))}
    dy, dx = run(g, values)
    np.testing.assert_array_equal(dy, np.zeros((1, 2)))
    np.testing.assert_allclose(dx, 2 * values["x"])


def test_no_gradient_nodes_for_unrequested_arguments(mlp):
    only_fc2_bias = S.grad(mlp, ["fc2_bias"])
    names = [e.node.name for e in only_fc2_bias.get_internals().outputs]
    assert not any(n.startswith(("fc1_backward", "relu1_backward")) for n in names)
    assert not any("backward_dot" in n for n in names)
    forward = node_count(mlp)
    assert node_count(only_fc2_bias) == forward + 3  # softmax grad, sum, reshape_like
    assert node_count(S.grad(mlp, ["fc1_weight"])) < node_count(S.grad(mlp))


@pytest.mark.parametrize("normalization", ["null", "batch", "valid"])
@pytest.mark.parametrize("use_ignore", [False, True])
def test_softmax_output_gradient(normalization, use_ignore):
    data = S.Variable("data")
    net = S.SoftmaxOutput(data, name="sm", grad_scale=2.0, ignore_label=1,
                          use_ignore=use_ignore, normalization=normalization)
    g = S.grad(net, ["data"])
    assert g.list_arguments() == ["data", "sm_label"]  # no head gradient input
    rng = np.random.default_rng(5)
    x = rng.normal(size=(5, 3))
    label = np.array([0.0, 1.0, 2.0, 1.0, 2.0])
    (got,) = run(g, {"data": x, "sm_label": label})
    p = np.exp(x - x.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    expected = p - np.eye(3)[label.astype(int)]
    if use_ignore:
        expected[label == 1] = 0.0
    norm = {"null": 1.0, "batch": 5.0, "valid": 3.0}[normalization]
    np.testing.assert_allclose(got, expected * 2.0 / norm, rtol=1e-12)
    np.testing.assert_allclose(run(net, {"data": x, "sm_label": label})[0], p, rtol=1e-12)
