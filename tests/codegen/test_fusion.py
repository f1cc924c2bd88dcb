"""Fusion (elementwise chains, matmul epilogues) and in-place buffers vs the reference."""

from __future__ import annotations

import numpy as np
import pytest
from graph_strategies import grow_elementwise
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgraph as sg
from codegen import fusion
from codegen import loop_ir as L
from codegen.compiler import compile_graph
from codegen.emit.scalar_ir import IRMath
from codegen.fusion_spec import ElementwiseSpec, used_inputs
from codegen.kernels import builders
from codegen.lower import BufferTable, LogicalCall
from codegen.memplan import plan_memory
from runtime.executor import Executor
from symgraph import reference
from symgraph.ops.registry import get_op

pytestmark = pytest.mark.jit

TOL = {"float32": 2e-5, "float64": 1e-11}


def mlp(sizes, act_type="relu", op="Activation"):
    x = sg.sym.Variable("data")
    for i, hidden in enumerate(sizes[:-1]):
        x = sg.sym.FullyConnected(x, name=f"fc{i + 1}", num_hidden=hidden)
        x = getattr(sg.sym, op)(x, name=f"act{i + 1}", act_type=act_type)
    x = sg.sym.FullyConnected(x, name=f"fc{len(sizes)}", num_hidden=sizes[-1])
    return sg.sym.SoftmaxOutput(x, name="softmax")


def compile_and_check(net, shapes, dtype, wrt=None, poison=False, classes=None):
    """Compile, run forward+backward on random data, compare every output and gradient
    with the reference interpreter; returns the compiled graph for structural checks."""
    names = net.list_arguments()
    wrt = [n for n in names if n not in ("data", "softmax_label")] if wrt is None else wrt
    reqs = {n: ("write" if n in wrt else "null") for n in names}
    compiled = compile_graph(net, shapes, {n: dtype for n in shapes}, reqs, poison=poison)
    exe = Executor(net, compiled, reqs)
    rng = np.random.default_rng(1)
    values = {}
    for name, array in exe.arg_dict.items():
        if name == "softmax_label":
            array[:] = rng.integers(0, classes, array.shape)
        else:
            array[:] = rng.standard_normal(array.shape) * 0.7
        values[name] = array.copy()
    tol = TOL[dtype]
    refs = reference.evaluate(net.outputs, values)
    heads = [rng.standard_normal(ref.shape).astype(dtype) for ref in refs]
    needs_heads = any(s is not None for s in compiled.head_grads)
    outs = [o.copy() for o in exe.forward_backward(out_grads=heads if needs_heads else None)]
    for out, ref in zip(outs, refs):
        np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)
    feed = dict(values)
    feed.update({f"{label}_head_grad": h for label, h in zip(net.list_outputs(), heads)})
    for name, ref in zip(wrt, reference.evaluate(sg.sym.grad(net, wrt).outputs, feed)):
        np.testing.assert_allclose(exe.grad_dict[name], ref, rtol=tol * 10, atol=tol * 10)
    predicted = exe.forward(is_train=False)
    for out, again in zip(outs, predicted):
        np.testing.assert_allclose(again, out, rtol=tol, atol=tol)
    return compiled


def phase_names(compiled, phase):
    return [call.node_names for call in compiled.program.program.phases[phase]]


# ---- elementwise chains -----------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_chain_is_one_kernel_in_every_phase(dtype):
    x = sg.sym.Variable("x")
    net = sg.sym.exp(x, name="e") * 2.0 + 1.0
    compiled = compile_and_check(net, {"x": (6, 7)}, dtype, wrt=["x"])
    for phase in ("predict", "forward"):
        calls = phase_names(compiled, phase)
        assert len(calls) == 1
        assert calls[0][0] == "e" and len(calls[0]) == 3


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_chain_gradient_fuses_and_matches(dtype):
    """The backward of exp(x)*2+1 is two _elemwise_grad nodes and one more product: one
    kernel, reading the stored exp(x) (a forward value, so it stays a buffer)."""
    x = sg.sym.Variable("x")
    net = sg.sym.tanh(sg.sym.exp(x, name="e") * 2.0 + 1.0, name="t")
    compiled = compile_and_check(net, {"x": (5, 3)}, dtype, wrt=["x"])
    assert len(phase_names(compiled, "backward")) == 1


