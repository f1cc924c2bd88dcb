"""Composition: inputs, substitution, groups, indexing, internals, arithmetic, debug_str."""

import json

import numpy as np
import pytest
from sg_helpers import S, run

import symgraph as sg


def test_positional_and_keyword_inputs_give_same_graph():
    data, w = S.Variable("data"), S.Variable("w")
    pos = S.FullyConnected(data, w, num_hidden=3, name="fc")
    kw = S.FullyConnected(weight=w, data=data, num_hidden=3, name="fc")
    assert pos.tojson() == kw.tojson()
    assert pos.list_arguments() == ["data", "w", "fc_bias"]
    with pytest.raises(sg.GraphError, match="unknown input 'wieght'"):
        S.FullyConnected(data, wieght=w, num_hidden=3, name="fc")


def test_call_substitutes_variables_by_name():
    x = S.Variable("x")
    net = S.Activation(x, act_type="tanh", name="act")
    inner = S.FullyConnected(S.Variable("data"), num_hidden=4, name="fc1")
    composed = net(x=inner)
    assert composed.list_arguments() == ["data", "fc1_weight", "fc1_bias"]
    assert net.list_arguments() == ["x"]
    assert net(inner).tojson() == composed.tojson()
    with pytest.raises(sg.GraphError, match="nope"):
        net(nope=inner)


def test_group_indexing_slicing_iteration(mlp):
    internals = mlp.get_internals()
    assert internals.list_outputs() == [
        "data", "fc1_weight", "fc1_bias", "fc1_output", "relu1_output", "fc2_weight",
        "fc2_bias", "fc2_output", "softmax_label", "softmax_output"]
    fc1 = internals["fc1_output"]
    assert fc1.name == "fc1" and fc1.list_outputs() == ["fc1_output"]
    group = S.Group([fc1, internals["relu1_output"], mlp])
    assert len(group) == 3 and group.name is None
    assert group[1].list_outputs() == ["relu1_output"]
    assert group[-1].name == "softmax"
    assert group[0:2].list_outputs() == ["fc1_output", "relu1_output"]
    assert [s.name for s in group] == ["fc1", "relu1", "softmax"]
    assert repr(group) == "<Symbol group [fc1, relu1, softmax]>" and repr(fc1) == "<Symbol fc1>"
    with pytest.raises(ValueError, match="multiple"):
        S.Group([fc1, fc1])["fc1_output"]
    with pytest.raises(ValueError):
        group["nothing_output"]
    with pytest.raises(IndexError):
        group[3]
    with pytest.raises(TypeError):
        S.Group([])
    with pytest.raises(TypeError):
        S.Group([fc1, 3])


def test_children_and_inputs(mlp):
    assert mlp.get_children().list_outputs() == ["fc2_output", "softmax_label"]
    assert S.Variable("v").get_children() is None
    assert mlp.list_inputs() == mlp.list_arguments()
    assert mlp.list_auxiliary_states() == []


def test_arithmetic_ops_in_json():
    a, b = S.Variable("a"), S.Variable("b")
    cases = {a + b: "elemwise_add", a - b: "elemwise_sub", a * b: "elemwise_mul",
             a / b: "elemwise_div", a % b: "_mod", a ** b: "_power", a + 1: "_plus_scalar",
             1 + a: "_plus_scalar", a - 1: "_minus_scalar", 1 - a: "_rminus_scalar",
             2 * a: "_mul_scalar", a / 2: "_div_scalar", 2 / a: "_rdiv_scalar",
             a ** 2: "_power_scalar", 2 ** a: "_rpower_scalar", -a: "_mul_scalar",
             abs(a): "abs", a > b: "_greater", a >= 1: "_greater_equal_scalar"}
    for expr, op in cases.items():
        nodes = json.loads(expr.tojson())["nodes"]
        assert nodes[-1]["op"] == op
    assert json.loads((1 - a).tojson())["nodes"][-1]["attrs"] == {"scalar": "1.0"}
    assert json.loads((-a).tojson())["nodes"][-1]["attrs"] == {"scalar": "-1.0"}


def test_inplace_bool_and_bad_operand_raise():
    a = S.Variable("a")
    with pytest.raises(NotImplementedError):
        a += 1
    with pytest.raises(NotImplementedError):
        bool(a)
    with pytest.raises(TypeError):
        a + "x"


def test_comparisons_give_zero_one_and_scalar_sides():
    a, b = S.Variable("a"), S.Variable("b")
    values = {"a": np.array([1.0, 2.0, 3.0]), "b": np.array([3.0, 2.0, 1.0])}
    exprs = [a == b, a != b, a > b, a >= b, a < b, a <= b, a == 2, a > 2, 1 - a, 2 / a,
             2 ** a, a % 2]
    got = [r.tolist() for r in run(S.Group(exprs), values)]
    assert got == [[0, 1, 0], [1, 0, 1], [0, 0, 1], [0, 1, 1], [1, 0, 0], [1, 1, 0],
                   [0, 1, 0], [0, 0, 1], [0, -1, -2], [2, 1, 2 / 3], [2, 4, 8], [1, 0, 1]]


def test_debug_str_is_readable(mlp):
    text = mlp.debug_str()
    assert "Op:FullyConnected, Name=fc1" in text
    assert "Variable:fc1_weight" in text
    assert "\targ[0]=fc1(0)" in text and "\tnum_hidden=26" in text
    assert text.index("Name=fc1") < text.index("Name=relu1") < text.index("Name=softmax")


def test_attr_copy_on_set_attr_leaves_other_handles_alone():
    fc = S.FullyConnected(S.Variable("d"), num_hidden=2, name="fc")
    alias = fc.__copy__()
    fc._set_attr(lr_mult="3", __mark__="x")
    assert fc.attr("lr_mult") == "3" and fc.list_attr()["__lr_mult__"] == "3"
    assert alias.attr("__mark__") is None
