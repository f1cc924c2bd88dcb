"""Whole graphs compiled to native executors vs the numpy reference interpreter."""

from __future__ import annotations

import numpy as np
import pytest
from graph_strategies import grow_elementwise
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgraph as sg
from codegen.compiler import compile_graph
from runtime.executor import Executor
from symgraph import reference
from symgraph.errors import ExecutorError

pytestmark = pytest.mark.jit


def mlp(sizes, act="relu"):
    x = sg.sym.Variable("data")
    for i, hidden in enumerate(sizes[:-1]):
        x = sg.sym.FullyConnected(x, name=f"fc{i + 1}", num_hidden=hidden)
        x = sg.sym.Activation(x, name=f"act{i + 1}", act_type=act)
    x = sg.sym.FullyConnected(x, name=f"fc{len(sizes)}", num_hidden=sizes[-1])
    return sg.sym.SoftmaxOutput(x, name="softmax")


def params_of(net):
    return [n for n in net.list_arguments() if n not in ("data", "softmax_label")]


def fill(exe, classes, seed=0):
    rng = np.random.default_rng(seed)
    values = {}
    for name, array in exe.arg_dict.items():
        if name == "softmax_label":
            array[:] = rng.integers(0, classes, array.shape)
        else:
            array[:] = rng.standard_normal(array.shape) * 0.5
        values[name] = array.copy()
    return values


def reference_grads(net, values, wrt):
    return reference.evaluate(sg.sym.grad(net, wrt).outputs, values)


@pytest.mark.parametrize("dtype,tol", [("float32", 2e-5), ("float64", 1e-12)])
@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid", "softrelu"])
def test_mlp_forward_backward_matches_reference(dtype, tol, act):
    net = mlp((13, 7), act)
    wrt = params_of(net)
    exe = net.simple_bind(sg.cpu(), grad_req={n: "write" for n in wrt},
                          type_dict={"data": dtype}, data=(5, 9))
    values = fill(exe, 7)
    out = exe.forward(is_train=True)[0]
    np.testing.assert_allclose(out, reference.evaluate(net.outputs, values)[0], rtol=tol,
                               atol=tol)
    exe.backward()
    for name, ref in zip(wrt, reference_grads(net, values, wrt)):
        np.testing.assert_allclose(exe.grad_dict[name], ref, rtol=tol * 10, atol=tol * 10)
        assert exe.grad_dict[name].dtype == np.dtype(dtype)


def test_grad_req_add_accumulates_and_null_has_no_buffer():
    net = mlp((6, 4))
    exe = net.simple_bind(sg.cpu(), grad_req={"fc1_weight": "add", "fc2_weight": "write"},
                          data=(3, 5))
    values = fill(exe, 4)
    exe.forward(is_train=True)
    exe.backward()
    first = exe.grad_dict["fc1_weight"].copy()
    exe.forward(is_train=True)
    exe.backward()
    np.testing.assert_allclose(exe.grad_dict["fc1_weight"], 2 * first, rtol=1e-6)
    ref = reference_grads(net, values, ["fc1_weight"])[0]
    np.testing.assert_allclose(first, ref, rtol=1e-4, atol=1e-6)
    assert "fc1_bias" not in exe.grad_dict


def test_arg_dict_is_the_executor_memory():
    net = mlp((6, 4))
    exe = net.simple_bind(sg.cpu(), grad_req="null", data=(3, 5))
    values = fill(exe, 4)
    exe.arg_dict["data"][:] = 0.25
    values["data"] = exe.arg_dict["data"].copy()
    out = exe.forward()[0]
    np.testing.assert_allclose(out, reference.evaluate(net.outputs, values)[0], rtol=1e-5)


def test_forward_keyword_inputs_are_validated_before_running():
    net = mlp((6, 4))
    exe = net.simple_bind(sg.cpu(), data=(3, 5))
    with pytest.raises(ExecutorError, match=r"'data' has shape \(3, 4\).*\(3, 5\)"):
        exe.forward(data=np.zeros((3, 4)))
    with pytest.raises(ExecutorError, match="unknown input 'bogus'"):
        exe.forward(bogus=np.zeros(3))


def test_head_gradient_required_for_non_loss_heads():
    x = sg.sym.Variable("x")
    y = sg.sym.tanh(sg.sym.FullyConnected(x, num_hidden=3, name="fc"))
    exe = y.simple_bind(sg.cpu(), grad_req="write", type_dict={"x": "float64"}, x=(4, 5))
    values = fill(exe, 3)
    exe.forward(is_train=True)
    with pytest.raises(ExecutorError, match="head gradient is required"):
        exe.backward()
    head = np.random.default_rng(1).standard_normal((4, 3))
    exe.backward(out_grads=head)
    values[f"{y.list_outputs()[0]}_head_grad"] = head
    refs = reference.evaluate(sg.sym.grad(y, ["x", "fc_weight"]).outputs, values)
    np.testing.assert_allclose(exe.grad_dict["x"], refs[0], rtol=1e-10)
    np.testing.assert_allclose(exe.grad_dict["fc_weight"], refs[1], rtol=1e-10)


