"""BatchNorm end to end through Module: a small conv net trains on real Fashion-MNIST,
the moving statistics follow the batches, and inference reads them."""

import os
from pathlib import Path

import numpy as np
import pytest

import symgraph as sg
from runtime.datasets import load_fashion_mnist
from runtime.io import NDArrayIter
from symgraph.reference import evaluate

pytestmark = pytest.mark.jit


def data_root():
    root = os.environ.get("SYMGRAPH_DATA") or "/work/shared/datasets"
    if not (Path(root) / "fashion-mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST files not available (set SYMGRAPH_DATA)")
    return root


def conv_bn_net():
    S = sg.sym
    net = S.Variable("data")
    for k, filters in enumerate((8, 16), start=1):
        net = S.Convolution(net, name=f"conv{k}", kernel=(3, 3), pad=(1, 1), num_filter=filters)
        net = S.BatchNorm(net, name=f"bn{k}", fix_gamma=False)
        net = S.Activation(net, name=f"relu{k}", act_type="relu")
        net = S.Pooling(net, name=f"pool{k}", kernel=(2, 2), stride=(2, 2), pool_type="max")
    net = S.FullyConnected(S.Flatten(net), name="fc", num_hidden=10)
    return S.SoftmaxOutput(net, name="softmax")


def images(kind, count):
    x, y = load_fashion_mnist(data_root(), kind)
    return (x[:count, None].astype(np.float32) / 255.0), y[:count].astype(np.float32)


@pytest.fixture(scope="module")
def trained():
    sg.random.seed(3)
    x, y = images("train", 6000)
    mod = sg.mod.Module(conv_bn_net())
    mod.fit(NDArrayIter(x, y, 50, shuffle=True), num_epoch=2, initializer=sg.init.Xavier(),
            optimizer="sgd", optimizer_params={"learning_rate": 0.1})
    return mod


def test_conv_bn_net_learns_fashion_mnist(trained):
    x, y = images("test", 2000)
    acc = trained.score(NDArrayIter(x, y, 100), "acc")[0][1]
    assert acc > 0.80, acc


def test_moving_stats_follow_the_data(trained):
    aux = {k: v.asnumpy() for k, v in trained.get_params()[1].items()}
    assert sorted(aux) == ["bn1_moving_mean", "bn1_moving_var", "bn2_moving_mean",
                           "bn2_moving_var"]
    # the moving statistics track what the trained conv1 produces on training images
    # (momentum 0.9 averages roughly the last ten batches, so they agree loosely)
    args, _ = trained.get_params()
    conv = trained.symbol.get_internals()["conv1_output"]
    x, _ = images("train", 1000)
    out = evaluate(conv.outputs, {**args, "data": x})[0]
    mean, var = out.mean(axis=(0, 2, 3)), out.var(axis=(0, 2, 3))
    assert np.abs(mean).max() > 1e-2 and not np.allclose(var, 1.0, rtol=0.2)
    assert (np.abs(aux["bn1_moving_mean"] - mean) < 0.35 * np.sqrt(var)).all()
    assert ((aux["bn1_moving_var"] > var / 1.5) & (aux["bn1_moving_var"] < var * 1.5)).all()
    assert (aux["bn2_moving_var"] > 0).all()


def test_inference_uses_moving_stats(trained):
    x, _ = images("test", 100)
    args, aux = trained.get_params()
    sym = trained.symbol
    feed = {**args, **aux, "data": x, "softmax_label": np.zeros(100, np.float32)}
    inference = evaluate(sym.outputs, feed, is_train=False)[0]
    batch = evaluate(sym.outputs, feed, is_train=True)[0]
    got = trained.predict(NDArrayIter(x, None, 100))
    np.testing.assert_allclose(got, inference, rtol=1e-4, atol=1e-5)
    assert np.abs(got - batch).max() > 1e-3  # batch statistics would give other numbers


def test_training_forward_moves_aux_by_momentum():
    sym = sg.sym.BatchNorm(sg.sym.Variable("data"), name="bn", momentum=0.75)
    exe = sym.simple_bind(sg.cpu(), data=(6, 3, 4, 5))
    x = np.random.default_rng(0).normal(2.0, 3.0, (6, 3, 4, 5)).astype(np.float32)
    exe.arg_dict["data"][:] = x
    exe.arg_dict["bn_gamma"][:] = 1.0
    exe.aux_dict["bn_moving_var"][:] = 1.0
    exe.forward(is_train=False)
    assert (exe.aux_dict["bn_moving_mean"] == 0).all()  # inference leaves them alone
    exe.forward(is_train=True)
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(exe.aux_dict["bn_moving_mean"], 0.25 * mean, rtol=1e-5)
    np.testing.assert_allclose(exe.aux_dict["bn_moving_var"], 0.75 + 0.25 * var, rtol=1e-5)
    out = exe.forward(is_train=False)[0]
    expected = (x - 0.25 * mean[None, :, None, None]) / np.sqrt(
        0.75 + 0.25 * var[None, :, None, None] + 1e-3)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_initializers_and_names():
    sym = sg.sym.BatchNorm(sg.sym.Variable("data"), name="bn")
    assert sym.list_arguments() == ["data", "bn_gamma", "bn_beta"]
    assert sym.list_auxiliary_states() == ["bn_moving_mean", "bn_moving_var"]
    mod = sg.mod.Module(sym, label_names=None)
    mod.bind(data_shapes=[("data", (2, 3, 4, 4))])
    mod.init_params(sg.init.Uniform(0.5))
    args, aux = mod.get_params()
    assert (args["bn_gamma"] == 1).all() and (args["bn_beta"] == 0).all()
    assert (aux["bn_moving_mean"] == 0).all() and (aux["bn_moving_var"] == 1).all()


def test_moving_stats_input_must_be_a_variable():
    S = sg.sym
    data = S.Variable("data")
    sym = S.BatchNorm(data, moving_mean=S.exp(S.Variable("m")), name="bn")
    with pytest.raises(sg.CompileError, match="computed value"):
        sym.simple_bind(sg.cpu(), data=(2, 3, 4, 4))
