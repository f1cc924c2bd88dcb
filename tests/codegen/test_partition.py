"""Which loop kernels split over chunks (codegen/partition.py), and that a split kernel
gives exactly the serial kernel's bytes, run chunk by chunk in any order."""

from __future__ import annotations

import numpy as np
import pytest

from codegen import loop_ir as L
from codegen import partition
from codegen.program import KernelCall, Program, call_chunks, compile_program

pytestmark = pytest.mark.jit
F = "float32"


def buf(name, size):
    return L.BufferParam(name, F, size)


def elementwise(n=16384, c=3):
    x, y = buf("x", n * c), buf("y", n * c)
    i, j = L.Var("i"), L.Var("j")
    idx = i * c + j
    body = L.For(i, n, L.For(j, c, L.Store(y, idx, L.Load(x, idx) * 2.0)))
    return L.make_kernel([x, y], body)


def column_blocks(rows=6, n=50, p=120):
    """im2col's layout: out[row, n, p] written along n (stride p, rows above the period)."""
    x, y = buf("x", n * p), buf("y", rows * n * p)
    r, i, q = L.Var("r"), L.Var("i"), L.Var("q")
    body = L.For(i, n, L.For(r, rows, L.For(q, p, L.Store(
        y, r * (n * p) + i * p + q, L.Load(x, i * p + q)))))
    return L.make_kernel([x, y], body)


def reduction_over_the_outer_loop(n=500, c=64):
    x, y = buf("x", n * c), buf("y", c)
    i, j = L.Var("i"), L.Var("j")
    body = L.For(i, n, L.For(j, c, L.Store(y, j, L.Load(y, j) + L.Load(x, i * c + j))))
    return L.make_kernel([x, y], body)


def overlapping_rows(n=500, c=64):
    """Row i writes c+1 elements: the last overlaps row i+1's first."""
    x, y = buf("x", n * c + 1), buf("y", n * c + 1)
    i, j = L.Var("i"), L.Var("j")
    body = L.For(i, n, L.For(j, c + 1, L.Store(y, i * c + j, L.Load(x, i * c + j) + 1.0)))
    return L.make_kernel([x, y], body)


def fill_then_scatter(n=60, c=600):
    """col2im's shape: a fill loop over every element, then a loop along n adding in."""
    x, y = buf("x", n * c), buf("y", n * c)
    z, i, j = L.Var("z"), L.Var("i"), L.Var("j")
    fill = L.For(z, n * c, L.Store(y, z, L.Const(0.0, F)))
    add = L.For(i, n, L.For(j, c, L.Store(y, i * c + j, L.Load(y, i * c + j)
                                          + L.Load(x, i * c + j))))
    return L.make_kernel([x, y], L.Block((fill, add)))


def mismatched_loops(n=64, c=600):
    """Two top-level loops that hand one element to different chunks (c vs c/2 rows)."""
    x, y = buf("x", n * c), buf("y", n * c)
    i, j, k, m = (L.Var(v) for v in "ijkm")
    first = L.For(i, n, L.For(j, c, L.Store(y, i * c + j, L.Load(x, i * c + j))))
    second = L.For(k, 2 * n, L.For(m, c // 2, L.Store(
        y, k * (c // 2) + m, L.Load(y, ((k + 1) % (2 * n)) * (c // 2) + m) + 1.0)))
    return L.make_kernel([x, y], L.Block((first, second)))


CASES = {"elementwise": (elementwise, 2), "column_blocks": (column_blocks, 2),
         "reduction": (reduction_over_the_outer_loop, 1), "overlap": (overlapping_rows, 1),
         "fill_then_scatter": (fill_then_scatter, 2), "mismatched": (mismatched_loops, 1)}


@pytest.mark.parametrize("name", sorted(CASES))
def test_which_kernels_split(name):
    make, chunks = CASES[name]
    assert partition.loop_chunks(make(), 2, {}) == chunks


def test_small_kernels_and_one_thread_stay_serial():
    assert partition.loop_chunks(elementwise(n=16), 2, {}) == 1
    assert partition.loop_chunks(fill_then_scatter(n=64), 3, {}) == 1  # 12800 vs 12600
    assert partition.loop_chunks(elementwise(), 1, {}) == 1
    assert partition.matmul_chunks(100, 500, 800, 2) == 2
    assert partition.matmul_chunks(100, 10, 20, 2) == 1
    assert partition.matmul_chunks(3, 5000, 5000, 2) == 1  # fewer rows than 2 per chunk


def test_aliases_at_another_start_keep_a_kernel_serial():
    k = elementwise()
    assert partition.loop_chunks(k, 2, {"y": ["x"], "x": ["y"]}) == 2  # in place
    assert partition.loop_chunks(k, 2, {"y": [partition.UNALIGNED]}) == 1


def _run(kernel, threads, x):
    """The kernel as a one-call program compiled for ``threads`` chunks, on x."""
    sizes = [p.size * 4 for p in kernel.params]
    offsets = [64 * (1 + sum(-(-s // 64) for s in sizes[:i])) for i in range(len(sizes))]
    arena = np.zeros(offsets[-1] + sizes[-1] + 64, dtype=np.uint8)
    first = kernel.params[0]
    arena[offsets[0]:offsets[0] + first.size * 4] = x[:first.size].view(np.uint8)
    call = KernelCall(kernel, tuple(offsets))
    prog = Program((kernel,), arena.nbytes, {"main": [call]}, threads=threads)
    assert call_chunks(call, threads) == threads
    compile_program(prog, "partition_test").run_array("main", arena)
    last = kernel.params[-1]
    return arena[offsets[-1]:offsets[-1] + last.size * 4].view(np.float32).copy()


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("name", ["elementwise", "column_blocks", "fill_then_scatter"])
def test_split_kernels_give_the_serial_bytes(name, threads):
    from codegen import threadpool

    threadpool.set_num_threads(2)
    kernel = CASES[name][0]()
    x = np.random.default_rng(0).standard_normal(kernel.params[0].size).astype(np.float32)
    serial, split = _run(kernel, 1, x), _run(kernel, threads, x)
    assert np.array_equal(serial, split)
    assert np.isfinite(split).all() and np.count_nonzero(split) > split.size // 2
