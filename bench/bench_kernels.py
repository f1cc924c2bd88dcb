"""Matmul GFLOP/s of our micro-kernel vs single-thread numpy, dispatch and compile times.

Run: python bench/bench_kernels.py   (sets OPENBLAS/OMP/MKL threads to 1 before numpy)
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from codegen import loop_ir as L  # noqa: E402
from codegen.kernels.builders import reduce_kernel  # noqa: E402
from codegen.kernels.matmul import matmul_kernel  # noqa: E402
from codegen.program import KernelCall, Program, compile_program  # noqa: E402

REPEAT_IN_NATIVE = 50


def shapes():
    """(label, M, N, K, trans_a, trans_b): forward X@W^T, backward dY@W and dY^T@X."""
    out = []
    for batch, sizes in ((32, (16, 64, 26)), (100, (784, 128, 64, 10))):
        for fin, fout in zip(sizes, sizes[1:]):
            tag = f"b{batch} {fin}->{fout}"
            out.append((f"{tag} fwd X@W^T", batch, fout, fin, False, True))
            out.append((f"{tag} dX=dY@W", batch, fin, fout, False, False))
            out.append((f"{tag} dW=dY^T@X", fout, fin, batch, True, False))
    return out


def median_time(fn, reps, number=1):
    """Median over ``reps`` samples of the time per call, each sample timing ``number``
    back-to-back calls so the timer's own cost is not charged to sub-microsecond calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t) / number)
    return float(np.median(times))


