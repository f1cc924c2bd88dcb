"""Norm layers and Conv2DTranspose: numpy written here, finite differences, running stats
flowing through the traced graph as aux states."""

import numpy as np
import pytest

import symgraph as sg
from symgraph import autograd, gluon, nd
from symgraph.gluon import nn

RNG = np.random.default_rng(3)


def _bn_ref(x, gamma, beta, mean, var, eps, axis=1):
    shape = [1] * x.ndim
    shape[axis] = -1
    view = [np.reshape(v, shape) for v in (gamma, beta, mean, var)]
    return (x - view[2]) / np.sqrt(view[3] + eps) * view[0] + view[1]


def _batch_stats(x, axis=1):
    axes = tuple(i for i in range(x.ndim) if i != axis)
    return x.mean(axis=axes), x.var(axis=axes)


def _grads(block, x, w):
    """Gradients of sum(block(x) * w) w.r.t. x and every trainable parameter."""
    x = nd.array(x)
    x.attach_grad()
    with autograd.record():
        loss = (block(x) * nd.array(w)).sum()
    loss.backward()
    params = {k.rsplit("_", 1)[1]: p.grad().asnumpy()
              for k, p in block.collect_params().items() if p.grad_req != "null"}
    return x.grad.asnumpy(), params


def _fd(f, arr, eps=1e-3):
    grad = np.zeros_like(arr)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        arr[idx] = old + eps
        up = f()
        arr[idx] = old - eps
        down = f()
        arr[idx] = old
        grad[idx] = (up - down) / (2 * eps)
    return grad


def _names(make):
    """Parameter names of a fresh layer made inside a new scope (counters start at 0)."""
    outer = nn.HybridSequential()
    with outer.name_scope():
        block = make()
    return block, [k[len(outer.prefix):] for k in block.collect_params()]


def test_batchnorm_names_train_and_predict_modes():
    bn, names = _names(lambda: nn.BatchNorm(momentum=0.8, epsilon=1e-3))
    assert names == ["batchnorm0_gamma", "batchnorm0_beta", "batchnorm0_running_mean",
                     "batchnorm0_running_var"]
    assert bn.running_mean.grad_req == "null" and bn.running_var.grad_req == "null"
    bn.initialize()
    gamma = RNG.uniform(0.5, 1.5, 3).astype(np.float32)
    beta = RNG.standard_normal(3).astype(np.float32)
    bn.gamma.set_data(gamma)
    bn.beta.set_data(beta)
    x = RNG.standard_normal((4, 3, 2, 5)).astype(np.float32) * 2 + 1
    with autograd.record():
        y = bn(nd.array(x))
    mean, var = _batch_stats(x)
    np.testing.assert_allclose(y.asnumpy(), _bn_ref(x, gamma, beta, mean, var, 1e-3),
                               rtol=1e-4, atol=1e-4)
    run_mean, run_var = 0.2 * mean, 0.8 + 0.2 * var
    np.testing.assert_allclose(bn.running_mean.data().asnumpy(), run_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.data().asnumpy(), run_var, rtol=1e-5, atol=1e-6)
    x2 = RNG.standard_normal((2, 3, 3, 1)).astype(np.float32)
    out = bn(nd.array(x2)).asnumpy()  # outside record(): running statistics, unchanged
    np.testing.assert_allclose(out, _bn_ref(x2, gamma, beta, run_mean, run_var, 1e-3),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.running_mean.data().asnumpy(), run_mean, rtol=1e-5, atol=1e-6)
    with autograd.record(train_mode=False):
        out = bn(nd.array(x2)).asnumpy()
    np.testing.assert_allclose(out, _bn_ref(x2, gamma, beta, run_mean, run_var, 1e-3),
                               rtol=1e-4, atol=1e-5)
    with autograd.record():  # a second training step moves the statistics again
        bn(nd.array(x2)).asnumpy()
    mean2, var2 = _batch_stats(x2)
    np.testing.assert_allclose(bn.running_mean.data().asnumpy(), 0.8 * run_mean + 0.2 * mean2,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.data().asnumpy(), 0.8 * run_var + 0.2 * var2,
                               rtol=1e-5, atol=1e-6)


def test_batchnorm_other_axis_no_scale_and_global_stats():
    bn = nn.BatchNorm(axis=-1, scale=False)
    bn.initialize()
    assert bn.gamma.grad_req == "null"
    bn.gamma.set_data(np.full(5, 3.0, np.float32))  # fix_gamma: gamma is ignored
    x = RNG.standard_normal((3, 4, 5)).astype(np.float32)
    with autograd.record():
        y = bn(nd.array(x)).asnumpy()
    assert bn.gamma.shape == (5,)
    mean, var = _batch_stats(x, axis=2)
    np.testing.assert_allclose(y, _bn_ref(x, np.ones(5), np.zeros(5), mean, var, 1e-5, axis=2),
                               rtol=1e-4, atol=1e-4)
    frozen = nn.BatchNorm(use_global_stats=True, in_channels=2)
    frozen.initialize()
    x = RNG.standard_normal((3, 2, 4)).astype(np.float32)
    with autograd.record():
        y = frozen(nd.array(x)).asnumpy()
    np.testing.assert_allclose(y, x / np.sqrt(1 + 1e-5), rtol=1e-5)
    np.testing.assert_array_equal(frozen.running_mean.data().asnumpy(), np.zeros(2))


