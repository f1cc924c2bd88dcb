"""Kernel builders vs numpy: broadcasting elementwise, reductions, softmax, argmax, transpose."""

from functools import partial

import numpy as np
import pytest
from cg_helpers import run_kernel
from hypothesis import given, settings
from hypothesis import strategies as st

from codegen import loop_ir as L
from codegen.emit.scalar_ir import IRMath
from codegen.kernels.builders import elementwise_kernel, reduce_kernel
from codegen.kernels.builders_nn import (
    argmax_kernel,
    loop_softmax_kernel,
    softmax_kernel,
    transpose_kernel,
)
from codegen.kernels.softmax_rows import short_softmax_kernel
from codegen.program import KernelCall, Program, compile_program

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
@pytest.mark.parametrize("rows,cols", [(1, 1), (3, 10), (5, 37), (2, 100), (7, 3), (9, 16),
                                       (33, 26), (100, 10), (4, 64), (3, 65), (17, 48)])
def test_softmax_is_stable(dtype, log, rows, cols):
    x = np.random.default_rng(3).standard_normal((rows, cols)).astype(dtype) * 5
    x[0, 0] = 1000.0  # would overflow exp without the max subtraction
    x[-1, -1] = -1000.0  # underflows to an exact zero probability
    got = _softmax(softmax_kernel, x, log)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, _softmax_ref(x, log),
                               rtol=1e-5 if dtype == "float32" else 1e-12,
                               atol=1e-6 if dtype == "float32" else 1e-14)


def _softmax(make, x, log):
    k = make(*x.shape, _buf("x", x.dtype.name, x.shape), _buf("y", x.dtype.name, x.shape), log)
    return run_kernel(k, {"x": x, "y": np.zeros_like(x)})["y"]


def _softmax_ref(x, log):
    z = x.astype(np.float64) - x.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
    return (z - lse) if log else np.exp(z - lse)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("offset", [1e4, -3e4, 1e30])
def test_softmax_large_magnitude_rows(dtype, log, offset):
    """Rows far from zero: only differences matter, as long as they are representable."""
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((13, 26)) * 20 + offset).astype(dtype)
    got = _softmax(softmax_kernel, x, log)
    np.testing.assert_allclose(got, _softmax_ref(x, log), rtol=2e-5 if dtype == "float32"
                               else 1e-11, atol=1e-6 if dtype == "float32" else 1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("cols", [5, 26, 40])
def test_softmax_nan_and_inf_rows_match_loop_kernel(dtype, log, cols):
    """NaN / +inf poison their row; -inf entries get probability 0 (log: -inf)."""
    x = np.random.default_rng(12).standard_normal((6, cols)).astype(dtype)
    x[0, 1], x[1, -1], x[2, 0], x[3, :] = np.nan, np.inf, -np.inf, -np.inf
    x[4, :2] = [np.inf, np.nan]
    got = _softmax(softmax_kernel, x, log)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(_softmax(loop_softmax_kernel, x,
                                                                   log)))
    assert np.isnan(got[[0, 1, 3, 4]]).all() and not np.isnan(got[[2, 5]]).any()
    assert got[2, 0] == (-np.inf if log else 0.0)
    np.testing.assert_allclose(got[[2, 5]], _softmax_ref(x[[2, 5]], log),
                               rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("rows,cols", [(4, 1), (16, 10), (100, 10), (35, 3), (21, 8), (97, 5),
                                       (19, 16), (3, 10), (32, 26), (37, 17), (5, 31),
                                       (18, 12)])
def test_softmax_rows_in_lanes_match_rows_in_vectors_bitwise(dtype, log, rows, cols):
    """Rows of < 2W columns run transposed (a row per lane); the column folds and trees
    reproduce the per-row ones, so every bit, NaN and inf agree with the per-row path."""
    x = np.random.default_rng(15).standard_normal((rows, cols)).astype(dtype) * 4
    x[0, 0] = np.nan
    x[-1, -1], x[rows // 2, :] = np.inf, -np.inf
    x[1, 0] = 200.0
    lanes, per_row = (_softmax(partial(short_softmax_kernel, lane_rows=flag), x, log)
                      for flag in (True, False))
    np.testing.assert_array_equal(lanes, per_row)
    assert np.isnan(lanes[0]).all() and not np.isnan(lanes[1]).any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,cols", [(5, 10), (11, 33), (40, 7)])
def test_softmax_in_place(dtype, rows, cols):
    """The planner may give in and out one buffer: every row is read before written."""
    x = np.random.default_rng(13).standard_normal((rows, cols)).astype(dtype)
    buf = _buf("x", dtype, x.shape)
    k = softmax_kernel(rows, cols, buf, L.BufferParam("y", dtype, buf.size))
    arena = x.copy().view(np.uint8).ravel()
    prog = Program((k,), arena.nbytes, {"run": [KernelCall(k, (0, 0))]})
    compile_program(prog).run_array("run", arena)
    np.testing.assert_allclose(arena.view(dtype).reshape(x.shape), _softmax_ref(x, False),
                               rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-7)


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


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,classes,inner", [(32, 26, 1), (100, 10, 1), (3, 40, 1),
                                                (4, 5, 3)])
@pytest.mark.parametrize("normalization,use_ignore", [("null", False), ("batch", False),
                                                      ("valid", True)])
def test_softmax_output_grad(dtype, rows, classes, inner, normalization, use_ignore):
    from types import SimpleNamespace

    from codegen.kernels.lower_kernels import softmax_output_grad

    p = SimpleNamespace(smooth_alpha=0.0, use_ignore=use_ignore, ignore_label=2.0,
                        normalization=normalization, multi_output=inner != 1, grad_scale=1.5)
    rng = np.random.default_rng(14)
    prob = rng.random((rows, classes, inner)).astype(dtype)
    label = rng.integers(0, classes, (rows, inner)).astype(dtype)
    onehot = (np.arange(classes)[None, :, None] == label[:, None, :]).astype(np.float64)
    grad = prob - onehot
    keep = label != p.ignore_label
    if use_ignore:
        grad = grad * keep[:, None, :]
    if normalization == "valid":
        grad *= p.grad_scale / max(keep.sum(), 1)
    elif normalization == "batch":
        grad *= p.grad_scale / rows / (inner if inner != 1 else 1)
    else:
        grad *= p.grad_scale / (inner if inner != 1 else 1)
    bp, bl, bo = (_buf(n, dtype, s) for n, s in (("p", prob.shape), ("l", label.shape),
                                                  ("o", prob.shape)))
    k = softmax_output_grad(p, rows, classes, inner, bp, bl, bo)
    got = run_kernel(k, {"p": prob, "l": label, "o": np.zeros_like(prob)})["o"]
    np.testing.assert_allclose(got, grad, rtol=1e-6 if dtype == "float32" else 1e-13,
                               atol=1e-7 if dtype == "float32" else 1e-15)