def bench_shape(M, N, K, ta, tb, reps):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
    c = np.zeros((M, N), np.float32)
    k = matmul_kernel(M, N, K, ta, tb, "float32")
    offs = (0, a.nbytes, a.nbytes + b.nbytes)
    offs += _scratch(k, offs[-1] + c.nbytes)  # the pack panel, after c
    arena = np.zeros(a.nbytes + b.nbytes + c.nbytes + 4 * k.pack + 64, np.uint8)
    arena[: a.nbytes] = a.view(np.uint8).ravel()
    arena[a.nbytes: a.nbytes + b.nbytes] = b.view(np.uint8).ravel()
    call = KernelCall(k, offs)
    prog = Program((k,), arena.nbytes, {"once": [call], "loop": [call] * REPEAT_IN_NATIVE})
    cp = compile_program(prog, "bench")
    addr, once = arena.ctypes.data, cp.function("once")
    number = 50 if M * N * K < 5e5 else 2
    t_once = median_time(partial(once, addr, 0), reps, number)
    t_loop = median_time(partial(cp.run, "loop", addr), max(3, reps // 10)) / REPEAT_IN_NATIVE
    opa, opb = (a.T if ta else a), (b.T if tb else b)
    t_np = median_time(partial(np.matmul, opa, opb, out=c), reps, number)
    got = arena[a.nbytes + b.nbytes:][:c.nbytes].view(np.float32).reshape(M, N)
    assert np.allclose(got, opa @ opb, rtol=1e-3, atol=1e-3), "wrong result"
    return t_once, t_loop, t_np


def _scratch(kernel, end) -> tuple:
    """The offset of a matmul's pack panel (its scratch_pack parameter) placed at ``end``
    rounded up to 64 bytes, or nothing when the kernel packs none."""
    return ((end + 63) // 64 * 64,) if kernel.pack else ()


def peak_gflops() -> float:
    """The core's measured matmul ceiling: our largest MLP kernel looped natively (it
    runs at the FMA pipes' limit), the figure the speed-up bounds below divide by."""
    M, N, K = 100, 784, 128
    _, t_loop, _ = bench_shape(M, N, K, False, False, 20)
    return 2.0 * M * N * K / t_loop / 1e9


def main():
    dispatch = empty_call_seconds()
    rows = []
    for label, M, N, K, ta, tb in shapes():
        flop = 2.0 * M * N * K
        rows.append((label, M, N, K, flop, *bench_shape(M, N, K, ta, tb, 200)))
    peak = max(flop / t_loop for *_, flop, _, t_loop, _ in rows) / 1e9
    print(f"{'shape':28s} {'M':>4} {'N':>4} {'K':>4} {'MFLOP':>7} {'ours GF/s':>9} "
          f"{'native-loop GF/s':>16} {'numpy GF/s':>10} {'ratio':>6} {'ratio-loop':>10} "
          f"{'ratio-bound':>11}")
    for label, M, N, K, flop, t_once, t_loop, t_np in rows:
        bound = t_np / (flop / (peak * 1e9) + dispatch)
        print(f"{label:28s} {M:4d} {N:4d} {K:4d} {flop / 1e6:7.3f} {flop / t_once / 1e9:9.2f} "
              f"{flop / t_loop / 1e9:16.2f} {flop / t_np / 1e9:10.2f} {t_np / t_once:6.2f} "
              f"{t_np / t_loop:10.2f} {bound:11.2f}")
    print(f"\nratio-bound: numpy's time over the best possible per call, the FLOPs at the "
          f"measured peak ({peak:.1f} GF/s) plus the {dispatch * 1e6:.2f} us call")
    bias_sums()
    compile_times()


def bias_sums():
    """dW = dY^T @ X plus db = sum_batch dY: separate reduce kernel vs the a_sums side
    output, both timed natively (REPEAT_IN_NATIVE calls per phase)."""
    print(f"\n{'dW + db':28s} {'reduce kernel us':>16} {'a_sums us':>10}")
    for label, M, N, K, ta, tb in shapes():
        if not ta:
            continue
        plain = matmul_kernel(M, N, K, ta, tb, "float32")
        fused = matmul_kernel(M, N, K, ta, tb, "float32", a_sums="write")
        red = reduce_kernel((K, M), (0,), "sum", L.BufferParam("x", "float32", K * M),
                            L.BufferParam("y", "float32", M))
        offs = [4 * o for o in (0, M * K, M * K + K * N, M * K + K * N + M * N)]
        size = offs[-1] + 4 * M
        pack = _scratch(plain, size)
        separate = [KernelCall(plain, tuple(offs[:3]) + pack), KernelCall(red, (0, offs[3]))]
        prog = Program((plain, fused, red), size + 4 * max(plain.pack, fused.pack) + 64,
                       {"separate": separate * REPEAT_IN_NATIVE,
                        "fused": [KernelCall(fused, tuple(offs) + _scratch(fused, size))]
                        * REPEAT_IN_NATIVE})
        cp = compile_program(prog, "bench_sums")
        arena = np.zeros(prog.arena_bytes, np.uint8)
        addr, reps = arena.ctypes.data, 50 if M * N * K < 1e6 else 5
        times = [median_time(partial(cp.run, ph, addr), reps) / REPEAT_IN_NATIVE
                 for ph in ("separate", "fused")]
        print(f"{label:28s} {times[0] * 1e6:16.3f} {times[1] * 1e6:10.3f}")


def empty_call_seconds() -> float:
    """Python -> native call of an empty phase, as the executor makes it."""
    cp = compile_program(Program((), 8, {"empty": []}), "empty")
    arena = np.zeros(8, np.uint8)
    seconds = median_time(partial(cp.function("empty"), arena.ctypes.data, 0), 50, 1000)
    print(f"dispatch overhead of an empty phase: {seconds * 1e6:.2f} us/call\n")
    return seconds


def compile_times():
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SYMGRAPH_CACHE_DIR"] = tmp
        k = matmul_kernel(100, 128, 784, False, True, "float32")
        prog = Program((k,), 4 * (100 * 784 + 128 * 784 + 100 * 128),
                       {"run": [KernelCall(k, (0, 4 * 100 * 784, 4 * (100 + 128) * 784))]})
        t = time.perf_counter()
        compile_program(prog, "cold")
        cold = time.perf_counter() - t
        t = time.perf_counter()
        compile_program(prog, "warm")
        warm = time.perf_counter() - t
    print(f"\ncompile 100x128x784 matmul program: cold {cold * 1e3:.1f} ms, "
          f"warm (disk cache) {warm * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