def _bn_train_loss(x, gamma, beta, w, eps):
    mean, var = _batch_stats(x)
    return float((_bn_ref(x, gamma, beta, mean, var, eps) * w).sum())


def test_batchnorm_gradient_against_finite_differences():
    bn = nn.BatchNorm(in_channels=3)
    bn.initialize()
    x = RNG.standard_normal((2, 3, 2, 3))
    gamma, beta = RNG.uniform(0.5, 1.5, 3), RNG.standard_normal(3)
    bn.gamma.set_data(gamma.astype(np.float32))
    bn.beta.set_data(beta.astype(np.float32))
    w = RNG.standard_normal(x.shape)
    dx, params = _grads(bn, x.astype(np.float32), w.astype(np.float32))
    loss = lambda: _bn_train_loss(x, gamma, beta, w, 1e-5)  # noqa: E731
    np.testing.assert_allclose(dx, _fd(loss, x), rtol=2e-2, atol=2e-3)
    np.testing.assert_allclose(params["gamma"], _fd(loss, gamma), rtol=1e-2, atol=1e-3)
    np.testing.assert_allclose(params["beta"], _fd(loss, beta), rtol=1e-2, atol=1e-3)


def _layernorm_ref(x, gamma, beta, eps, axis):
    mean = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, keepdims=True)
    shape = [1] * x.ndim
    shape[axis] = -1
    return (x - mean) / np.sqrt(var + eps) * gamma.reshape(shape) + beta.reshape(shape)


def _instancenorm_ref(x, gamma, beta, eps):
    axes = tuple(range(2, x.ndim))
    mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean) / np.sqrt(var + eps) * gamma.reshape(shape) + beta.reshape(shape)


CASES = [
    (lambda: nn.LayerNorm(), "layernorm0", (3, 2, 5), 5,
     lambda x, g, b: _layernorm_ref(x, g, b, 1e-5, -1)),
    (lambda: nn.LayerNorm(axis=1, epsilon=1e-3), "layernorm0", (3, 4, 2), 4,
     lambda x, g, b: _layernorm_ref(x, g, b, 1e-3, 1)),
    (lambda: nn.InstanceNorm(scale=True), "instancenorm0", (2, 3, 4, 2), 3,
     lambda x, g, b: _instancenorm_ref(x, g, b, 1e-5)),
    (lambda: nn.InstanceNorm(axis=2, scale=True), "instancenorm0", (2, 3, 4), 4,
     lambda x, g, b: np.swapaxes(_instancenorm_ref(np.swapaxes(x, 1, 2), g, b, 1e-5), 1, 2)),
]


@pytest.mark.parametrize("make, prefix, shape, channels, ref", CASES)
def test_layer_and_instance_norm_forward_and_gradients(make, prefix, shape, channels, ref):
    block, names = _names(make)
    block.initialize()
    x = RNG.standard_normal(shape)
    gamma, beta = RNG.uniform(0.5, 1.5, channels), RNG.standard_normal(channels)
    block.gamma.set_data(gamma.astype(np.float32))
    block.beta.set_data(beta.astype(np.float32))
    assert names == [f"{prefix}_gamma", f"{prefix}_beta"]
    out = block(nd.array(x.astype(np.float32))).asnumpy()
    np.testing.assert_allclose(out, ref(x, gamma, beta), rtol=1e-4, atol=1e-4)
    w = RNG.standard_normal(shape)
    dx, params = _grads(block, x.astype(np.float32), w.astype(np.float32))
    loss = lambda: float((ref(x, gamma, beta) * w).sum())  # noqa: E731
    np.testing.assert_allclose(dx, _fd(loss, x), rtol=2e-2, atol=2e-3)
    np.testing.assert_allclose(params["gamma"], _fd(loss, gamma), rtol=1e-2, atol=1e-3)
    np.testing.assert_allclose(params["beta"], _fd(loss, beta), rtol=1e-2, atol=1e-3)


def test_instancenorm_default_does_not_train_gamma():
    block = nn.InstanceNorm()
    assert block.gamma.grad_req == "null" and block.beta.grad_req == "write"


def test_save_load_round_trip_keeps_running_stats(tmp_path):
    net = nn.HybridSequential()
    net.add(nn.Conv2D(2, 3), nn.BatchNorm())
    net.initialize()
    x = nd.array(RNG.standard_normal((2, 1, 5, 5)).astype(np.float32))
    with autograd.record():
        net(x).asnumpy()
    stats = net[1].running_var.data().asnumpy().copy()
    assert not np.allclose(stats, 1.0)
    path = str(tmp_path / "net.params")
    net.save_parameters(path)
    other = nn.HybridSequential()
    other.add(nn.Conv2D(2, 3), nn.BatchNorm())
    other.load_parameters(path)
    np.testing.assert_array_equal(other[1].running_var.data().asnumpy(), stats)
    np.testing.assert_array_equal(other[1].running_mean.data().asnumpy(),
                                  net[1].running_mean.data().asnumpy())
    np.testing.assert_allclose(other(x).asnumpy(), net(x).asnumpy(), rtol=1e-6)


