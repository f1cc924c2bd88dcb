"""BatchNorm beyond the op table: symbol API and JSON, clear errors, the compiled kernels'
fusion and memory plan, and the ordering of the in-place aux update."""

from __future__ import annotations

import json

import numpy as np
import pytest

import symgraph as sg
from codegen.compiler import compile_graph
from runtime.executor import Executor
from symgraph.reference import evaluate

S = sg.sym
pytestmark = pytest.mark.jit


def test_names_outputs_and_input_attrs():
    with sg.name.NameManager():
        bn = S.BatchNorm(S.Variable("data"))
    assert bn.name == "batchnorm0"
    assert bn.list_outputs() == ["batchnorm0_output"]
    full = S.BatchNorm(S.Variable("data"), name="bn", output_mean_var=True)
    assert full.list_outputs() == ["bn_output", "bn_mean", "bn_var"]
    attrs = full.attr_dict()
    assert json.loads(attrs["bn_moving_mean"]["__init__"]) == ["zero", {}]
    assert json.loads(attrs["bn_moving_var"]["__init__"]) == ["one", {}]
    assert "__init__" not in attrs.get("bn_gamma", {})


def test_json_marks_aux_inputs_and_counts_hidden_outputs():
    net = S.Activation(S.BatchNorm(S.Variable("data"), name="bn", eps=1e-5), act_type="relu")
    doc = json.loads(net.tojson())
    bn = next(n for n in doc["nodes"] if n["op"] == "BatchNorm")
    assert [entry[2] for entry in bn["inputs"]] == [0, 0, 0, 1, 1]
    assert bn["attrs"]["eps"] == "1e-05"
    assert doc["node_row_ptr"][-1] - doc["node_row_ptr"][-2] == 1  # relu
    index = doc["nodes"].index(bn)
    assert doc["node_row_ptr"][index + 1] - doc["node_row_ptr"][index] == 3
    again = sg.sym.load_json(net.tojson())
    assert again.list_auxiliary_states() == ["bn_moving_mean", "bn_moving_var"]
    assert again.list_arguments() == ["data", "bn_gamma", "bn_beta"]


def test_bad_shapes_name_the_node():
    bn = S.BatchNorm(S.Variable("data"), name="bn", axis=3)
    with pytest.raises(sg.ShapeError, match="bn.*axis=3"):
        bn.infer_shape(data=(2, 3, 4))
    bn = S.BatchNorm(S.Variable("data"), S.Variable("g"), name="bn2")
    with pytest.raises(sg.ShapeError, match="bn2.*gamma"):
        bn.infer_shape(data=(2, 3, 4), g=(4,))


def conv_bn_relu():
    net = S.Convolution(S.Variable("data"), name="conv", kernel=(3, 3), num_filter=4)
    net = S.BatchNorm(net, name="bn", fix_gamma=False)
    return S.Activation(net, name="relu", act_type="relu")


def fill(exe, seed=0):
    rng = np.random.default_rng(seed)
    values = {}
    for name, array in {**exe.arg_dict, **exe.aux_dict}.items():
        low = 0.5 if name.endswith(("_var", "_gamma")) else -1.0
        array[:] = rng.uniform(low, 1.5, array.shape)
        values[name] = array.astype(np.float64).copy()
    return values


def test_poisoned_plan_training_and_aux_update():
    """NaN-fill every dead buffer: the stats, scale/shift and gradient scratch buffers and
    the deferred aux update must all read live values."""
    net = conv_bn_relu()
    wrt = ["data", "conv_weight", "conv_bias", "bn_gamma", "bn_beta"]
    reqs = {n: "write" for n in wrt}
    compiled = compile_graph(net, {"data": (3, 2, 7, 6)}, {"data": "float64"}, reqs,
                             poison=True)
    exe = Executor(net, compiled, reqs)
    values = fill(exe)
    dy = np.random.default_rng(1).standard_normal(exe.outputs[0].shape)
    exe.forward_backward(out_grads=[dy])
    refs, _, updates = evaluate(net.outputs, values, is_train=True, keep_all=True)
    np.testing.assert_allclose(exe.outputs[0], refs[0], rtol=1e-10, atol=1e-12)
    grads = evaluate(S.grad(net, wrt).outputs, {**values, "relu_output_head_grad": dy},
                     is_train=True)
    for name, ref in zip(wrt, grads):
        np.testing.assert_allclose(exe.grad_dict[name], ref, rtol=1e-9, atol=1e-11,
                                   err_msg=name)
    for name, ref in updates.items():
        np.testing.assert_allclose(exe.aux_dict[name], ref, rtol=1e-12, err_msg=name)


def test_normalize_fuses_with_the_following_activation():
    exe = conv_bn_relu().simple_bind(sg.cpu(), data=(2, 3, 6, 5))
    names = [call.nodes for call in exe.compiled.trace if call.stage == "forward"]
    assert ("bn", "relu") in names


def test_aux_update_runs_after_every_reader():
    """A forward reader of the moving mean sees the value the phase started with, even
    when it comes after the BatchNorm in topological order."""
    data, mean = S.Variable("data"), S.Variable("bn_moving_mean")
    bn = S.BatchNorm(data, moving_mean=mean, name="bn")
    later = S.broadcast_add(S.sum(bn, axis=(0, 2)), mean, name="later")
    net = S.Group([bn, later])
    exe = net.simple_bind(sg.cpu(), data=(4, 3, 5), type_dict={"data": "float64"})
    values = fill(exe)
    outs = exe.forward(is_train=True)
    refs, _, updates = evaluate(net.outputs, values, is_train=True, keep_all=True)
    np.testing.assert_allclose(outs[1], refs[1], rtol=1e-12)  # the old moving mean
    np.testing.assert_allclose(exe.aux_dict["bn_moving_mean"], updates["bn_moving_mean"],
                               rtol=1e-12)


def test_backward_after_inference_forward_is_the_inference_gradient():
    net = S.BatchNorm(S.Variable("data"), name="bn", fix_gamma=False)
    exe = net.simple_bind(sg.cpu(), data=(5, 3, 4), type_dict={"data": "float64"})
    values = fill(exe)
    dy = np.random.default_rng(2).standard_normal((5, 3, 4))
    exe.forward(is_train=False)
    exe.backward(out_grads=[dy])
    invstd = 1 / np.sqrt(values["bn_moving_var"] + 1e-3)
    want = dy * (values["bn_gamma"] * invstd)[None, :, None]
    np.testing.assert_allclose(exe.grad_dict["data"], want, rtol=1e-12)
    assert (exe.aux_dict["bn_moving_mean"] == values["bn_moving_mean"]).all()
