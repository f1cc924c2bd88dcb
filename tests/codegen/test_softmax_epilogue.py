"""Matmul with a row-softmax epilogue: the kernel against numpy, and the fusion rule that
puts a SoftmaxOutput's softmax into the matmul producing its logits."""

import numpy as np
import pytest
from cg_helpers import run_kernel
from test_fusion import compile_and_check, mlp, phase_names

import symgraph as sg
from codegen import jit
from codegen.kernels.matmul import matmul_kernel, softmax_fits

pytestmark = pytest.mark.jit
TOL = {"float32": 2e-6, "float64": 1e-13}


def _softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _run(a, b, bias, dtype):
    M, K = a.shape
    N = b.shape[0]
    kernel = matmul_kernel(M, N, K, False, True, dtype,
                           bias="none" if bias is None else "col", softmax=True)
    arrays = {"a": a, "b": b, "c": np.full((M, N), np.nan, dtype)}
    if bias is not None:
        arrays["bias"] = bias
    return run_kernel(kernel, arrays)["c"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("K", [3, 64])
@pytest.mark.parametrize("M", [1, 7, 32, 100])
@pytest.mark.parametrize("N", [10, 16, 26, 32])
def test_softmax_epilogue_matches_numpy(N, M, K, with_bias, dtype):
    if not softmax_fits(N, jit.host().lanes(dtype)):
        pytest.skip("a row does not fit one register tile on this host")
    rng = np.random.default_rng(N * 1000 + M * 10 + K)
    a = rng.standard_normal((M, K)).astype(dtype)
    b = rng.standard_normal((N, K)).astype(dtype)
    bias = rng.standard_normal(N).astype(dtype) if with_bias else None
    got = _run(a, b, bias, dtype)
    logits = a.astype(np.float64) @ b.T.astype(np.float64) + (0 if bias is None else bias)
    np.testing.assert_allclose(got, _softmax(logits), rtol=TOL[dtype] * 10, atol=TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_large_logits_do_not_overflow(dtype):
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((20, 8)) * 300).astype(dtype)
    # 16 columns: a row fits one register tile at 4 lanes (AVX2 float64) as well as at 8 or 16
    b = rng.standard_normal((16, 8)).astype(dtype)
    got = _run(a, b, None, dtype)
    assert np.isfinite(got).all()
    want = _softmax(a.astype(np.float64) @ b.T.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)


def test_nan_logit_makes_its_row_nan():
    a = np.ones((5, 4), np.float32)
    a[2, 1] = np.nan
    b = np.random.default_rng(4).standard_normal((26, 4)).astype(np.float32)
    got = _run(a, b, None, "float32")
    assert np.isnan(got[2]).all()
    assert np.isfinite(np.delete(got, 2, axis=0)).all()


def test_softmax_name_differs_from_plain_matmul():
    """The kernel name is the compile cache key: the epilogue must change it."""
    plain = matmul_kernel(32, 26, 64, False, True, "float32", bias="col")
    fused = matmul_kernel(32, 26, 64, False, True, "float32", bias="col", softmax=True)
    assert plain.name != fused.name and "softmax" in fused.canonical()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_letter_mlp_fuses_fc2_and_softmax(dtype):
    compiled = compile_and_check(mlp((64, 26)), {"data": (32, 16), "softmax_label": (32,)},
                                 dtype, classes=26)
    forward = phase_names(compiled, "forward")
    if softmax_fits(26, jit.host().lanes(dtype)):
        assert ("fc2", "softmax") in forward
        assert ("fc2",) not in forward and ("softmax",) not in forward


def test_logits_read_elsewhere_are_not_fused():
    data = sg.sym.Variable("data")
    hidden = sg.sym.FullyConnected(data, name="fc1", num_hidden=12)
    logits = sg.sym.FullyConnected(hidden, name="fc2", num_hidden=10)
    net = sg.sym.Group([sg.sym.SoftmaxOutput(logits, name="softmax"), logits])
    compiled = compile_and_check(net, {"data": (7, 5), "softmax_label": (7,)}, "float32",
                                 classes=10)
    forward = phase_names(compiled, "forward")
    assert ("fc2", "softmax") not in forward
    assert ("fc2",) in forward and ("softmax",) in forward
