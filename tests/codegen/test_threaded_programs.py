"""Programs compiled for two threads give bitwise the results of one thread.

Every op of the op table (forward and gradients) and the matmul kernel's paths are
compiled with the size thresholds at zero, so each kernel the partition rules accept runs
split even at test sizes; chunks take whole rows of C or whole iterations of a loop, so
no value may change by a single bit."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from cg_helpers import run_kernel

import symgraph as sg
from codegen import jit, partition, threadpool
from codegen.kernels.matmul import matmul_kernel, split_columns
from codegen.program import call_chunks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ops"))
from op_table import CASES, head_grads  # noqa: E402

pytestmark = pytest.mark.jit
DIMS = (3, 5, 4)
SPLIT: dict = {}


@pytest.fixture
def split_everything(monkeypatch):
    monkeypatch.setattr(partition, "MIN_LOOP_WORK", 0)
    monkeypatch.setattr(partition, "MIN_MATMUL_WORK", 0)
    before = threadpool.num_threads()
    threadpool.set_num_threads(2)
    yield
    threadpool.set_num_threads(before)


def _results(case, sym, threads, dtype="float32"):
    wrt = set(case.differentiate())
    reqs = {n: ("write" if n in wrt else "null") for n in sym.list_arguments()}
    sg.random.seed(11)  # Dropout's masks: the same seed in both executors
    with threadpool.compiling_for(threads):
        exe = sym.simple_bind(sg.cpu(), grad_req=reqs,
                              type_dict={n: dtype for n in sym.list_arguments()},
                              **case.shapes(DIMS))
    slots = {**exe.arg_dict, **exe.aux_dict}
    for name, value in case.values(np.random.default_rng(3), DIMS).items():
        slots[name][:] = value
    outs = [o.copy() for o in exe.forward(is_train=case.is_train)]
    aux = [a.copy() for a in exe.aux_dict.values()]
    grads = []
    if exe.grad_dict:
        hgrads = head_grads(sym, [o.shape for o in outs], np.random.default_rng(4))
        heads = [hgrads.get(f"{label}_head_grad") for label in sym.list_outputs()]
        exe.backward(out_grads=heads if any(h is not None for h in heads) else None)
        grads = [exe.grad_dict[n].copy() for n in case.differentiate()]
    program = exe._compiled.program.program
    split = sum(call_chunks(c, program.threads) > 1 for calls in program.phases.values()
                for c in calls)
    return outs + aux + grads, split


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_two_threads_give_the_bytes_of_one(case, split_everything):
    sym = case.symbol()
    one, _ = _results(case, sym, 1)
    two, split = _results(case, sym, 2)
    SPLIT[case.id] = split
    assert len(one) == len(two)
    for a, b in zip(one, two):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b, equal_nan=True)


def test_most_ops_have_split_kernels():
    """Guards the test above against proving nothing: the partition must accept most op
    tables' programs (it runs after them in file order; alone it checks a sample)."""
    if len(SPLIT) < len(CASES) // 2:
        pytest.skip("run with the op-table cases above")
    assert sum(1 for v in SPLIT.values() if v) > 0.6 * len(SPLIT)


def _matmul(M, N, K, ta, tb, threads, dtype="float32", **kw):
    with threadpool.compiling_for(threads):
        k = matmul_kernel(M, N, K, ta, tb, dtype, **kw)
    rng = np.random.default_rng(M * 7 + N)
    arrays = {p.name: rng.standard_normal(p.size).astype(dtype)
              for p in k.params if not p.name.startswith("scratch")}
    return k, run_kernel(k, arrays)


MATMULS = [  # rows path, packed B^T, lanes path, dot path, A^T with sums, softmax epilogue,
    # column chunks (few rows, many column tiles) with and without a packed B^T
    dict(M=20, N=300, K=25, ta=False, tb=False, bias="row"),
    dict(M=13, N=250, K=40, ta=False, tb=True, bias="col", accumulate=True, n_extra=1),
    dict(M=9, N=130, K=21, ta=True, tb=True, a_sums="write", dtype="float64"),
    # long K in blocks, split by columns and by rows
    dict(M=12, N=200, K=4500, ta=False, tb=True, bias="col"),
    dict(M=40, N=40, K=5000, ta=False, tb=False, epilogue=lambda m, x: m.tanh(x)),
    dict(M=37, N=29, K=11, ta=False, tb=False, bias="col"),
    dict(M=41, N=70, K=23, ta=False, tb=True, accumulate=True, n_extra=1),
    dict(M=64, N=26, K=32, ta=False, tb=True),
    dict(M=100, N=10, K=64, ta=False, tb=True, bias="row"),
    dict(M=53, N=19, K=33, ta=True, tb=False, a_sums="write"),
    dict(M=45, N=10, K=30, ta=False, tb=True, bias="col", softmax=True),
    dict(M=29, N=33, K=17, ta=True, tb=True, a_sums="add",
         epilogue=lambda m, x: m.maximum(x, 0)),
    # batched (a convolution's images): forward, data gradient, summed weight gradient
    dict(M=50, N=64, K=60, ta=False, tb=False, bias="row", batch=3, steps=(0, 3840, 3200)),
    dict(M=60, N=32, K=10, ta=True, tb=False, batch=3, steps=(0, 320, 1920)),
    dict(M=50, N=120, K=16, ta=False, tb=True, batch=3, steps=(800, 1920, 0)),
    dict(M=6, N=25, K=70, ta=False, tb=True, batch=3, steps=(420, 1750, 0)),
    # summed as partial sums, chunks taking whole groups (own packed panels, dot path)
    dict(M=50, N=120, K=16, ta=False, tb=True, batch=5, steps=(800, 1920, 0), groups=4),
    dict(M=6, N=25, K=70, ta=False, tb=True, batch=4, steps=(420, 1750, 0), groups=4),
]


@pytest.mark.parametrize("spec", MATMULS, ids=lambda s: f"{s['M']}x{s['N']}x{s['K']}")
def test_split_matmul_paths_give_the_bytes_of_one_chunk(spec, split_everything):
    spec = dict(spec)
    args = [spec.pop(k) for k in ("M", "N", "K", "ta", "tb")]
    serial, one = _matmul(*args, 1, **spec)
    split, two = _matmul(*args, 2, **spec)
    assert serial.chunks == 1 and split.chunks == 2
    w = jit.host().lanes(spec.get("dtype", "float32"))
    SPLIT[f"matmul {split.name}"] = split_columns(split, w)
    for name in ("c", "asum"):
        if name in one:
            assert np.array_equal(one[name], two[name]), name


def test_some_matmuls_split_columns():
    """The column-chunk cases above did take column chunks."""
    if not any(k.startswith("matmul") for k in SPLIT):
        pytest.skip("run with the matmul cases above")
    assert sum(v for k, v in SPLIT.items() if k.startswith("matmul")) >= 3
