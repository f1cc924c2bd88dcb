"""Matmul micro-kernel vs numpy: transposes, edges, epilogues, both dtypes."""

import itertools

import numpy as np
import pytest
from cg_helpers import run_kernel
from hypothesis import given, settings
from hypothesis import strategies as st

from codegen import jit
from codegen.kernels.matmul import dot_pays, matmul_kernel, matmul_path, softmax_fits
from codegen.program import KernelCall, Program, compile_program
from symgraph.errors import CompileError

pytestmark = pytest.mark.jit
TRANS = list(itertools.product([False, True], [False, True]))


def _case(M, N, K, ta, tb, dtype, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
    return a, b, (a.T if ta else a) @ (b.T if tb else b)


def _tol(dtype, K):
    return (2e-5 if dtype == "float32" else 1e-12) * np.sqrt(K) * 4


@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (7, 13, 5), (17, 33, 19), (32, 26, 64),
                                   (17, 3, 33), (100, 10, 64), (3, 16, 16), (9, 48, 40)])
def test_plain_matmul(M, N, K, ta, tb, dtype):
    a, b, want = _case(M, N, K, ta, tb, dtype)
    k = matmul_kernel(M, N, K, ta, tb, dtype)
    got = run_kernel(k, {"a": a, "b": b, "c": np.zeros((M, N), dtype)})["c"]
    np.testing.assert_allclose(got, want, rtol=_tol(dtype, K), atol=_tol(dtype, K))


@settings(max_examples=8, deadline=None)
@given(M=st.integers(1, 40), N=st.integers(1, 70), K=st.integers(1, 50),
       t=st.sampled_from(TRANS), dtype=st.sampled_from(["float32", "float64"]))
