"""sg.nd.NDArray: numpy buffer, MXNet's array API, eager ops through the op registry."""

import operator

import numpy as np
import pytest

import symgraph as sg
from symgraph import nd
from symgraph.errors import SymgraphError


def test_array_holds_a_numpy_buffer_and_is_float32_by_default():
    a = nd.array([[1, 2, 3], [4, 5, 6]])
    assert isinstance(a, nd.NDArray) and a.dtype == np.float32 and a.shape == (2, 3)
    assert a.context == sg.cpu() and a.size == 6 and a.ndim == 2 and len(a) == 2
    out = a.asnumpy()
    out[0, 0] = 100  # asnumpy is a copy, as in MXNet
    assert a.asnumpy()[0, 0] == 1
    view = np.asarray(a)  # __array__ is the buffer itself (zero copy)
    view[0, 0] = 7
    assert a.asnumpy()[0, 0] == 7
    assert np.sum(a) == 7 + 2 + 3 + 4 + 5 + 6  # numpy functions accept NDArrays


def test_scalars_formatting_and_python_numbers():
    s = nd.array([2.5])
    assert s.asscalar() == 2.5 and float(s) == 2.5 and "%.2f" % s == "2.50"  # noqa: UP031 - the seeds format this way
    assert f"{s:.1f}" == "2.5"
    total = 0.0
    total += s  # float += NDArray, as the crash course does
    assert isinstance(total, nd.NDArray) and float(total / 2) == 1.25
    with pytest.raises(ValueError):
        nd.array([1, 2]).asscalar()


@pytest.mark.parametrize("op", [operator.add, operator.sub, operator.mul, operator.truediv,
                                operator.pow, operator.eq, operator.ne, operator.gt,
                                operator.ge, operator.lt, operator.le])
def test_binary_ops_match_numpy(op):
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 2, (3, 4)).astype(np.float32)
    y = rng.uniform(0.5, 2, (3, 4)).astype(np.float32)
    y[0] = x[0]
    a, b = nd.array(x), nd.array(y)
    c = np.float32(1.5)
    np.testing.assert_allclose(op(a, b).asnumpy(), op(x, y).astype(np.float32), rtol=1e-5)
    np.testing.assert_allclose(op(a, 1.5).asnumpy(), op(x, c).astype(np.float32), rtol=1e-5)
    np.testing.assert_allclose(op(1.5, a).asnumpy(), op(c, x).astype(np.float32), rtol=1e-5)


def test_broadcasting_arithmetic():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    row = np.array([[1, 2, 3]], dtype=np.float32)
    np.testing.assert_allclose((nd.array(x) * nd.array(row)).asnumpy(), x * row)


def test_reductions_argmax_astype_expand_dims():
    x = np.array([[1, 5, 2], [7, 0, 3]], dtype=np.float32)
    a = nd.array(x)
    np.testing.assert_array_equal(a.argmax(axis=1).asnumpy(), [1, 0])
    assert a.mean().asscalar() == pytest.approx(x.mean())
    np.testing.assert_allclose(a.sum(axis=0).asnumpy(), x.sum(axis=0))
    np.testing.assert_allclose(a.max(axis=1).asnumpy(), x.max(axis=1))
    assert a.astype("int32").dtype == np.int32
    assert a.expand_dims(axis=0).shape == (1, 2, 3)
    assert (a.argmax(axis=1) == nd.array([1, 0])).mean().asscalar() == 1.0


@pytest.mark.parametrize("spec,shape", [
    ((-1,), (120,)), ((0, -1), (2, 60)), ((-2,), (2, 3, 4, 5)), ((0, 0, -3), (2, 3, 20)),
    ((-4, 1, 2, -2), (1, 2, 3, 4, 5)), ((2, -1, 5), (2, 12, 5)), ((-3, -2), (6, 4, 5)),
])
def test_reshape_legacy_special_codes(spec, shape):
    a = nd.array(np.arange(120).reshape(2, 3, 4, 5))
    out = a.reshape(spec)
    assert out.shape == shape
    np.testing.assert_array_equal(out.asnumpy().ravel(), np.arange(120))


def test_reshape_reverse_matches_codes_from_the_right():
    a = nd.array(np.arange(120).reshape(2, 3, 4, 5))
    assert a.reshape((-1, 0), reverse=True).shape == (24, 5)
    b = nd.array(np.arange(144).reshape(2, 3, 4, 6))
    assert b.reshape((0, 0, 0, -4, 2, -1), reverse=True).shape == (2, 3, 4, 2, 3)


