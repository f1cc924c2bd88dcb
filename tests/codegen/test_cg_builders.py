"""Kernel builders vs numpy: broadcasting elementwise, reductions, softmax, argmax, transpose."""

import numpy as np
import pytest
from cg_helpers import run_kernel
from hypothesis import given, settings
from hypothesis import strategies as st

from codegen import loop_ir as L
from codegen.builders import elementwise_kernel, reduce_kernel
from codegen.builders_nn import argmax_kernel, softmax_kernel, transpose_kernel
from codegen.scalar_ir import IRMath

pytestmark = pytest.mark.jit
DTYPES = ["float32", "float64"]


def _buf(name, dtype, shape):
    return L.BufferParam(name, dtype, max(1, int(np.prod(shape))))


shapes = st.lists(st.integers(1, 7), min_size=1, max_size=3)


@settings(max_examples=12, deadline=None)
@given(shape=shapes, mask=st.lists(st.booleans(), min_size=3, max_size=3),
       dtype=st.sampled_from(DTYPES))
def test_elementwise_broadcast_and_two_outputs(shape, mask, dtype):
    a_shape = tuple(1 if m else d for d, m in zip(shape, mask))
    b_shape = tuple(shape[1:]) or (1,)
    rng = np.random.default_rng(1)
    a = rng.standard_normal(a_shape).astype(dtype)
    b = rng.standard_normal(b_shape).astype(dtype)
    lr = np.array([0.5], dtype)
    out = tuple(shape)
    ba, bb, bl = _buf("a", dtype, a_shape), _buf("b", dtype, b_shape), _buf("lr", dtype, (1,))
    o1, o2 = _buf("o1", dtype, out), _buf("o2", dtype, out)
    m = IRMath(dtype)
    k = elementwise_kernel(out, [(ba, a_shape), (bb, b_shape)],
                           lambda x, y, s: (x * y - s, m.maximum(x, y) * s), [o1, o2], [bl])
    got = run_kernel(k, {"a": a, "b": b, "lr": lr, "o1": np.zeros(out, dtype),
                         "o2": np.zeros(out, dtype)})
    np.testing.assert_allclose(got["o1"], np.broadcast_to(a * b - lr[0], out), rtol=1e-6)
    np.testing.assert_allclose(got["o2"], np.broadcast_to(np.maximum(a, b) * lr[0], out),
                               rtol=1e-6)


@settings(max_examples=15, deadline=None)
@given(shape=st.lists(st.integers(1, 40), min_size=1, max_size=3), data=st.data(),
       op=st.sampled_from(["sum", "mean", "max", "min"]), dtype=st.sampled_from(DTYPES))
def test_reduce_over_arbitrary_axes(shape, data, op, dtype):
    axes = data.draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, unique=True))
    x = np.random.default_rng(2).standard_normal(shape).astype(dtype)
    want = getattr(np, op)(x, axis=tuple(axes))
    bx, bo = _buf("x", dtype, shape), _buf("o", dtype, want.shape)
    got = run_kernel(reduce_kernel(shape, axes, op, bx, bo),
                     {"x": x, "o": np.zeros(want.shape, dtype)})["o"]
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.sqrt(x.size))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("rows,cols", [(1, 1), (3, 10), (5, 37), (2, 100)])
def test_softmax_is_stable(dtype, log, rows, cols):
    x = np.random.default_rng(3).standard_normal((rows, cols)).astype(dtype) * 5
    x[0, 0] = 1000.0  # would overflow exp without the max subtraction
    z = x - x.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z.astype(np.float64)).sum(axis=1, keepdims=True))
    want = (z - lse) if log else np.exp(z - lse)
    k = softmax_kernel(rows, cols, _buf("x", dtype, x.shape), _buf("y", dtype, x.shape), log)
    got = run_kernel(k, {"x": x, "y": np.zeros_like(x)})["y"]
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == "float32" else 1e-12,
                               atol=1e-6 if dtype == "float32" else 1e-14)


@pytest.mark.parametrize("shape,axis", [((7,), 0), ((4, 9), 1), ((4, 9), 0), ((3, 5, 2), 1)])
def test_argmax_first_max_and_nan(shape, axis):
    x = np.random.default_rng(4).integers(0, 3, shape).astype("float32")
    want = np.argmax(x, axis=axis).astype("float32")
    k = argmax_kernel(shape, axis, _buf("x", "float32", shape), _buf("o", "float32", want.shape))
    got = run_kernel(k, {"x": x, "o": np.zeros(want.shape, "float32")})["o"]
    np.testing.assert_array_equal(got, want)
    xn = x.copy().ravel()
    xn[1 % xn.size] = np.nan
    xn = xn.reshape(shape)
    got = run_kernel(k, {"x": xn, "o": np.zeros(want.shape, "float32")})["o"]
    np.testing.assert_array_equal(got, np.argmax(xn, axis=axis).astype("float32"))


@settings(max_examples=10, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=4), data=st.data())
def test_transpose_arbitrary_axes(shape, data):
    axes = data.draw(st.permutations(range(len(shape))))
    x = np.arange(np.prod(shape), dtype="float64").reshape(shape)
    want = x.transpose(axes)
    k = transpose_kernel(shape, axes, _buf("x", "float64", shape), _buf("y", "float64", shape))
    got = run_kernel(k, {"x": x, "y": np.zeros(want.shape)})["y"]
    np.testing.assert_array_equal(got, want)
