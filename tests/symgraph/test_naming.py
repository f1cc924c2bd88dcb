"""The letter MLP, NameManager/Prefix/AttrScope naming, hidden keys and Variable attrs."""

import json

import pytest
from sg_helpers import MLP_ARGS, S, letter_mlp

import symgraph as sg


def test_letter_mlp_arguments_and_shapes(mlp):
    assert mlp.list_arguments() == MLP_ARGS
    assert mlp.list_outputs() == ["softmax_output"]
    assert mlp.infer_shape(data=(32, 16)) == (
        [(32, 16), (64, 16), (64,), (26, 64), (26,), (32,)], [(32, 26)], [])


def test_name_manager_counters():
    a, b = S.Variable("a"), S.Variable("b")
    fc = S.FullyConnected(a, num_hidden=2)
    assert fc.name == "fullyconnected0"
    assert fc.list_arguments() == ["a", "fullyconnected0_weight", "fullyconnected0_bias"]
    assert S.FullyConnected(a, num_hidden=2).name == "fullyconnected1"
    names = [(a + b).name, (a + 1).name, (a * 2).name, (1 - a).name, (2 ** a).name,
             (a == 1).name, (a == b).name, (a != b).name, (a > 1).name, (a <= b).name,
             (-a).name, (a / 2).name, (2 / a).name, (a ** 2).name, (a - b).name]
    assert names == ["_plus0", "_plusscalar0", "_mulscalar0", "_rminusscalar0",
                     "_rpower_scalar0", "_equal_scalar0", "_equal0", "_not_equal0",
                     "_greater_scalar0", "_lesser_equal0", "_mulscalar1", "_divscalar0",
                     "_rdivscalar0", "_powerscalar0", "_minus0"]
    assert S.Activation(a, act_type="relu").name == "activation0"
    assert S.SoftmaxOutput(a).name == "softmaxoutput0"


def test_fresh_counters_inside_name_manager():
    x = S.Variable("x")
    assert S.FullyConnected(x, num_hidden=1).name == "fullyconnected0"
    with sg.name.NameManager():
        assert S.FullyConnected(x, num_hidden=1).name == "fullyconnected0"
    assert S.FullyConnected(x, num_hidden=1).name == "fullyconnected1"


def test_prefix_applies_to_ops_and_auto_inputs_not_explicit_variables():
    with sg.name.Prefix("p_"):
        data = S.Variable("data")
        fc = S.FullyConnected(data, num_hidden=3, name="fc1")
        anon = S.Activation(fc, act_type="tanh")
    assert fc.name == "p_fc1" and anon.name == "p_activation0"
    assert anon.list_arguments() == ["data", "p_fc1_weight", "p_fc1_bias"]


def test_attr_scope_reaches_variables_and_ops_and_nests():
    with sg.AttrScope(ctx_group="dev1", __tag__="a"):
        v = S.Variable("v", attr={"lr_mult": "0.5", "group": "g"})
        with sg.AttrScope(__tag__="b"):
            op = S.FullyConnected(v, num_hidden=2, name="fc", attr={"__extra__": "x"})
    assert v.list_attr() == {"__ctx_group__": "dev1", "__tag__": "a", "__lr_mult__": "0.5",
                             "group": "g"}
    assert op.list_attr() == {"__ctx_group__": "dev1", "__tag__": "b", "__extra__": "x",
                              "num_hidden": "2"}
    assert op.attr("ctx_group") == "dev1"
    assert op.attr_dict()["fc_weight"]["__tag__"] == "b"
    with pytest.raises(ValueError):
        sg.AttrScope(ctx_group=1)


def test_attr_scope_plain_key_on_an_op_is_an_unknown_parameter_as_in_mxnet():
    with sg.AttrScope(tag="a"), pytest.raises(sg.OpAttributeError, match="'tag'"):
        S.FullyConnected(S.Variable("v"), num_hidden=2, name="fc")


def test_auto_created_inputs_carry_copy_of_op_attrs():
    fc = S.FullyConnected(S.Variable("data"), num_hidden=64, name="fc1", lr_mult=2)
    attrs = fc.attr_dict()
    assert attrs["fc1_weight"] == {"num_hidden": "64", "__lr_mult__": "2", "lr_mult": "2"}
    assert attrs["fc1_bias"]["num_hidden"] == "64"
    assert "data" not in attrs


def test_hidden_keys_attr_list_attr_and_attr_dict():
    fc = S.FullyConnected(S.Variable("d"), num_hidden=4, name="fc", lr_mult=2, wd_mult=0)
    assert fc.list_attr() == {"num_hidden": "4", "__lr_mult__": "2", "__wd_mult__": "0"}
    assert fc.attr("lr_mult") == "2" and fc.attr("__lr_mult__") == "2"
    assert fc.attr("num_hidden") == "4" and fc.attr("missing") is None
    assert fc.attr_dict()["fc"] == {"num_hidden": "4", "__lr_mult__": "2", "lr_mult": "2",
                                    "__wd_mult__": "0", "wd_mult": "0"}
    with pytest.raises(sg.OpAttributeError, match="weight_lr_mult"):
        S.FullyConnected(S.Variable("d"), num_hidden=4, weight_lr_mult=2)


def test_variable_attrs():
    v = S.Variable("w", shape=(3, 4), dtype="float64", lr_mult=2, wd_mult=0.5,
                   init='["xavier", {"magnitude": 2}]', __layout__="NC")
    attrs = v.list_attr()
    assert attrs == {"__shape__": "(3, 4)", "__dtype__": "1", "__lr_mult__": "2",
                     "__wd_mult__": "0.5", "__init__": '["xavier", {"magnitude": 2}]',
                     "__layout__": "NC"}
    assert json.loads(attrs["__init__"])[0] == "xavier"
    assert v.attr("lr_mult") == "2"
    assert S.var("i", dtype="int32").list_attr() == {"__dtype__": "4"}
    with pytest.raises(ValueError, match="bad"):
        S.Variable("x", **{"bad": 1})
    with pytest.raises(TypeError):
        S.Variable(3)


def test_mlp_attr_dict(mlp):
    assert letter_mlp().attr_dict() == mlp.attr_dict()
    assert mlp.attr_dict()["relu1"] == {"act_type": "relu"}
    assert mlp.attr_dict()["fc2_bias"] == {"num_hidden": "26"}
