"""SoftmaxOutput gradient: the short-row emitter vs the loop-IR kernel and numpy."""

from types import SimpleNamespace

import numpy as np
import pytest
from cg_helpers import run_kernel

from codegen import loop_ir as L
from codegen.kernels.lower_kernels import loop_softmax_output_grad, softmax_output_grad
from codegen.kernels.softmax_grad_rows import SoftmaxGradKernel
from codegen.program import KernelCall, Program, compile_program

pytestmark = pytest.mark.jit
DTYPES = ["float32", "float64"]
NORMS = ["null", "batch", "valid"]


def _params(normalization, use_ignore=False, smooth_alpha=0.0, multi_output=False,
            grad_scale=1.5, ignore_label=2.0):
    return SimpleNamespace(smooth_alpha=smooth_alpha, use_ignore=use_ignore,
                           ignore_label=ignore_label, normalization=normalization,
                           multi_output=multi_output, grad_scale=grad_scale)


def _run(make, p, prob, label):
    rows, classes = prob.shape
    dt = prob.dtype.name
    bufs = (L.BufferParam("p", dt, prob.size), L.BufferParam("l", dt, rows),
            L.BufferParam("o", dt, prob.size))
    k = make(p, rows, classes, 1, *bufs)
    return k, run_kernel(k, {"p": prob, "l": label, "o": np.full_like(prob, 7.0)})["o"]


def _numpy(p, prob, label):
    """The formula with the loop kernel's label rule: trunc(label) picks the class,
    labels outside (-1, classes) pick none."""
    rows, classes = prob.shape
    on, off = 1.0, 0.0
    if p.smooth_alpha:
        on, off = 1.0 - p.smooth_alpha, p.smooth_alpha / (classes - 1)
    hot = np.trunc(label)[:, None] == np.arange(classes)[None, :]
    onehot = np.where(hot, on, off).astype(prob.dtype)
    keep = label != p.ignore_label
    grad = prob - onehot
    if p.use_ignore:
        with np.errstate(invalid="ignore"):  # inf * 0 is NaN, as in the kernels
            grad = grad * keep[:, None].astype(prob.dtype)
    scale = {"null": p.grad_scale, "batch": p.grad_scale / rows,
             "valid": p.grad_scale / max(1, keep.sum())}[p.normalization]
    return grad * prob.dtype.type(scale)


def _data(dtype, rows, classes, seed=0):
    rng = np.random.default_rng(seed)
    prob = rng.random((rows, classes)).astype(dtype)
    label = rng.integers(0, classes, rows).astype(dtype)
    return prob, label


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,classes", [(100, 10), (32, 26), (7, 1), (5, 16), (9, 17),
                                          (3, 33), (13, 64), (1, 3)])
@pytest.mark.parametrize("normalization", NORMS)
@pytest.mark.parametrize("use_ignore", [False, True])
def test_short_rows_match_loop_kernel_and_numpy(dtype, rows, classes, normalization,
                                                use_ignore):
    p = _params(normalization, use_ignore, ignore_label=min(2.0, classes - 1))
    prob, label = _data(dtype, rows, classes, seed=rows * classes)
    k, got = _run(softmax_output_grad, p, prob, label)
    assert isinstance(k, SoftmaxGradKernel)
    _, want = _run(loop_softmax_output_grad, p, prob, label)
    np.testing.assert_array_equal(got, want)
    tol = 1e-6 if dtype == "float32" else 1e-14
    np.testing.assert_allclose(got, _numpy(p, prob, label), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("normalization", NORMS)
@pytest.mark.parametrize("multi_output", [False, True])
def test_smoothing_scale_and_multi_output_match_loop_kernel(dtype, normalization,
                                                            multi_output):
    p = _params(normalization, use_ignore=True, smooth_alpha=0.1, multi_output=multi_output,
                grad_scale=-0.75, ignore_label=0.0)
    prob, label = _data(dtype, 37, 26, seed=5)
    _, got = _run(softmax_output_grad, p, prob, label)
    _, want = _run(loop_softmax_output_grad, p, prob, label)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got, _numpy(p, prob, label), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("use_ignore", [False, True])
def test_odd_labels_and_non_finite_probs_match_loop_kernel(dtype, use_ignore):
    """Fractional labels truncate, out-of-range and NaN labels select no class, a NaN or
    inf probability stays NaN/inf even in an ignored row (x * 0)."""
    p = _params("valid", use_ignore, ignore_label=-1.0)
    prob, label = _data(dtype, 12, 10, seed=3)
    label[:9] = [2.7, -0.5, -1.0, 10.0, 1e30, np.nan, -1.0, 9.99, -3.0]
    prob[1, 4], prob[2, 0], prob[6, 3] = np.nan, np.inf, -np.inf
    _, got = _run(softmax_output_grad, p, prob, label)
    _, want = _run(loop_softmax_output_grad, p, prob, label)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[2, 0]) == use_ignore and np.isnan(got[1, 4])
    np.testing.assert_array_equal(got, _numpy(p, prob, label))


@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place(dtype):
    """The planner may give prob and out one buffer: each row is read before written."""
    p = _params("batch", use_ignore=True)
    prob, label = _data(dtype, 21, 26, seed=8)
    bp = L.BufferParam("p", dtype, prob.size)
    k = softmax_output_grad(p, 21, 26, 1, bp, L.BufferParam("l", dtype, 21),
                            L.BufferParam("o", dtype, prob.size))
    arena = np.concatenate([prob.ravel(), label]).view(np.uint8)
    prog = Program((k,), arena.nbytes, {"run": [KernelCall(k, (0, prob.nbytes, 0))]})
    compile_program(prog).run_array("run", arena)
    got = arena.view(dtype)[:prob.size].reshape(prob.shape)
    np.testing.assert_allclose(got, _numpy(p, prob, label), rtol=1e-6, atol=1e-7)


def test_long_rows_and_inner_positions_keep_the_loop_kernel():
    p = _params("batch")
    bufs = [L.BufferParam(n, "float32", 65 * 4) for n in "plo"]
    assert isinstance(softmax_output_grad(p, 4, 65, 1, *bufs), L.Kernel)
    assert isinstance(softmax_output_grad(p, 4, 5, 3, *bufs), L.Kernel)