def test_random_shapes_bias_relu(M, N, K, t, dtype):
    a, b, mm = _case(M, N, K, *t, dtype)
    bias = np.linspace(-1, 1, N).astype(dtype)
    k = matmul_kernel(M, N, K, *t, dtype, bias="col", epilogue=lambda m, x: m.maximum(x, 0))
    got = run_kernel(k, {"a": a, "b": b, "bias": bias, "c": np.zeros((M, N), dtype)})["c"]
    tol = _tol(dtype, K)
    np.testing.assert_allclose(got, np.maximum(mm + bias, 0), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_accumulate_row_bias_and_extra_input(dtype):
    M, N, K = 11, 19, 23
    a, b, mm = _case(M, N, K, True, False, dtype)
    y = np.random.default_rng(5).standard_normal((M, N)).astype(dtype)
    c0 = np.ones((M, N), dtype)
    bias = np.arange(M, dtype=dtype)
    k = matmul_kernel(M, N, K, True, False, dtype, bias="row", accumulate=True, n_extra=1,
                      epilogue=lambda m, acc, yy: m.select(yy > 0, acc, 0))
    got = run_kernel(k, {"a": a, "b": b, "bias": bias, "e0": y, "c": c0.copy()})["c"]
    want = np.where(y > 0, mm + bias[:, None] + c0, 0)
    np.testing.assert_allclose(got, want, rtol=_tol(dtype, K), atol=_tol(dtype, K))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("M,N,K", [(13, 37, 21), (2, 8, 70)])
def test_packed_b_with_bias_accumulate_and_extras(M, N, K, dtype):
    """trans_b packs B into a padded panel; the epilogue must still see only real columns."""
    a, b, mm = _case(M, N, K, False, True, dtype, seed=7)
    rng = np.random.default_rng(8)
    e0, e1 = (rng.standard_normal((M, N)).astype(dtype) for _ in range(2))
    c0 = rng.standard_normal((M, N)).astype(dtype)
    bias = np.linspace(-2, 2, N).astype(dtype)
    k = matmul_kernel(M, N, K, False, True, dtype, bias="col", accumulate=True, n_extra=2,
                      epilogue=lambda m, acc, x, y: m.select(x > 0, acc * y, acc))
    arrays = {"a": a, "b": b, "bias": bias, "e0": e0, "e1": e1, "c": c0.copy()}
    got = run_kernel(k, arrays)["c"]
    acc = mm + bias + c0
    want = np.where(e0 > 0, acc * e1, acc)
    np.testing.assert_allclose(got, want, rtol=_tol(dtype, K), atol=_tol(dtype, K))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_packed_b_is_repacked_on_every_call(dtype):
    """Two calls share one scratch panel: the second must not reuse the first's B."""
    M, N, K = 5, 20, 18
    k = matmul_kernel(M, N, K, False, True, dtype)
    assert k.params[-1].name == "scratch_pack" and k.pack >= K * N
    cases = [_case(M, N, K, False, True, dtype, seed=s) for s in (1, 2)]
    parts = [x for a, b, _ in cases for x in (a, b, np.zeros((M, N), dtype))]
    parts.append(np.full(k.pack, np.nan, dtype))
    offsets = np.cumsum([0] + [x.nbytes for x in parts])
    arena = np.concatenate([x.ravel() for x in parts]).view(np.uint8)
    calls = [KernelCall(k, tuple(int(o) for o in offsets[3 * i:3 * i + 3])
                        + (int(offsets[6]),)) for i in (0, 1)]
    compile_program(Program((k,), arena.nbytes, {"run": calls})).run_array("run", arena)
    for i, (_, _, want) in enumerate(cases):
        got = arena[offsets[3 * i + 2]:offsets[3 * i + 3]].view(dtype).reshape(M, N)
        np.testing.assert_allclose(got, want, rtol=_tol(dtype, K), atol=_tol(dtype, K))


def test_generated_code_has_no_mutable_globals():
    """Executors of one graph share one library and may run in two threads: every
    buffer the code writes must come from its caller (the pack panel is a parameter)."""
    from llvmlite import ir

    from codegen.program import build_module

    kernels = [matmul_kernel(32, 26, 64, False, True), matmul_kernel(13, 37, 21, False, True),
               matmul_kernel(9, 8, 7, True, False, a_sums="write")]
    for k in kernels:
        size = sum(p.size * 8 for p in k.params) + 64 * len(k.params)
        offsets = tuple(64 * i * (size // 64 // len(k.params)) for i in range(len(k.params)))
        module = build_module(Program((k,), size, {"run": [KernelCall(k, offsets)]}), "g")
        assert not [g for g in module.global_values
                    if isinstance(g, ir.GlobalVariable) and not g.global_constant], k.dump()


def test_names_are_content_hashes():
    k1, k2 = matmul_kernel(3, 4, 5), matmul_kernel(3, 4, 5)
    k3 = matmul_kernel(3, 4, 5, epilogue=lambda m, x: m.maximum(x, 0))
    assert k1.name == k2.name != k3.name and k1.name.startswith("k_")
    assert "maximum" not in k3.dump() and "max(acc, 0.0f)" in k3.dump()


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (64, 16, 32), (26, 64, 32), (128, 20, 100),
                                   (10, 64, 100), (7, 5, 3), (70, 9, 17), (33, 12, 40)])
def test_a_sums_are_row_sums_of_op_a(M, N, K, ta, dtype):
    """FullyConnected's dW = dY^T @ X with db = sum_batch dY from the same kernel."""
    a, b, want = _case(M, N, K, ta, False, dtype, seed=M + K)
    k = matmul_kernel(M, N, K, ta, False, dtype, a_sums="write")
    assert [p.name for p in k.params] == ["a", "b", "c", "asum"]
    got = run_kernel(k, {"a": a, "b": b, "c": np.zeros((M, N), dtype),
                         "asum": np.full(M, np.nan, dtype)})
    tol = _tol(dtype, K)
    np.testing.assert_allclose(got["c"], want, rtol=tol, atol=tol)
    np.testing.assert_allclose(got["asum"], (a.T if ta else a).sum(axis=1), rtol=tol, atol=tol)


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_sums_add_with_bias_accumulate_epilogue_and_packed_b(ta, dtype):
    """"add" accumulates into asum; bias, accumulate, extras and the epilogue only
    concern C, and asum follows c so the other buffers keep their positions (only the
    working memory of the pack panel comes after it)."""
    M, N, K = 37, 21, 29
    a, b, mm = _case(M, N, K, ta, True, dtype, seed=3)
    y = np.random.default_rng(6).standard_normal((M, N)).astype(dtype)
    bias, c0, s0 = np.arange(N, dtype=dtype), np.ones((M, N), dtype), np.arange(M, dtype=dtype)
    k = matmul_kernel(M, N, K, ta, True, dtype, bias="col", accumulate=True, n_extra=1,
                      epilogue=lambda m, acc, yy: m.select(yy > 0, acc, 0), a_sums="add")
    names = [p.name for p in k.params]
    assert names[:6] == ["a", "b", "bias", "e0", "c", "asum"] and names[6:] in (
        [], ["scratch_pack"])
    got = run_kernel(k, {"a": a, "b": b, "bias": bias, "e0": y, "c": c0, "asum": s0.copy()})
    tol = _tol(dtype, K)
    np.testing.assert_allclose(got["c"], np.where(y > 0, mm + bias + c0, 0), rtol=tol, atol=tol)
    np.testing.assert_allclose(got["asum"], s0 + (a.T if ta else a).sum(axis=1), rtol=tol,
                               atol=tol)


def test_a_sums_default_keeps_the_kernel_and_its_name():
    plain = matmul_kernel(9, 8, 7, True, False, "float32")
    assert plain.a_sums == "none" and [p.name for p in plain.params] == ["a", "b", "c"]
    assert "asum" not in plain.canonical()
    assert matmul_kernel(9, 8, 7, True, False, "float32", a_sums="write").name != plain.name
    with pytest.raises(CompileError, match="a_sums"):
        matmul_kernel(9, 8, 7, a_sums=True)


def test_dot_kernel_is_chosen_only_for_narrow_a_times_b_transposed():
    assert dot_pays(100, 10, 64, False, True, 16) and dot_pays(100, 3, 70, False, True, 8)
    assert dot_pays(32, 20, 64, False, True, 16) and dot_pays(32, 10, 200, False, True, 8)
    assert not dot_pays(32, 26, 64, False, True, 16)  # 26 of 32 lanes: no gain
    assert not dot_pays(32, 28, 6400, False, True, 16)  # accumulators would spill
    assert not dot_pays(32, 10, 16, False, True, 16)  # one K vector: the tree dominates
    assert not dot_pays(100, 10, 64, True, True, 16)  # A not K-contiguous
    assert not dot_pays(100, 10, 64, False, False, 16)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("M,N,K", [(100, 10, 64), (7, 10, 64), (100, 3, 70), (33, 8, 64),
                                   (5, 1, 200), (1, 4, 33), (19, 6, 784), (32, 20, 64),
                                   (9, 17, 70)])
@pytest.mark.parametrize("bias", ["none", "col", "row"])
def test_dot_kernel_with_bias_and_k_tail(M, N, K, dtype, bias):
    assert dot_pays(M, N, K, False, True, 16) or dtype == "float64"
    a, b, want = _case(M, N, K, False, True, dtype, seed=N * K)
    arrays = {"a": a, "b": b, "c": np.zeros((M, N), dtype)}
    if bias != "none":
        arrays["bias"] = np.linspace(-2, 2, N if bias == "col" else M).astype(dtype)
        want = want + (arrays["bias"] if bias == "col" else arrays["bias"][:, None])
    k = matmul_kernel(M, N, K, False, True, dtype, bias=bias)
    got = run_kernel(k, arrays)["c"]
    np.testing.assert_allclose(got, want, rtol=_tol(dtype, K), atol=_tol(dtype, K))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("N", [7, 19])
def test_dot_kernel_accumulate_epilogue_extras_and_a_sums(dtype, N):
    M, K = 43, 96
    a, b, mm = _case(M, N, K, False, True, dtype, seed=9)
    y = np.random.default_rng(7).standard_normal((M, N)).astype(dtype)
    c0 = np.full((M, N), 0.5, dtype)
    k = matmul_kernel(M, N, K, False, True, dtype, accumulate=True, n_extra=1,
                      epilogue=lambda m, acc, yy: m.select(yy > 0, acc, yy), a_sums="write")
    got = run_kernel(k, {"a": a, "b": b, "e0": y, "c": c0, "asum": np.zeros(M, dtype)})
    tol = _tol(dtype, K)
    np.testing.assert_allclose(got["c"], np.where(y > 0, mm + c0, y), rtol=tol, atol=tol)
    np.testing.assert_allclose(got["asum"], a.sum(axis=1), rtol=tol, atol=tol)


# ---- lane tiles: W rows of C at a time, one row per lane --------------------------------
def test_lane_kernel_is_chosen_where_rows_fill_lanes_better_than_columns():
    def path(M, N, K, ta=False, tb=True, **kw):
        return matmul_path(matmul_kernel(M, N, K, ta, tb, "float32", **kw), 16)

    assert path(32, 26, 64) == "lanes"  # letter fc2: 26 of 32 lanes vs all 32 rows
    assert path(100, 10, 64) == "dot"  # packing seven A^T blocks costs more than it saves
    assert path(100, 10, 64, softmax=True) == "lanes"  # its softmax needs no transposes in
    assert path(20, 26, 64) == "rows"  # 20 rows fill their two vectors no better
    assert path(32, 29, 64) == "rows"  # 29 accumulators do not fit the registers
    assert path(32, 26, 64, ta=True) == "rows" and path(32, 26, 64, tb=False) == "rows"
    assert path(32, 26, 64, n_extra=1, epilogue=lambda m, acc, e: acc * e) == "rows"
    assert path(32, 26, 64, accumulate=True) == "rows"


def _rows_path_result(a, b, dtype, **kw):
    """The same product by the row micro-kernel (B given untransposed), which accumulates
    every element in the same order: the lane kernel must match it bit for bit."""
    M, K = a.shape
    k = matmul_kernel(M, b.shape[0], K, False, False, dtype, **kw)
    arrays = {"a": a, "b": np.ascontiguousarray(b.T), "c": np.zeros((M, b.shape[0]), dtype)}
    if "bias" in kw:
        arrays["bias"] = _BIAS[kw["bias"]](M, b.shape[0], dtype)
    return run_kernel(k, arrays)["c"]


_BIAS = {"col": lambda M, N, dtype: np.linspace(-2, 2, N).astype(dtype),
         "row": lambda M, N, dtype: np.linspace(-1, 3, M).astype(dtype)}


LANE_CASES = [(32, 26, 64), (16, 28, 70), (31, 26, 40), (16, 13, 64), (8, 10, 64)]


def _require_lanes(k, dtype):
    """The cost model decides per host (lane count, dtype) whether the lane kernel runs;
    where it would never run, there is nothing of it to check on this host."""
    path = matmul_path(k, jit.host().lanes(dtype))
    if path != "lanes":
        pytest.skip(f"the cost model picks {path!r} here on {jit.host().lanes(dtype)} lanes")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lane_kernel_is_exercised_on_this_host(dtype):
    """At least two of the lane-kernel cases take the lane path on this host, so the
    skips above never leave the kernel untested."""
    w = jit.host().lanes(dtype)
    taken = [c for c in LANE_CASES
             if matmul_path(matmul_kernel(*c, False, True, dtype), w) == "lanes"]
    assert len(taken) >= 2, (w, taken)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("M,N,K", LANE_CASES)
@pytest.mark.parametrize("bias", ["none", "col", "row"])
@pytest.mark.parametrize("relu", [False, True])
def test_lane_kernel_matches_numpy_and_the_row_kernel(M, N, K, dtype, bias, relu):
    kw = {} if bias == "none" else {"bias": bias}
    if relu:
        kw["epilogue"] = lambda m, acc: m.maximum(acc, 0.0)
    k = matmul_kernel(M, N, K, False, True, dtype, **kw)
    _require_lanes(k, dtype)
    a, b, want = _case(M, N, K, False, True, dtype, seed=M + N)
    arrays = {"a": a, "b": b, "c": np.full((M, N), np.nan, dtype)}
    if bias != "none":
        arrays["bias"] = _BIAS[bias](M, N, dtype)
        want = want + (arrays["bias"] if bias == "col" else arrays["bias"][:, None])
    got = run_kernel(k, arrays)["c"]
    want = np.maximum(want, 0) if relu else want
    np.testing.assert_allclose(got, want, rtol=_tol(dtype, K), atol=_tol(dtype, K))
    np.testing.assert_array_equal(got, _rows_path_result(a, b, dtype, **kw))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("M,N,K", [(100, 10, 64), (40, 20, 3), (64, 13, 33), (48, 1, 17),
                                   (45, 26, 19)])
def test_lane_kernel_softmax_epilogue(M, N, K, dtype):
    if not softmax_fits(N, jit.host().lanes(dtype)):
        pytest.skip(f"a row of {N} does not fit one register tile on this host")
    k = matmul_kernel(M, N, K, False, True, dtype, bias="col", softmax=True)
    _require_lanes(k, dtype)
    a, b, logits = _case(M, N, K, False, True, dtype, seed=K)
    bias = _BIAS["col"](M, N, dtype)
    got = run_kernel(k, {"a": a, "b": b, "bias": bias, "c": np.full((M, N), np.nan, dtype)})
    e = np.exp(logits + bias - (logits + bias).max(axis=1, keepdims=True))
    tol = 2e-6 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(got["c"], e / e.sum(axis=1, keepdims=True), rtol=tol * 10,
                               atol=tol)
    np.testing.assert_array_equal(got["c"], _rows_path_result(a, b, dtype, bias="col",
                                                              softmax=True))


@pytest.mark.parametrize("M,N,K,tb,dtype", [(13, 70, 9000, False, "float32"),
                                            (9, 40, 9000, True, "float32"),
                                            (7, 20, 9000, False, "float64")])
def test_k_blocks_give_the_bytes_of_one_pass(M, N, K, tb, dtype, monkeypatch):
    """Long K is blocked (the partial sums wait in C); every element still accumulates
    k = 0, 1, ... in order, so the result is bitwise the one-pass kernel's."""
    from codegen.kernels import matmul as MM

    def build():
        return matmul_kernel(M, N, K, False, tb, dtype, bias="col",
                             epilogue=lambda m, x: m.maximum(x, 0))

    a, b, bias = _case(M, N, K, False, tb, dtype)[:2] + (
        np.random.default_rng(5).standard_normal(N).astype(dtype),)
    blocked = build()
    assert blocked.k_block == MM.K_BLOCK
    got = run_kernel(blocked, {"a": a, "b": b, "bias": bias, "c": np.zeros(M * N, dtype)})
    monkeypatch.setattr(MM, "K_BLOCK_BYTES", 1 << 40)
    one_pass = build()
    assert one_pass.k_block == 0 and one_pass.name != blocked.name
    ref = run_kernel(one_pass, {"a": a, "b": b, "bias": bias, "c": np.zeros(M * N, dtype)},
                     name="onepass")
    assert np.array_equal(got["c"], ref["c"])
    full = a.reshape(M, K).astype(np.float64) @ (b.reshape(N, K).T if tb else b.reshape(K, N))
    np.testing.assert_allclose(got["c"].reshape(M, N), np.maximum(full + bias, 0),
                               rtol=1e-4, atol=1e-3)