def test_value_used_in_two_shapes_is_not_fused_across():
    x = sg.sym.Variable("x")
    e = sg.sym.exp(x, name="e")
    flat = sg.sym.sigmoid(sg.sym.reshape(e, shape=(-1,)), name="flat")
    square = sg.sym.square(e, name="sq")
    net = sg.sym.Group([flat, square])
    compiled = compile_and_check(net, {"x": (4, 5)}, "float64", wrt=["x"])
    calls = phase_names(compiled, "predict")
    by_node = {name: call for call in calls for name in call}
    assert by_node["flat"] != by_node["e"]  # (20,) iterates differently from (4, 5)
    assert len(calls) == 3


def test_values_used_many_times_split_the_chain_instead_of_blowing_up():
    """Each step reads y three times; inlined trees would grow 3^n, so the pass stores a
    value once its expression gets large."""
    y = sg.sym.Variable("x")
    for i in range(12):
        y = sg.sym.tanh(y * y + y * 0.5 - y, name=f"t{i}")
    compiled = compile_and_check(y, {"x": (3, 4)}, "float64", wrt=["x"])
    assert 1 < len(phase_names(compiled, "predict")) < 12


def test_broadcast_consumer_does_not_fuse():
    x, b = sg.sym.Variable("x"), sg.sym.Variable("b")
    small = sg.sym.exp(b, name="small")
    net = sg.sym.broadcast_add(x, small, name="add")
    compiled = compile_and_check(net, {"x": (4, 5), "b": (1, 5)}, "float64", wrt=["x", "b"])
    assert phase_names(compiled, "predict") == [("small",), ("add",)]


def test_graph_outputs_are_stored_even_when_fused():
    x = sg.sym.Variable("x")
    e = sg.sym.exp(x, name="e")
    net = sg.sym.Group([e, sg.sym.sqrt(e + 1.0, name="s")])
    compiled = compile_and_check(net, {"x": (3, 4)}, "float32", wrt=["x"])
    (call,) = compiled.program.program.phases["predict"]
    offsets = {slot.offset for slot in compiled.outputs}
    assert offsets <= set(call.args)  # one kernel writes both outputs


# ---- matmul epilogues -------------------------------------------------------------------
def test_letter_mlp_has_no_separate_activation_kernels():
    compiled = compile_and_check(mlp((64, 26)), {"data": (32, 16), "softmax_label": (32,)},
                                 "float32", classes=26)
    forward = phase_names(compiled, "forward")
    backward = phase_names(compiled, "backward")
    assert ("fc1", "act1") in forward
    assert ("fc2", "softmax") in forward  # the logits never reach memory
    assert ("fc2_backward_dot", "act1_backward_elemwise_grad") in backward
    assert not any(names in (("act1",), ("act1_backward_elemwise_grad",))
                   for names in forward + backward)
    assert len(forward) + len(backward) == 8


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op,act", [("Activation", "relu"), ("Activation", "sigmoid"),
                                    ("Activation", "tanh"), ("Activation", "softrelu"),
                                    ("LeakyReLU", "leaky"), ("LeakyReLU", "elu"),
                                    ("LeakyReLU", "gelu")])
def test_mlp_with_fused_epilogues_matches_reference(dtype, op, act):
    net = mlp((11, 9, 5), act, op)
    compiled = compile_and_check(net, {"data": (6, 8), "softmax_label": (6,)}, dtype,
                                 classes=5)
    backward = phase_names(compiled, "backward")
    assert ("fc2_backward_dot", "act1_backward_elemwise_grad") in backward


