"""Batched matmul kernels (one call, ``batch`` products at fixed element steps): what
convolution runs per image.  Each case is checked against numpy item by item, on every
path the batch reaches (broadcast rows, packed B^T, dot rows), including the summed
form (C step 0) a weight gradient uses."""

import numpy as np
import pytest
from cg_helpers import run_kernel

from codegen import jit
from codegen.kernels.matmul import matmul_kernel, matmul_path
from symgraph.errors import CompileError

pytestmark = pytest.mark.jit


def _operands(M, N, K, ta, tb, batch, steps, dtype, seed=0):
    rng = np.random.default_rng(seed)
    k = matmul_kernel(M, N, K, ta, tb, dtype, batch=batch, steps=steps)
    sizes = {p.name: p.size for p in k.params}
    a = rng.standard_normal(sizes["a"]).astype(dtype)
    b = rng.standard_normal(sizes["b"]).astype(dtype)
    return a, b


def _item(x, step, n, rows, cols, trans):
    m = x[n * step: n * step + rows * cols].reshape(rows, cols)
    return m.T if trans else m


def _reference(a, b, M, N, K, ta, tb, batch, steps):
    prods = []
    for n in range(batch):
        opa = _item(a, steps[0], n, *((K, M) if ta else (M, K)), ta)
        opb = _item(b, steps[1], n, *((N, K) if tb else (K, N)), tb)
        prods.append(opa.astype(np.float64) @ opb.astype(np.float64))
    return prods


CASES = [  # (M, N, K, ta, tb, batch, steps): per-image products of a convolution
    (50, 64, 500, False, False, 5, (0, 500 * 64, 50 * 64)),   # forward: W @ cols_n
    (500, 64, 50, True, False, 3, (0, 50 * 64, 500 * 64)),    # data grad: W^T @ dy_n
    (50, 500, 64, False, True, 4, (50 * 64, 500 * 64, 0)),    # weight grad, summed
    (6, 25, 576, False, True, 3, (6 * 576, 25 * 576, 0)),     # summed on the dot path
    (7, 19, 13, False, False, 4, (7 * 13 + 3, 13 * 19 + 5, 7 * 19 + 2)),  # gaps
]


@pytest.mark.parametrize("M,N,K,ta,tb,batch,steps", CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batched_matmul_matches_numpy_per_item(M, N, K, ta, tb, batch, steps, dtype):
    k = matmul_kernel(M, N, K, ta, tb, dtype, batch=batch, steps=steps)
    a, b = _operands(M, N, K, ta, tb, batch, steps, dtype)
    c = np.full(k.params[-1 if not k.pack else -2].size, np.nan, dtype)
    got = run_kernel(k, {"a": a, "b": b, "c": c})["c"]
    prods = _reference(a, b, M, N, K, ta, tb, batch, steps)
    tol = 1e-4 if dtype == "float32" else 1e-10
    if steps[2] == 0:
        np.testing.assert_allclose(got.reshape(M, N), sum(prods), rtol=tol, atol=tol * K)
        return
    for n, want in enumerate(prods):
        item = got[n * steps[2]: n * steps[2] + M * N].reshape(M, N)
        np.testing.assert_allclose(item, want, rtol=tol, atol=tol * K)


@pytest.mark.parametrize("M,N,K,tb,batch,groups", [
    (50, 500, 64, True, 7, 3),   # packed B^T, groups of 2, 2 and 3 images
    (6, 25, 576, True, 5, 4),    # the dot path
    (9, 40, 13, False, 4, 4),    # one image per group
])
def test_partial_sums_per_group_of_items(M, N, K, tb, batch, groups):
    """groups > 1: group g sums items g*batch//groups .. (g+1)*batch//groups - 1 into its
    own M x N block of C."""
    steps = (M * K, K * N, 0)
    k = matmul_kernel(M, N, K, False, tb, batch=batch, steps=steps, groups=groups)
    a, b = _operands(M, N, K, False, tb, batch, steps, "float32", seed=5)
    c = np.full(M * N * groups, np.nan, np.float32)
    got = run_kernel(k, {"a": a, "b": b, "c": c})["c"].reshape(groups, M, N)
    prods = _reference(a, b, M, N, K, False, tb, batch, steps)
    for g in range(groups):
        want = sum(prods[g * batch // groups:(g + 1) * batch // groups])
        np.testing.assert_allclose(got[g], want, rtol=1e-4, atol=1e-4 * K)


@pytest.mark.parametrize("groups,steps", [(3, (20, 40, 0)), (2, (20, 40, 160))])
def test_partial_sums_need_summed_items_and_no_more_groups_than_items(groups, steps):
    with pytest.raises(CompileError, match="partial sums"):
        matmul_kernel(4, 8, 5, batch=2, steps=steps, groups=groups)


def test_summed_batch_reaches_the_dot_path():
    """The weight-gradient case of a 6-filter 5x5 convolution takes the dot kernel, so
    the case above covers summing there."""
    k = matmul_kernel(6, 25, 576, False, True, batch=3, steps=(6 * 576, 25 * 576, 0))
    assert matmul_path(k, jit.host().lanes("float32")) == "dot"


def test_batched_bias_and_epilogue_step_with_c():
    """Row bias (one per filter) and an epilogue input follow each item's C."""
    M, N, K, batch = 9, 37, 21, 3
    steps = (0, K * N, M * N)
    k = matmul_kernel(M, N, K, dtype="float32", bias="row", n_extra=1, batch=batch,
                      steps=steps, epilogue=lambda m, acc, e: m.tanh(acc) * e)
    rng = np.random.default_rng(2)
    a = rng.standard_normal(M * K).astype(np.float32)
    b = rng.standard_normal(batch * K * N).astype(np.float32)
    bias = rng.standard_normal(M).astype(np.float32)
    e0 = rng.standard_normal(batch * M * N).astype(np.float32)
    got = run_kernel(k, {"a": a, "b": b, "bias": bias, "e0": e0,
                         "c": np.zeros(batch * M * N, np.float32)})["c"]
    want = np.tanh(np.einsum("mk,nkj->nmj", a.reshape(M, K), b.reshape(batch, K, N))
                   + bias[None, :, None]) * e0.reshape(batch, M, N)
    np.testing.assert_allclose(got.reshape(batch, M, N), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("extra", [dict(bias="col"), dict(softmax=True),
                                   dict(epilogue=lambda m, x: x * 2.0)])
def test_summed_batch_refuses_per_item_epilogues(extra):
    with pytest.raises(CompileError, match="batched matmul"):
        matmul_kernel(4, 8, 5, batch=2, steps=(20, 40, 0), **extra)


def test_bad_batch_spec_is_refused():
    with pytest.raises(CompileError, match="batched matmul"):
        matmul_kernel(4, 8, 5, batch=0)
    with pytest.raises(CompileError, match="batched matmul"):
        matmul_kernel(4, 8, 5, batch=2, steps=(1, -1, 3))
