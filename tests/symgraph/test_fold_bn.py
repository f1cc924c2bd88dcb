"""The inference-only BatchNorm fold: it fires after Convolution / FullyConnected, gives the
unfolded graph's outputs, leaves every case it cannot prove alone, and the compiled
inference executor runs the folded graph while its training forward keeps batch stats."""

import numpy as np
import pytest

import symgraph as sg
from symgraph.graph import topo_order
from symgraph.passes.fold_bn import fold_batchnorm
from symgraph.passes.pipeline import optimize_for_inference
from symgraph.reference import evaluate
from symgraph.symbol import Symbol

S = sg.sym


def conv_bn(no_bias=False, fix_gamma=False, **bn):
    net = S.Convolution(S.Variable("data"), name="conv", kernel=(3, 2), pad=(1, 0),
                        num_filter=5, no_bias=no_bias)
    return S.BatchNorm(net, name="bn", fix_gamma=fix_gamma, **bn)


def fc_bn(flatten=True, axis=1, **bn):
    net = S.FullyConnected(S.Variable("data"), name="fc", num_hidden=6, flatten=flatten)
    return S.BatchNorm(net, name="bn", axis=axis, fix_gamma=False, **bn)


DATA = {"conv": (3, 2, 7, 6), "fc": (4, 3, 5)}


def values(sym, data_shape, seed=0):
    rng = np.random.default_rng(seed)
    args, _, aux = sym.infer_shape(data=data_shape)
    names = sym.list_arguments() + sym.list_auxiliary_states()
    out = {}
    for name, shape in zip(names, args + aux):
        low = 0.5 if name.endswith(("_var", "_gamma")) else -1.0
        out[name] = rng.uniform(low, 1.5, shape)
    return out


def ops(heads):
    return [n.op for n in topo_order(heads) if not n.is_variable]


@pytest.mark.parametrize("build, data", [
    (lambda: conv_bn(), DATA["conv"]),
    (lambda: conv_bn(no_bias=True), DATA["conv"]),
    (lambda: conv_bn(fix_gamma=True, eps=1e-5), DATA["conv"]),
    (lambda: fc_bn(), DATA["fc"]),
    (lambda: fc_bn(axis=-1), DATA["fc"]),
    (lambda: fc_bn(flatten=False, axis=-1), DATA["fc"]),
    (lambda: S.Activation(conv_bn(use_global_stats=True), act_type="relu"), DATA["conv"]),
])
def test_fold_removes_batchnorm_and_keeps_outputs(build, data):
    sym = build()
    folded = optimize_for_inference(sym.outputs)
    assert "BatchNorm" not in ops(folded)
    assert Symbol(tuple(folded)).list_outputs() == sym.list_outputs()
    feed = values(sym, data)
    want = evaluate(sym.outputs, feed, is_train=False)[0]
    got = evaluate(folded, feed, is_train=False)[0]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("build", [
    lambda: S.Group([conv_bn(), S.Variable("x") + 0]),  # control: folds
    lambda: S.Group([conv_bn(), S.Pooling(S.Variable("y"), kernel=(1, 1))]),  # control
], ids=["with-other-head", "with-other-branch"])
def test_fold_fires_next_to_unrelated_nodes(build):
    assert "BatchNorm" not in ops(fold_batchnorm(build().outputs))


def _layer_also_used():
    conv = S.Convolution(S.Variable("data"), name="conv", kernel=(1, 1), num_filter=2)
    return S.Group([S.BatchNorm(conv, name="bn"), conv])


@pytest.mark.parametrize("build", [
    _layer_also_used,
    lambda: conv_bn(output_mean_var=True),
    lambda: fc_bn(flatten=False, axis=1),
    lambda: S.BatchNorm(S.Variable("data"), name="bn"),
    lambda: S.BatchNorm(S.Pooling(S.Variable("data"), kernel=(2, 2)), name="bn"),
], ids=["layer-output-used-twice", "mean-var-visible", "fc-wrong-axis", "on-variable",
        "after-pooling"])
def test_fold_leaves_what_it_cannot_prove(build):
    sym = build()
    assert ops(fold_batchnorm(sym.outputs)) == ops(sym.outputs)


@pytest.mark.jit
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_inference_executor_runs_the_folded_graph(dtype):
    from codegen.kernels.batchnorm_kernels import moving_stats_kernel

    sym = S.Activation(conv_bn(), act_type="relu", name="relu")
    feed = values(sym, DATA["conv"], seed=1)
    exe = sym.simple_bind(sg.cpu(), grad_req="null", data=DATA["conv"],
                          type_dict={"data": dtype})
    slots = {**exe.arg_dict, **exe.aux_dict}
    for name, value in feed.items():
        slots[name][:] = value
    feed = {n: slots[n].astype(np.float64) for n in feed}
    tol = 1e-5 if dtype == "float32" else 1e-12
    got = exe.forward(is_train=False)[0]
    want = evaluate(sym.outputs, feed, is_train=False)[0]
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    bn = next(n for n in topo_order(sym.outputs) if n.op == "BatchNorm")
    unfolded = moving_stats_kernel(bn.params, 5, dtype).name
    phases = exe.compiled.program.program.phases
    assert unfolded not in {c.kernel.name for c in phases["predict"]}
    # the training forward of the same executor still normalizes with batch statistics
    got = exe.forward(is_train=True)[0]
    want = evaluate(sym.outputs, feed, is_train=True)[0]
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.jit
def test_training_executor_keeps_batchnorm_in_predict():
    """With gradients, backward after an inference forward needs the BatchNorm values."""
    sym = conv_bn()
    feed = values(sym, DATA["conv"], seed=2)
    exe = sym.simple_bind(sg.cpu(), data=DATA["conv"], type_dict={"data": "float64"})
    slots = {**exe.arg_dict, **exe.aux_dict}
    for name, value in feed.items():
        slots[name][:] = value
    dy = np.random.default_rng(3).standard_normal(exe.outputs[0].shape)
    exe.forward(is_train=False)
    exe.backward(out_grads=[dy])
    grads = evaluate(S.grad(sym, ["data", "bn_gamma"]).outputs,
                     {**feed, "bn_output_head_grad": dy}, is_train=False)
    np.testing.assert_allclose(exe.grad_dict["data"], grads[0], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(exe.grad_dict["bn_gamma"], grads[1], rtol=1e-10, atol=1e-10)