@pytest.mark.parametrize("hybridize", [False, True])
def test_conv_batchnorm_relu_trains(hybridize):
    rng = np.random.default_rng(7)
    net = nn.HybridSequential()
    net.add(nn.Conv2D(4, 3, padding=1), nn.BatchNorm(), nn.Activation("relu"),
            nn.Flatten(), nn.Dense(1))
    net.initialize(sg.init.Xavier())
    if hybridize:
        net.hybridize()
    x = nd.array(rng.standard_normal((8, 2, 4, 4)).astype(np.float32))
    y = nd.array(rng.standard_normal((8, 1)).astype(np.float32))
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.05})
    loss_fn = gluon.loss.L2Loss()
    losses = []
    for _ in range(6):
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(8)
        losses.append(float(loss.mean().asscalar()))
    assert losses[-1] < 0.8 * losses[0], losses
    assert not np.allclose(net[1].running_mean.data().asnumpy(), 0.0)


def _deconv_ref(x, w, b, stride, pad, adj, dilate):
    n, c, h, wd = x.shape
    _, f, kh, kw = w.shape
    full = (stride * (h - 1) + dilate * (kh - 1) + 1 + adj,
            stride * (wd - 1) + dilate * (kw - 1) + 1 + adj)
    canvas = np.zeros((n, f) + full)
    for i in range(h):
        for j in range(wd):
            for a in range(kh):
                for bb in range(kw):
                    canvas[:, :, i * stride + a * dilate, j * stride + bb * dilate] += \
                        x[:, :, i, j] @ w[:, :, a, bb]
    out = canvas[:, :, pad:full[0] - pad, pad:full[1] - pad]
    return out + b.reshape(1, -1, 1, 1)


def test_conv2d_transpose_shape_and_values():
    layer, names = _names(lambda: nn.Conv2DTranspose(4, kernel_size=3, strides=2, padding=1,
                                                     output_padding=1, dilation=1))
    assert names == ["conv0_weight", "conv0_bias"]
    layer.initialize(sg.init.Xavier())
    layer.bias.set_data(RNG.standard_normal(4).astype(np.float32))
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    out = layer(nd.array(x)).asnumpy()
    assert layer.weight.shape == (3, 4, 3, 3)
    assert out.shape == (2, 4, 2 * 3 + 3 - 2 + 1, 2 * 4 + 3 - 2 + 1)
    w, b = layer.weight.data().asnumpy(), layer.bias.data().asnumpy()
    np.testing.assert_allclose(out, _deconv_ref(x, w, b, 2, 1, 1, 1), rtol=1e-4, atol=1e-5)
    op = nd.Deconvolution(nd.array(x), nd.array(w), nd.array(b), kernel=(3, 3), stride=(2, 2),
                          pad=(1, 1), adj=(1, 1), num_filter=4, no_bias=False).asnumpy()
    np.testing.assert_allclose(out, op, rtol=1e-4, atol=1e-5)


def test_conv2d_transpose_groups_dilation_no_bias():
    layer = nn.Conv2DTranspose(4, kernel_size=(2, 3), dilation=2, groups=2, use_bias=False,
                               in_channels=2)
    layer.initialize(sg.init.Xavier())
    assert layer.weight.shape == (2, 2, 2, 3) and layer.bias is None
    x = RNG.standard_normal((1, 2, 3, 4)).astype(np.float32)
    out = layer(nd.array(x)).asnumpy()
    assert out.shape == (1, 4, 3 - 1 + 2 * 1 + 1, 4 - 1 + 2 * 2 + 1)
    w = layer.weight.data().asnumpy()
    op = nd.Deconvolution(nd.array(x), nd.array(w), kernel=(2, 3), dilate=(2, 2),
                          num_filter=4, num_group=2, no_bias=True).asnumpy()
    np.testing.assert_allclose(out, op, rtol=1e-4, atol=1e-5)


def test_export_writes_running_stats_as_aux_and_imports_predict_the_same(tmp_path):
    net = nn.HybridSequential()
    net.add(nn.Conv2D(2, 3), nn.BatchNorm(), nn.Activation("relu"))
    net.initialize()
    net.hybridize()
    x = nd.array(RNG.standard_normal((2, 1, 5, 5)).astype(np.float32))
    with autograd.record():
        net(x).asnumpy()
    want = net(x).asnumpy()
    path = str(tmp_path / "model")
    net.export(path)
    saved = nd.load(path + "-0000.params")
    bn = net[1].prefix
    np.testing.assert_array_equal(saved[f"aux:{bn}running_var"].asnumpy(),
                                  net[1].running_var.data().asnumpy())
    assert f"aux:{bn}running_mean" in saved and f"arg:{bn}gamma" in saved
    block = gluon.SymbolBlock.imports(path + "-symbol.json", ["data"], path + "-0000.params")
    np.testing.assert_allclose(block(x).asnumpy(), want, rtol=1e-5, atol=1e-6)
