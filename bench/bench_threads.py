"""The thread pool's hand-off cost and scaling: one compiled kernel call, one thread
against two (codegen/threadpool.py), interleaved, medians of many calls.

* a tanh over N float32 elements (a loop kernel split along its loop), from sizes where
  the hand-off dominates to sizes where the work does;
* LeNet's and MNIST-MLP-sized matmuls (row or column chunks).

The hand-off cost is the two-thread time of the smallest case minus its one-thread time
(the thresholds in codegen/partition.py are set to 0 here so that small calls split)."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from codegen import loop_ir as L  # noqa: E402
from codegen import partition, threadpool  # noqa: E402
from codegen.kernels.builders import elementwise_kernel  # noqa: E402
from codegen.kernels.matmul import matmul_kernel  # noqa: E402
from codegen.loop_ir import BufferParam  # noqa: E402
from codegen.program import KernelCall, Program, compile_program  # noqa: E402

ROUNDS = 7


def program(kernel, threads):
    offsets, size = [], 64
    for p in kernel.params:
        offsets.append(size)
        size += -(-p.size * 4 // 64) * 64
    prog = Program((kernel,), size, {"main": [KernelCall(kernel, tuple(offsets))]},
                   threads=threads)
    arena = np.zeros(size, np.uint8)
    return compile_program(prog, "bench_threads"), arena  # the program owns the code


def per_call_us(compiled, arena, number):
    fn, address = compiled.function("main"), arena.ctypes.data
    start = time.perf_counter()
    for _ in range(number):
        fn(address, 0)
    return (time.perf_counter() - start) / number * 1e6


def tanh_kernel(n):
    x, y = BufferParam("x", "float32", n), BufferParam("y", "float32", n)
    return elementwise_kernel((n,), [(x, (n,))], lambda v: L.Un("tanh", v), [y])


def matmul(threads, M, N, K, tb):
    with threadpool.compiling_for(threads):
        return matmul_kernel(M, N, K, False, tb)


def row(title, make, number):
    """(1-thread us, 2-thread us) medians over interleaved rounds."""
    fns = {t: program(make(t), t) for t in (1, 2)}
    samples = {1: [], 2: []}
    for _ in range(ROUNDS):
        for t, (fn, arena) in fns.items():
            samples[t].append(per_call_us(fn, arena, number))
    one, two = (statistics.median(samples[t]) for t in (1, 2))
    print(f"| {title} | {one:.2f} | {two:.2f} | {one / two:.2f}x |")
    return one, two


def main():
    threadpool.set_num_threads(2)
    partition.MIN_LOOP_WORK = partition.MIN_MATMUL_WORK = 0
    print("| call | 1 thread us | 2 threads us | speed-up |")
    print("|---|---|---|---|")
    small = None
    for n in (64, 4096, 65536, 1 << 20):
        one, two = row(f"tanh over {n:,} float32", lambda t, n=n: tanh_kernel(n),
                       20000 if n <= 4096 else 200)
        small = small or (one, two)
    for M, N, K, tb in ((100, 500, 800, True), (50, 6400, 500, False), (50, 500, 6400, True)):
        row(f"matmul {M}x{N}x{K}{' B^T' if tb else ''}",
            lambda t, a=(M, N, K, tb): matmul(t, *a), 20)
    print(f"\nhand-off: {small[1] - small[0]:.2f} us per split call over one thread "
          f"(tanh over 64 elements: {small[0]:.2f} -> {small[1]:.2f} us)")


if __name__ == "__main__":
    main()