@pytest.mark.parametrize("act,slope,fused", [("leaky", 0.25, True), ("elu", 1.0, True),
                                             ("selu", 0.25, True), ("leaky", 0.0, True),
                                             ("leaky", -0.5, False), ("elu", -1.0, False),
                                             ("gelu", 0.25, False)])
def test_leaky_activations_fuse_in_training_when_the_output_decides_the_slope(act, slope,
                                                                              fused):
    data = sg.sym.Variable("data")
    fc = sg.sym.FullyConnected(data, num_hidden=9, name="fc1")
    net = sg.sym.LeakyReLU(fc, act_type=act, slope=slope, name="act1")
    net = sg.sym.SoftmaxOutput(sg.sym.FullyConnected(net, num_hidden=5, name="fc2"),
                               name="softmax")
    compiled = compile_and_check(net, {"data": (6, 8), "softmax_label": (6,)}, "float64",
                                 classes=5)
    assert (("fc1", "act1") in phase_names(compiled, "forward")) == fused


def test_epilogue_chain_of_several_ops():
    data = sg.sym.Variable("data")
    fc = sg.sym.FullyConnected(data, num_hidden=7, name="fc")
    net = sg.sym.tanh(sg.sym.relu(fc, name="r") * 3.0, name="t")
    compiled = compile_and_check(net, {"data": (5, 4)}, "float64")
    assert phase_names(compiled, "forward")[0][0] == "fc"
    # an inference-only bind stores nothing for backward: the whole chain is one kernel
    inference = compile_and_check(net, {"data": (5, 4)}, "float64", wrt=[])
    (names,) = phase_names(inference, "predict")
    assert names[:2] == ("fc", "r") and names[-1] == "t" and len(names) == 4


@pytest.mark.parametrize("sizes", [(6, 4), (9, 8, 5)])
@pytest.mark.parametrize("act", ["relu", "sigmoid"])
def test_poisoned_plan_with_fusion_gives_reference_results(sizes, act):
    compile_and_check(mlp(sizes, act), {"data": (4, 7), "softmax_label": (4,)}, "float64",
                      poison=True, classes=sizes[-1])


# ---- input pruning ----------------------------------------------------------------------
def test_relu_gradient_formula_reads_only_dy_and_y():
    op = get_op("_elemwise_grad")
    p = op.parse({"fwd_op": "Activation", "wrt": "0", "num_args": "3", "act_type": "relu"},
                 "g")
    ir_math = IRMath("float32")
    assert used_inputs(lambda *xs: op.formula(ir_math, p, *xs), ["float32"] * 3) == (0, 2)


# ---- in place -----------------------------------------------------------------------------
def _reduce_then_exp():
    x = sg.sym.Variable("x")
    rows = sg.sym.sum(x, axis=1, name="rows")
    e = sg.sym.exp(rows * 0.1, name="e")
    return sg.sym.sum(e * e, name="total")


@pytest.mark.parametrize("poison", [False, True])
def test_elementwise_overwrites_dying_input_in_place(poison):
    compiled = compile_and_check(_reduce_then_exp(), {"x": (6, 5)}, "float64", wrt=["x"],
                                 poison=poison)
    assert compiled.plan.in_place
    for out_root, in_root in compiled.plan.in_place.items():
        assert compiled.plan.offsets[out_root] == compiled.plan.offsets[in_root]


def _spec_call(table, ins, outs, formula, shape=(8,)):
    params = [L.BufferParam(f"in{i}", "float32", 8) for i in range(len(ins))]
    kernel = L.make_kernel(params, L.Block(()))
    spec = ElementwiseSpec(tuple(ins), tuple(shape for _ in ins), tuple(outs), shape,
                           ("float32",) * len(outs), formula)
    return LogicalCall(kernel, tuple(ins) + tuple(outs), "n", spec)