def test_reshape_numpy_mode_codes():
    from symgraph import npx

    a = nd.array(np.zeros((2, 3, 4, 5)))
    npx.set_np()
    try:
        assert a.reshape((-2, -1)).shape == (2, 60)
        assert a.reshape((-2, -4)).shape == (2, 3, 4, 5)
        assert a.reshape((-5, -4)).shape == (6, 4, 5)
    finally:
        npx.reset_np()
    with pytest.raises(sg.ShapeError):
        a.reshape((7, -1))


def test_npx_reshape_reverse_reads_codes_from_the_right():
    from symgraph import npx

    a = nd.array(np.arange(144).reshape(2, 3, 4, 6))
    assert npx.reshape(a, (-1, -2), reverse=True).shape == (24, 6)
    out = npx.reshape(a, (-2, -2, -2, -6, 2, -1), reverse=True)
    assert out.shape == (2, 3, 4, 2, 3)
    np.testing.assert_array_equal(out.asnumpy().ravel(), np.arange(144))


def test_nd_op_functions_run_registered_ops():
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    w = np.random.default_rng(2).standard_normal((3, 5)).astype(np.float32)
    out = nd.FullyConnected(nd.array(x), nd.array(w), num_hidden=3, no_bias=True)
    np.testing.assert_allclose(out.asnumpy(), x @ w.T, rtol=1e-5)
    out = nd.FullyConnected(data=nd.array(x), weight=nd.array(w), num_hidden=3, no_bias=True)
    np.testing.assert_allclose(out.asnumpy(), x @ w.T, rtol=1e-5)
    np.testing.assert_allclose(nd.relu(nd.array(x)).asnumpy(), np.maximum(x, 0))
    np.testing.assert_allclose(sg.np.tanh(nd.array(x)).asnumpy(), np.tanh(x), rtol=1e-6)
    assert sg.np.ndarray is nd.NDArray
    with pytest.raises(AttributeError):
        _ = nd.not_an_op


def test_indexing_iteration_and_contexts():
    a = nd.array(np.arange(12).reshape(3, 4))
    assert [row.shape for row in a] == [(4,)] * 3
    np.testing.assert_array_equal(a[1].asnumpy(), [4, 5, 6, 7])
    np.testing.assert_array_equal(a[:, 0].asnumpy(), [0, 4, 8])
    a[0] = 1
    assert a.asnumpy()[0].tolist() == [1, 1, 1, 1]
    b = a.as_in_context(sg.cpu(1))
    assert b.context == sg.cpu(1) and a.to_device([sg.cpu()]) is a
    assert "<NDArray 3x4 @cpu(0)>" in repr(a)


def test_in_place_add_writes_the_buffer():
    a = nd.zeros((2,))
    view = np.asarray(a)
    a += 3
    assert view.tolist() == [3, 3]


def test_save_load_round_trip(tmp_path):
    path = str(tmp_path / "x.nd")
    nd.save(path, {"a": nd.array([1, 2]), "b": np.ones(3, np.float32)})
    loaded = nd.load(path)
    assert isinstance(loaded["a"], nd.NDArray)
    assert loaded["a"].asnumpy().tolist() == [1, 2] and loaded["b"].shape == (3,)


def test_op_parameters_positionally_after_the_inputs_as_mxnet():
    x = sg.nd.array(np.array([[-3.0, 1.5, 9.0, 4.0], [2.0, -1.0, 0.5, 7.0]]))
    np.testing.assert_array_equal(sg.nd.clip(x, 0, 6).asnumpy(),
                                  np.clip(x.asnumpy(), 0, 6))
    np.testing.assert_array_equal(sg.nd.sum(x, 1).asnumpy(), x.asnumpy().sum(axis=1))
    np.testing.assert_array_equal(sg.nd.topk(x, 1, 2).asnumpy(),
                                  sg.nd.topk(x, axis=1, k=2).asnumpy())
    # a keyword fills its parameter; positional values take the ones left, in order
    np.testing.assert_array_equal(sg.nd.clip(x, 0, a_min=-2).asnumpy(),
                                  np.clip(x.asnumpy(), -2, 0))
    with pytest.raises(SymgraphError, match="clip takes 1 inputs"):
        sg.nd.clip(x, 0, 6, 7)
