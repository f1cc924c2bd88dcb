"""Shape and dtype inference: forward, backward, partial, unknown, inconsistent."""

import numpy as np
import pytest
from sg_helpers import MLP_ARGS, S

import symgraph as sg


def test_positional_equals_keyword(mlp):
    keyword = mlp.infer_shape(data=(8, 16))
    positional = mlp.infer_shape((8, 16))
    assert keyword == positional
    with pytest.raises(ValueError):
        mlp.infer_shape((8, 16), data=(8, 16))
    with pytest.raises(ValueError, match="nope"):
        mlp.infer_shape(nope=(1,))


def test_backward_inference_fills_inputs_from_outputs():
    data, other = S.Variable("data"), S.Variable("other")
    fc = S.FullyConnected(data, num_hidden=5, name="fc")
    net = fc + other
    args, outs, _ = net.infer_shape(other=(32, 5), fc_weight=(5, 7))
    assert dict(zip(net.list_arguments(), args)) == {
        "data": (32, 7), "fc_weight": (5, 7), "fc_bias": (5,), "other": (32, 5)}
    assert outs == [(32, 5)]
    x = S.Variable("x")
    args, _, _ = (S.tanh(x) * S.Variable("y")).infer_shape(y=(2, 3))
    assert args == [(2, 3), (2, 3)]


def test_variable_shape_attr_is_known_and_overridable():
    v = S.Variable("data", shape=(4, 16))
    fc = S.FullyConnected(v, num_hidden=2, name="fc")
    assert fc.infer_shape()[1] == [(4, 2)]
    assert fc.infer_shape(data=(9, 16))[1] == [(9, 2)]


def test_partial_returns_empty_tuple_for_unknown():
    fc = S.FullyConnected(S.Variable("data"), num_hidden=5, name="fc")
    net = S.SoftmaxOutput(fc, name="sm")
    args, outs, aux = net.infer_shape_partial(fc_weight=(5, 7))
    assert args[0] == () and args[1] == (5, 7) and args[2] == (5,) and args[3] == ()
    assert outs == [()] and aux == []


def test_unknown_returns_none_with_warning(mlp):
    with pytest.warns(UserWarning, match="softmax_label|data"):
        assert mlp.infer_shape() == (None, None, None)


def test_infer_type_keyword_attr_and_partial(mlp):
    args, outs, aux = mlp.infer_type(data="float64")
    assert args == [np.float64] * len(MLP_ARGS) and outs == [np.float64] and aux == []
    v = S.Variable("v", dtype="float64")
    assert (v * 2).infer_type() == ([np.float64], [np.float64], [])
    assert (v * 2).infer_type(v=np.float32) == ([np.float32], [np.float32], [])
    q = S.Variable("q") + S.Variable("r", dtype="float16")
    assert q.infer_type()[0] == [np.float16, np.float16]
    free = S.tanh(S.Variable("f"))
    assert free.infer_type() == (None, None, None)
    assert free.infer_type_partial() == ([None], [None], [])


def test_inconsistent_dtype_raises():
    a, b = S.Variable("a"), S.Variable("b")
    with pytest.raises(sg.DTypeError, match="_plus0"):
        (a + b).infer_type(a="float32", b="float64")


def test_softmax_label_shape_error_names_everything():
    net = S.SoftmaxOutput(S.Variable("data"), name="sm")
    with pytest.raises(sg.ShapeError) as info:
        net.infer_shape(data=(100, 10), sm_label=(100, 1))
    message = str(info.value)
    for part in ("'sm'", "SoftmaxOutput", "label", "(100, 1)", "(100,)"):
        assert part in message


def test_elementwise_mismatch_names_node_and_both_shapes():
    a, b = S.Variable("a"), S.Variable("b")
    with pytest.raises(sg.ShapeError) as info:
        S.elemwise_add(a, b, name="add1").infer_shape(a=(2, 3), b=(3, 2))
    message = str(info.value)
    assert "add1" in message and "(2, 3)" in message and "(3, 2)" in message


def test_weight_contradicting_data_is_a_shape_error(mlp):
    with pytest.raises(sg.ShapeError) as info:
        mlp.infer_shape(data=(32, 16), fc1_weight=(64, 15))
    assert "fc1" in str(info.value) and "(64, 15)" in str(info.value)
    assert "(64, 16)" in str(info.value)
