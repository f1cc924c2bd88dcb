"""Graph passes: each rule fires where it should, and no pass changes any output value."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from sg_helpers import S, graph_values, letter_mlp, node_count, random_graphs, run

from symgraph.compose import create
from symgraph.graph import topo_order
from symgraph.passes.cse import eliminate_common_subexpressions
from symgraph.passes.dce import eliminate_dead_nodes
from symgraph.passes.decompose import decompose_composites
from symgraph.passes.fold import fold_constants
from symgraph.passes.pipeline import PASSES, optimize, optimize_symbol
from symgraph.passes.simplify import simplify_algebra
from symgraph.symbol import Symbol

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def apply(pass_fn, symbol) -> Symbol:
    return Symbol(pass_fn(symbol.outputs))


def ops(symbol) -> list[str]:
    return [n.op for n in topo_order(symbol.outputs) if not n.is_variable]


def assert_same_values(before, after, seed=0):
    values = graph_values(before, seed)
    for want, got in zip(run(before, values), run(after, values)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_pipeline_order_is_explicit():
    assert PASSES == (decompose_composites, eliminate_dead_nodes,
                      eliminate_common_subexpressions, simplify_algebra, fold_constants)


@pytest.mark.parametrize("pass_fn", PASSES + (optimize,))
@SETTINGS
@given(graph=random_graphs())
def test_pass_preserves_outputs(pass_fn, graph):
    after = apply(pass_fn, graph)
    assert len(after.outputs) == len(graph.outputs)
    assert_same_values(graph, after)
    assert node_count(after) <= node_count(graph) + 2 * len(graph.outputs)


@SETTINGS
@given(graph=random_graphs())
def test_optimize_symbol_keeps_output_names_and_is_idempotent(graph):
    once = optimize_symbol(graph)
    assert once.list_outputs() == graph.list_outputs()
    assert optimize_symbol(once).tojson() == once.tojson()


# ---- CSE -------------------------------------------------------------------------------
def test_cse_merges_equal_ops_but_not_variables():
    x = S.Variable("x")
    y = S.Variable("y")
    expr = S.exp(x) + S.exp(x) * (y + 0.5) + (y + 0.5)
    after = apply(eliminate_common_subexpressions, expr)
    assert ops(expr).count("exp") == 2 and ops(after).count("exp") == 1
    assert ops(after).count("_plus_scalar") == 1
    assert after.list_arguments() == ["x", "y"]
    assert_values_equal(expr, after, x=(2, 3), y=(2, 3))


def test_cse_compares_parsed_params_and_ignores_hidden_attrs():
    x = S.Variable("x")
    one = create("_mul_scalar", (x,), {"scalar": "2"}, name="m1", attr={"__ctx_group__": "a"})
    two = create("_mul_scalar", (x,), {"scalar": "2.0"}, name="m2")
    other = create("_mul_scalar", (x,), {"scalar": "3"}, name="m3")
    after = apply(eliminate_common_subexpressions, S.Group([one + two, other]))
    assert [n.name for n in topo_order(after.outputs) if n.op == "_mul_scalar"] == ["m1", "m3"]


def test_cse_never_merges_random_ops():
    x = S.Variable("x")
    rrelu = [S.LeakyReLU(x, act_type="rrelu", name=f"r{i}") for i in range(2)]
    after = apply(eliminate_common_subexpressions, rrelu[0] + rrelu[1])
    assert ops(after).count("LeakyReLU") == 2


def test_cse_merges_fully_connected_layers_on_same_inputs():
    data, w = S.Variable("data"), S.Variable("w")
    fc_a = S.FullyConnected(data, w, no_bias=True, num_hidden=4, name="a")
    fc_b = S.FullyConnected(data, w, no_bias=True, num_hidden=4, name="b")
    fc_c = S.FullyConnected(data, w, no_bias=True, num_hidden=4, flatten=False, name="c")
    after = apply(eliminate_common_subexpressions, S.Group([fc_a + fc_b, fc_c]))
    assert ops(after).count("FullyConnected") == 2


# ---- simplify --------------------------------------------------------------------------
@pytest.mark.parametrize("build", [
    lambda x, y: x * 1, lambda x, y: 1 * x, lambda x, y: x + 0, lambda x, y: x - 0,
    lambda x, y: x / 1, lambda x, y: x ** 1, lambda x, y: (-x) * -1,
    lambda x, y: S.negative(S.negative(x)), lambda x, y: S.add_n(x),
    lambda x, y: x * S.ones_like(y), lambda x, y: S.ones_like(y) * x,
    lambda x, y: x + S.zeros_like(y), lambda x, y: S.zeros_like(y) + x,
    lambda x, y: x - S.zeros_like(y), lambda x, y: x / S.ones_like(y),
    lambda x, y: create("_copy", (x,), {}),
])
def test_simplify_identity_rules(build):
    x, y = S.Variable("x"), S.Variable("y")
    after = apply(simplify_algebra, build(x, y))
    assert after.outputs[0].node is x.outputs[0].node


def test_simplify_keeps_non_identities():
    x, y = S.Variable("x"), S.Variable("y")
    for expr in (x * 2, x + 1, x ** 2, 0 - x, x * S.zeros_like(y), x - x, -x,
                 S.broadcast_mul(x, S.ones_like(y)), S.zeros_like(y) - x):
        after = apply(simplify_algebra, expr)
        assert after.outputs[0].node is expr.outputs[0].node


def test_simplify_collapses_blockgrad_chain_and_long_negation_chain():
    x = S.Variable("x")
    after = apply(simplify_algebra, S.BlockGrad(S.BlockGrad(S.BlockGrad(x))))
    assert ops(after) == ["BlockGrad"]
    four = (-x) * -1 * -1 * -1
    assert ops(apply(simplify_algebra, four)) == []
    assert ops(apply(simplify_algebra, -four)) == ["_mul_scalar"]


# ---- fold ------------------------------------------------------------------------------
def test_fold_turns_constant_chains_into_canonical_constants():
    x = S.Variable("x")
    expr = (S.ones_like(x) * 3 + 1) * 0.5
    after = apply(fold_constants, expr)
    assert ops(after) == ["zeros_like", "_plus_scalar"]
    assert after.outputs[0].node.params.scalar == 2.0
    assert_values_equal(expr, after, x=(2, 5))


def test_fold_results_zero_and_one_become_fill_ops():
    x = S.Variable("x")
    assert ops(apply(fold_constants, S.ones_like(x) - 1)) == ["zeros_like"]
    assert ops(apply(fold_constants, S.exp(S.zeros_like(x)))) == ["ones_like"]
    assert ops(apply(fold_constants, S.ones_like(x) == 1)) == ["ones_like"]


def test_fold_leaves_variable_dependent_and_non_finite_values():
    x = S.Variable("x")
    for expr in (S.exp(x) * 2, S.log(S.zeros_like(x)), 1 / S.zeros_like(x)):
        assert apply(fold_constants, expr).outputs[0].node is expr.outputs[0].node


def test_fold_then_simplify_removes_multiplication_by_computed_one():
    x, y = S.Variable("x"), S.Variable("y")
    expr = x * S.exp(S.zeros_like(y))
    after = optimize_symbol(expr)
    assert ops(after) == ["_copy"]
    assert after.list_outputs() == expr.list_outputs()


# ---- DCE -------------------------------------------------------------------------------
def test_dce_moves_shape_only_uses_off_dead_work():
    x, w = S.Variable("x"), S.Variable("w")
    expensive = S.tanh(S.exp(x) * w)
    expr = S.zeros_like(expensive) + x
    after = apply(eliminate_dead_nodes, expr)
    assert "tanh" not in ops(after) and "exp" not in ops(after)
    assert after.list_arguments() == ["x"]
    assert_values_equal(expr, after, x=(3, 2), w=(3, 2))


def test_dce_stops_at_shape_changing_ops():
    data = S.Variable("data")
    fc = S.FullyConnected(data, num_hidden=3, name="fc")
    expr = S.ones_like(S.relu(fc))
    after = apply(eliminate_dead_nodes, expr)
    assert ops(after) == ["FullyConnected", "ones_like"]


def test_dce_drops_head_gradient_variable_used_only_for_shape():
    x = S.Variable("x")
    head = S.BlockGrad(S.tanh(x))
    g = S.grad(S.Group([head, S.MakeLoss(S.sum(x * x))]), ["x"])
    optimized = optimize_symbol(g)
    assert all(not n.endswith("_head_grad") for n in optimized.list_arguments())
    values = {"x": np.array([[0.5, -1.0]])}
    values.update({n: np.ones((1, 2)) for n in g.list_arguments() if n != "x"})
    np.testing.assert_allclose(run(optimized, values)[0], 2 * values["x"])


def test_optimize_mlp_gradient_keeps_values(mlp):
    g = S.grad(mlp)
    values = graph_inputs(mlp)
    optimized = optimize_symbol(g)
    assert optimized.list_outputs() == g.list_outputs()
    for want, got in zip(run(g, values), run(optimized, values)):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def graph_inputs(symbol):
    from sg_helpers import random_inputs

    values = random_inputs(symbol, {"data": (5, 16)})
    values["softmax_label"] = np.arange(5) % 26
    return values


def assert_values_equal(before, after, **shapes):
    rng = np.random.default_rng(1)
    values = {name: rng.uniform(-1, 1, size=shape) for name, shape in shapes.items()}
    for want, got in zip(run(before, values), run(after, values)):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_letter_mlp_is_already_optimal():
    net = letter_mlp()
    assert optimize_symbol(net).tojson() == net.tojson()
