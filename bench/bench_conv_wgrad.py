"""A convolution's weight-gradient kernel alone, summed in one C (``groups=1``, chunks
splitting its tiles) or as four partial sums (``groups=4``, chunks taking whole runs of
images), on one and two threads: the four layers of W3 (MNIST LeNet) and W4 (Fashion
LeNet-5).  Rounds interleave the variants; medians of ``ROUNDS``.

    python -m bench.bench_conv_wgrad
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from codegen import threadpool
from codegen.kernels import conv_kernels as CK
from codegen.kernels.conv_gemm import ConvGemm, _im2col, _image
from codegen.kernels.matmul import matmul_kernel
from codegen.program import KernelCall, Program, compile_program

ROUNDS = 15
#: name -> (images, channels, height, width, filters, kernel)
LAYERS = {"W3 conv1": (100, 1, 28, 28, 20, 5), "W3 conv2": (100, 20, 12, 12, 50, 5),
          "W4 conv1": (256, 1, 28, 28, 6, 5), "W4 conv2": (256, 6, 12, 12, 16, 3)}


def runner(kernel, threads):
    """A call of ``kernel`` alone on random operands in an arena of its own."""
    offsets, size = [], 0
    for p in kernel.params:
        size = (size + 63) // 64 * 64
        offsets.append(size)
        size += p.size * 4
    raw = np.random.default_rng(0).standard_normal(size // 4 + 16).astype(np.float32)
    raw = raw.view(np.uint8)
    prog = Program((kernel,), size, {"main": [KernelCall(kernel, tuple(offsets))]},
                   threads=threads)
    compiled = compile_program(prog, f"wgrad{threads}")
    return lambda: compiled.run_array("main", raw)


def variants(shape):
    n, c, h, w, f, k = shape
    conv = ConvGemm((n, c, h, w), CK.Axis(h, h - k + 1, k), CK.Axis(w, w - k + 1, k), f)
    out = {}
    for groups in (1, 4):
        for threads in (1, 2):
            with threadpool.compiling_for(threads):
                kernel = matmul_kernel(conv.filters, conv.taps, conv.plane, trans_b=True,
                                       batch=n, steps=(conv.filters * conv.plane,
                                                       _image(conv), 0),
                                       prologue=_im2col(conv, "float32"), groups=groups)
            out[(groups, threads)] = runner(kernel, threads)
    return out


def main():
    threadpool.set_num_threads(2)
    for name, shape in LAYERS.items():
        fns = variants(shape)
        times = {key: [] for key in fns}
        for _ in range(ROUNDS):
            for key, fn in fns.items():
                fn()
                start = time.perf_counter()
                fn()
                fn()
                times[key].append((time.perf_counter() - start) / 2)
        ms = {key: statistics.median(v) * 1e3 for key, v in times.items()}
        cells = "  ".join(f"groups={g} {t}t {v:.3f} ms" for (g, t), v in ms.items())
        print(f"{name}: {cells}  | 2 threads / 1: groups=1 {ms[1, 1] / ms[1, 2]:.2f}x, "
              f"groups=4 {ms[4, 1] / ms[4, 2]:.2f}x")


if __name__ == "__main__":
    main()