def test_bind_with_arrays_and_reshape_keep_parameters():
    net = mlp((6, 4))
    rng = np.random.default_rng(3)
    shapes = dict(zip(net.list_arguments(), net.infer_shape(data=(3, 5))[0]))
    args = {n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items()}
    args["softmax_label"] = np.array([0, 1, 3], dtype=np.float32)
    exe = net.bind(sg.cpu(), args)
    np.testing.assert_allclose(exe.forward()[0], reference.evaluate(net.outputs, args)[0],
                               rtol=1e-5)
    bigger = exe.reshape(data=(7, 5), softmax_label=(7,))
    assert bigger.arg_dict["data"].shape == (7, 5)
    np.testing.assert_array_equal(bigger.arg_dict["fc1_weight"], args["fc1_weight"])


def test_mnist_mlp_arena_is_smaller_than_its_tensors():
    net = mlp((128, 64, 10))
    reqs = {n: "write" for n in params_of(net)}
    compiled = compile_graph(net, {"data": (100, 784)}, {}, reqs)
    plan = compiled.plan
    assert plan.arena_bytes < plan.persistent_bytes + plan.total_tensor_bytes
    assert plan.arena_bytes - plan.persistent_bytes < plan.total_tensor_bytes


@pytest.mark.parametrize("sizes", [(6, 4), (9, 8, 5)])
def test_poisoned_memory_plan_still_gives_reference_results(sizes):
    """Every buffer is NaN-filled right after its last use: a live buffer that the plan
    let someone else overwrite would surface as NaN or wrong numbers here."""
    net = mlp(sizes)
    wrt = params_of(net)
    reqs = {n: "write" for n in wrt}
    compiled = compile_graph(net, {"data": (4, 7)}, {"data": "float64"}, reqs, poison=True)
    exe = Executor(net, compiled, reqs)
    values = fill(exe, sizes[-1])
    exe.forward_backward()
    for name, ref in zip(wrt, reference_grads(net, values, wrt)):
        np.testing.assert_allclose(exe.grad_dict[name], ref, rtol=1e-10, atol=1e-12)


BINARY = ["elemwise_add", "elemwise_sub", "elemwise_mul", "_maximum"]


@st.composite
def random_graph(draw):
    """A DAG over a few same-shape nodes: unary/binary elementwise, scalars, dot, sum."""
    rows, cols = draw(st.integers(2, 5)), draw(st.integers(2, 6))
    nodes = [sg.sym.Variable("a"), sg.sym.Variable("b")]
    grow_elementwise(draw, nodes, BINARY, 7)
    last = nodes[-1]
    heads = [last, sg.sym.sum(last, axis=1), sg.sym.dot(last, nodes[0], transpose_b=True)]
    return sg.sym.Group(heads), (rows, cols)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graph())
def test_random_graphs_compile_to_reference_results(case):
    group, shape = case
    names = group.list_arguments()
    exe = group.simple_bind(sg.cpu(), grad_req="write",
                            type_dict={n: "float64" for n in names},
                            **{n: shape for n in names})
    values = fill(exe, 2)
    outs = exe.forward(is_train=True)
    refs = reference.evaluate(group.outputs, values)
    for out, ref in zip(outs, refs):
        np.testing.assert_allclose(out, ref, rtol=1e-9, atol=1e-9)
    heads = [np.random.default_rng(5).standard_normal(o.shape) for o in outs]
    exe.backward(out_grads=heads)
    grads = sg.sym.grad(group, names)
    feed = dict(values)
    feed.update({f"{label}_head_grad": h for label, h in zip(group.list_outputs(), heads)})
    for name, ref in zip(names, reference.evaluate(grads.outputs, feed)):
        np.testing.assert_allclose(exe.grad_dict[name], ref, rtol=1e-8, atol=1e-8)


def test_backward_after_inference_forward():
    """predict has its own plan and fusion; backward after it (MXNet allows it) runs the
    backward calls laid out for that plan and gives the inference graph's gradients."""
    net = mlp((6, 4))
    exe = net.simple_bind(sg.cpu(), data=(3, 5))
    with pytest.raises(ExecutorError, match="before forward"):
        exe.backward()
    fill(exe, 2)
    exe.forward(is_train=True)
    exe.backward()
    want = {n: g.copy() for n, g in exe.grad_dict.items()}
    for g in exe.grad_dict.values():
        g[...] = np.nan
    exe.forward(is_train=False)
    exe.backward()
    for name, grad in exe.grad_dict.items():
        np.testing.assert_array_equal(grad, want[name], err_msg=name)


def test_arena_covers_predict_and_training_plans():
    net = mlp((6, 4))
    exe = net.simple_bind(sg.cpu(), data=(3, 5))
    program = exe.compiled.program.program
    pairs = [(p, off) for calls in program.phases.values() for call in calls
             for p, off in zip(call.kernel.params, call.args)]
    reach = max(off + p.size * np.dtype(p.dtype).itemsize
                for p, off in pairs if isinstance(off, int))
    assert exe._arena.nbytes >= reach  # every phase's buffers, predict's plan included
    external = [(p, off) for p, off in pairs if not isinstance(off, int)]
    assert external  # arguments and gradients are table entries, not arena bytes
    for p, off in external:
        assert p.size <= exe._ext_arrays[off.index].size
