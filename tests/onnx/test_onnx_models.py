"""Whole models: trained on real data with symgraph's compiled Module, exported, run in
onnxruntime (static and dynamic batch), imported back and run by symgraph again."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_helpers import F32, assert_close, onnx, run_onnx

import symgraph as sg
from runtime.checkpoint import save_checkpoint
from runtime.datasets import load_letter_recognition, load_mnist
from runtime.onnx import export_model, import_model

S = sg.sym


def letter_mlp():
    net = S.FullyConnected(S.Variable("data"), name="fc1", num_hidden=64)
    net = S.Activation(net, name="relu1", act_type="relu")
    net = S.FullyConnected(net, name="fc2", num_hidden=26)
    return S.SoftmaxOutput(net, name="softmax")


def mnist_mlp():
    net = S.Flatten(S.Variable("data"), name="flat")
    net = S.FullyConnected(net, name="fc1", num_hidden=128)
    net = S.Activation(net, name="relu1", act_type="relu")
    net = S.FullyConnected(net, name="fc2", num_hidden=64)
    net = S.Activation(net, name="relu2", act_type="relu")
    net = S.FullyConnected(net, name="fc3", num_hidden=10)
    return S.SoftmaxOutput(net, name="softmax")


def lenet():
    net = S.Convolution(S.Variable("data"), name="conv1", kernel=(5, 5), num_filter=6)
    net = S.Activation(net, name="tanh1", act_type="tanh")
    net = S.Pooling(net, name="pool1", pool_type="max", kernel=(2, 2), stride=(2, 2))
    net = S.Convolution(net, name="conv2", kernel=(5, 5), num_filter=16)
    net = S.Activation(net, name="tanh2", act_type="tanh")
    net = S.Pooling(net, name="pool2", pool_type="avg", kernel=(2, 2), stride=(2, 2))
    net = S.Flatten(net, name="flat")
    net = S.FullyConnected(net, name="fc1", num_hidden=120)
    net = S.Activation(net, name="tanh3", act_type="tanh")
    net = S.FullyConnected(net, name="fc2", num_hidden=10)
    return S.SoftmaxOutput(net, name="softmax")


def conv_bn():
    """Conv -> BatchNorm -> relu -> pool -> dense."""
    net = S.Convolution(S.Variable("data"), name="conv1", kernel=(3, 3), num_filter=8)
    net = S.BatchNorm(net, name="bn1", fix_gamma=False)
    net = S.Activation(net, name="relu1", act_type="relu")
    net = S.Pooling(net, name="pool1", pool_type="max", kernel=(2, 2), stride=(2, 2))
    net = S.FullyConnected(S.Flatten(net, name="flat"), name="fc1", num_hidden=10)
    return S.SoftmaxOutput(net, name="softmax")


def _letter():
    X, y = load_letter_recognition()
    return X[:2000], y[:2000], X[-300:]


def _mnist(image_shape):
    images, labels = load_mnist(kind="train")
    X = images[:1000].astype(F32).reshape((-1,) + image_shape) / 255
    test, _ = load_mnist(kind="test")
    return X, labels[:1000].astype(F32), test[:200].astype(F32).reshape((-1,) + image_shape) / 255


MODELS = {
    "letter-mlp-16-64-26": (letter_mlp, _letter, (16,)),
    "mnist-mlp-784-128-64-10": (mnist_mlp, lambda: _mnist((784,)), (784,)),
    "lenet-mnist": (lenet, lambda: _mnist((1, 28, 28)), (1, 28, 28)),
    "conv-bn-mnist": (conv_bn, lambda: _mnist((1, 28, 28)), (1, 28, 28)),
}
def trained(name, batch=50):
    """One epoch of Module.fit on the real data; returns the module and the held-out rows."""
    build, data, sample = MODELS[name]
    X, y, held_out = data()
    mod = sg.mod.Module(build(), context=sg.cpu())
    train = sg.io.NDArrayIter(X, y, batch, shuffle=False)
    mod.fit(train, num_epoch=1, optimizer="sgd", optimizer_params={"learning_rate": 0.1},
            initializer=sg.init.Xavier())
    return mod, held_out



@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request):
    mod, held_out = trained(request.param)
    arg_params, aux_params = mod.get_params()
    want = np.asarray(mod.predict(sg.io.NDArrayIter(held_out, None, 50)))
    return request.param, mod.symbol, {**arg_params, **aux_params}, held_out, want


def test_static_batch_matches_module_predict(tmp_path, model):
    name, symbol, params, X, want = model
    path = export_model(symbol, params, in_shapes=[(len(X),) + X.shape[1:]],
                        onnx_file_path=tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    (got,) = run_onnx(path, {"data": X})
    assert_close(got, want, name)
    assert (got.argmax(1) == want.argmax(1)).mean() > 0.99


def test_dynamic_batch_runs_other_batch_sizes(tmp_path, model):
    name, symbol, params, X, want = model
    path = export_model(symbol, params, in_shapes=[(1,) + X.shape[1:]],
                        onnx_file_path=tmp_path / "m.onnx", dynamic=True)
    graph = onnx.load(str(path)).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    for rows in (1, 7, len(X)):
        (got,) = run_onnx(path, {"data": X[:rows]})
        assert_close(got, want[:rows], f"{name} batch {rows}")


def test_import_roundtrip_gives_module_outputs(tmp_path, model):
    name, symbol, params, X, want = model
    path = export_model(symbol, params, in_shapes=[X.shape], onnx_file_path=tmp_path / "m.onnx")
    back, arg_params, aux_params = import_model(path)
    assert set(arg_params) == {k for k in params if k in symbol.list_arguments()}
    assert set(aux_params) == set(symbol.list_auxiliary_states())
    mod = sg.mod.Module(back, data_names=("data",), label_names=None, context=sg.cpu())
    mod.bind(data_shapes=[("data", X.shape)], for_training=False)
    mod.set_params(arg_params, aux_params)
    got = np.asarray(mod.predict(sg.io.NDArrayIter(X, None, len(X))))
    assert_close(got, want, name)


def test_cli_export_onnx_from_checkpoint(tmp_path):
    from runtime.cli import main

    mod, X = trained("letter-mlp-16-64-26")
    arg_params, aux_params = mod.get_params()
    prefix = str(tmp_path / "letter")
    save_checkpoint(prefix, 1, mod.symbol, arg_params, aux_params)
    out = tmp_path / "letter.onnx"
    assert main(["export-onnx", prefix, "1", "--shape", "data=1,16", "-o", str(out),
                 "--dynamic"]) == 0
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    (got,) = run_onnx(out, {"data": X})
    assert_close(got, np.asarray(mod.predict(sg.io.NDArrayIter(X, None, 50))), "cli letter")
    assert main(["export-onnx", prefix, "2", "--shape", "data=1,16", "-o", str(out)]) == 1
