"""Given shapes are checked where they are given: a zero, negative or non-integer
dimension (``simple_bind(data=(-4, 16))``, a ``__shape__`` of ``(-3, 5)``) is a ShapeError
naming the input, never a buffer sized from it."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgraph as sg

S = sg.sym


def net():
    return S.FullyConnected(S.Variable("data"), num_hidden=4, name="fc1")


BAD = [((-4, 16), r"dimension 0 = -4; every dimension must be >= 1"),
       ((0, 16), r"dimension 0 = 0; every dimension must be >= 1"),
       ((8, -1), r"dimension 1 = -1"),
       ((2.5, 16), r"dimension 0 = 2.5; dimensions are integers"),
       ((True, 16), r"dimension 0 = True"),
       (5, r"not a tuple of integers")]


@pytest.mark.parametrize("shape,message", BAD)
def test_infer_shape_rejects_bad_dims(shape, message):
    with pytest.raises(sg.ShapeError, match=r"input 'data': .*" + message):
        net().infer_shape(data=shape)
    with pytest.raises(sg.ShapeError, match=r"input 'data'"):
        net().infer_shape_partial(data=shape)


@pytest.mark.parametrize("shape,message", BAD)
def test_simple_bind_rejects_bad_dims(shape, message):
    with pytest.raises(sg.ShapeError, match=r"input 'data': .*" + message):
        net().simple_bind(sg.cpu(), data=shape)


@pytest.mark.parametrize("shape,message", BAD)
@pytest.mark.parametrize("partial", [False, True])
def test_executor_reshape_rejects_bad_dims(shape, message, partial):
    exe = net().simple_bind(sg.cpu(), data=(8, 16))
    with pytest.raises(sg.ShapeError, match=r"input 'data': .*" + message):
        exe.reshape(partial_shaping=partial, data=shape)


def test_numpy_integer_dims_are_fine():
    import numpy as np

    args, outs, _ = net().infer_shape(data=(np.int64(8), np.int32(16)))
    assert args[0] == (8, 16) and outs == [(8, 4)]


def test_negative_shape_attribute_names_the_variable():
    x = S.Variable("x", shape=(-3, 5))
    with pytest.raises(sg.ShapeError, match=r"input 'x': shape \(-3, 5\)"):
        (x * 2).infer_shape()


def test_zero_in_shape_attribute_still_means_unknown():
    """MXNet writes ``__shape__="(0, 5)"`` for an unknown batch size."""
    x = S.Variable("x", shape=(0, 5))
    assert (x * 2).infer_shape(x=(3, 5))[1] == [(3, 5)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-3, 4), min_size=1, max_size=4))
def test_any_given_shape_is_accepted_or_a_shape_error(dims):
    x = S.Variable("x")
    net = S.sum(S.exp(x) * 2, axis=0)
    if min(dims) >= 1:
        _, outs, _ = net.infer_shape(x=tuple(dims))
        assert outs == [tuple(dims[1:]) or (1,)]  # MXNet: a full reduction is (1,)
    else:
        with pytest.raises(sg.ShapeError, match="input 'x'"):
            net.infer_shape(x=tuple(dims))