def test_in_place_takes_only_the_last_output_of_a_multi_output_kernel():
    table = BufferTable()
    a, b, c, d = (table.new(8, "float32") for _ in range(4))
    calls = [_spec_call(table, [], [a], lambda: 1.0),
             _spec_call(table, [a], [b, c], lambda x: (x, x)),
             _spec_call(table, [b, c], [d], lambda x, y: x + y)]
    plan = plan_memory(calls, table, [d])
    assert plan.in_place == {c: a}
    assert plan.offsets[c] == plan.offsets[a] != plan.offsets[b]


def test_in_place_skips_broadcast_inputs_and_shrinks_the_arena():
    table = BufferTable()
    small, big, out, fin = (table.new(size, "float32") for size in (1, 8, 8, 8))
    broadcast = _spec_call(table, [small], [out], lambda x: x)
    broadcast = LogicalCall(broadcast.kernel, broadcast.keys, "n", ElementwiseSpec(
        (small,), ((1,),), (out,), (8,), ("float32",), lambda x: x))
    calls = [_spec_call(table, [], [small], lambda: 1.0),
             _spec_call(table, [], [big], lambda: 1.0), broadcast,
             _spec_call(table, [big, out], [fin], lambda x, y: x + y)]
    plan = plan_memory(calls, table, [])
    assert plan.in_place == {fin: big}
    assert plan.arena_bytes < plan.total_tensor_bytes


# ---- random graphs ------------------------------------------------------------------------
BINARY = ["elemwise_add", "elemwise_mul", "_maximum", "broadcast_add"]


@st.composite
def random_graph(draw):
    """Chains and diamonds of elementwise ops, some broadcasting, around a matmul."""
    rows, cols = draw(st.integers(2, 5)), draw(st.integers(2, 6))
    a, b, w = sg.sym.Variable("a"), sg.sym.Variable("b"), sg.sym.Variable("w")
    nodes = [a, b, sg.sym.dot(a, w)]
    grow_elementwise(draw, nodes, BINARY, 8)
    heads = [nodes[-1], sg.sym.sum(nodes[-2], axis=1)]
    return sg.sym.Group(heads), (rows, cols)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graph(), st.booleans())
def test_random_fused_graphs_match_reference_under_poison(case, poison):
    group, shape = case
    names = group.list_arguments()
    shapes = {"a": shape, "b": shape, "w": (shape[1], shape[1])}
    shapes = {n: s for n, s in shapes.items() if n in names}
    compile_and_check(group, shapes, "float64", wrt=names, poison=poison)


# ---- ordering rules of the pass on hand-made calls ------------------------------------------
def _unary_call(table, src, dst, formula, name):
    ins = [(L.BufferParam("in0", "float32", 8), (8,))]
    kernel = builders.elementwise_kernel((8,), ins, formula,
                                         [L.BufferParam("out0", "float32", 8)])
    spec = ElementwiseSpec((src,), ((8,),), (dst,), (8,), ("float32",), formula)
    return LogicalCall(kernel, (src, dst), name, spec)


def _writer_call(table, key):
    out = L.BufferParam("out0", "float32", 8)
    kernel = builders.elementwise_kernel((8,), [], lambda: L.Const(0.0, "float32"), [out])
    return LogicalCall(kernel, (key,), "writer")


def _chain_calls(table, with_writer):
    x, v, w = (table.new(8, "float32") for _ in range(3))
    calls = [_unary_call(table, x, v, lambda a: a * 2.0, "double")]
    if with_writer:
        calls.append(_writer_call(table, x))
    calls.append(_unary_call(table, v, w, lambda a: a + 1.0, "inc"))
    return calls, w


@pytest.mark.parametrize("with_writer", [False, True])
def test_group_closes_when_its_input_is_overwritten_before_it_would_run(with_writer):
    table = BufferTable()
    calls, out = _chain_calls(table, with_writer)
    (fused,) = fusion.fuse([calls], table, {out})
    names = [call.node_names for call in fused]
    if with_writer:
        assert names == [("double",), ("writer",), ("inc",)]
    else:
        assert names == [("double", "inc")]
        assert fused[0].node_name == "double+inc"
