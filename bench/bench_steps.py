"""Forward+backward step of the two MLPs: compiled executor vs a per-op numpy loop,
plus cold and warm (disk-cached) compile times of the training graph.

Run with one BLAS thread (the Makefile sets OPENBLAS_NUM_THREADS=1) so the comparison is
one core against one core. Medians of repeated runs, measured side by side in one process.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import symgraph as sg  # noqa: E402
from bench.bench_kernels import peak_gflops  # noqa: E402

CASES = [("letter MLP 16-64-26, batch 32", (64, 26), (32, 16)),
         ("MNIST MLP 784-128-64-10, batch 100", (128, 64, 10), (100, 784))]


def mlp(sizes):
    x = sg.sym.Variable("data")
    for i, hidden in enumerate(sizes[:-1]):
        x = sg.sym.FullyConnected(x, name=f"fc{i + 1}", num_hidden=hidden)
        x = sg.sym.Activation(x, name=f"relu{i + 1}", act_type="relu")
    x = sg.sym.FullyConnected(x, name=f"fc{len(sizes)}", num_hidden=sizes[-1])
    return sg.sym.SoftmaxOutput(x, name="softmax")


def numpy_step(params, x, label):
    """The same training step written op by op in numpy (what a plain loop does)."""
    acts, h = [x], x
    layers = len(params) // 2
    for i in range(layers):
        h = h @ params[2 * i].T + params[2 * i + 1]
        if i < layers - 1:
            h = np.maximum(h, 0)
        acts.append(h)
    e = np.exp(h - h.max(axis=1, keepdims=True))
    prob = e / e.sum(axis=1, keepdims=True)
    d = prob
    d[np.arange(len(label)), label] -= 1.0
    grads = [None] * len(params)
    for i in reversed(range(layers)):
        grads[2 * i] = d.T @ acts[i]
        grads[2 * i + 1] = d.sum(axis=0)
        if i:
            d = (d @ params[2 * i]) * (acts[i] > 0)
    return grads


def matmul_flops(sizes, shape) -> float:
    """FLOPs of the step's matmuls: forward and weight gradients of every layer, the data
    gradient of every layer but the first (the input needs none)."""
    widths = (shape[1],) + tuple(sizes)
    pairs = [a * b for a, b in zip(widths, widths[1:])]
    return 2.0 * shape[0] * (2 * sum(pairs) + sum(pairs[1:]))


def median_us(fn, repeat=7, number=200):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number * 1e6)
    return statistics.median(times)


def bound_mlp(sizes, shape):
    """The MLP bound for training (gradients of its parameters) on random data."""
    net = mlp(sizes)
    reqs = {n: "write" for n in net.list_arguments() if n not in ("data", "softmax_label")}
    exe = net.simple_bind(sg.cpu(), grad_req=reqs, data=shape)
    rng = np.random.default_rng(0)
    for name, array in exe.arg_dict.items():
        array[:] = rng.integers(0, sizes[-1], array.shape) if name == "softmax_label" else \
            rng.standard_normal(array.shape) * 0.1
    return exe, reqs


def step_row(title, sizes, shape):
    exe, reqs = bound_mlp(sizes, shape)
    params = [exe.arg_dict[n].copy() for n in reqs]
    x = exe.arg_dict["data"].copy()
    label = exe.arg_dict["softmax_label"].astype(np.int64)
    number = 2000 if shape[0] < 64 else 200
    ours = median_us(exe.forward_backward, number=number)
    theirs = median_us(lambda: numpy_step(params, x, label), number=number)
    return title, ours, theirs


def compile_time(sizes, shape, cache_dir):
    code = (
        "import time, symgraph as sg\n"
        "from bench.bench_steps import mlp\n"
        "from codegen.compiler import compile_graph\n"
        f"net = mlp({sizes!r})\n"
        "reqs = {n: 'write' for n in net.list_arguments() if n not in ('data', 'softmax_label')}\n"
        "t = time.perf_counter()\n"
        f"compile_graph(net, {{'data': {shape!r}}}, {{}}, reqs)\n"
        "print(time.perf_counter() - t)\n")
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=cache_dir, PYTHONPATH=os.getcwd())
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main():
    peak = peak_gflops()
    print("## Training step (forward+backward), compiled vs per-op numpy, one core\n")
    print("| network | compiled us | numpy loop us | speed-up | matmul FLOPs at peak us "
          "| speed-up bound |")
    print("|---|---|---|---|---|---|")
    for title, sizes, shape in CASES:
        name, ours, theirs = step_row(title, sizes, shape)
        floor = matmul_flops(sizes, shape) / peak / 1e3
        print(f"| {name} | {ours:.1f} | {theirs:.1f} | {theirs / ours:.2f}x | {floor:.1f} "
              f"| {theirs / floor:.2f}x |")
    print(f"\nbound: the numpy loop's time over the step's matmul FLOPs alone at the measured "
          f"peak of {peak:.1f} GF/s (no softmax, no bias gradients, no call)")
    print("\n## Compile time of the training graph (new process each)\n")
    print("| network | cold s | warm (cached) s |")
    print("|---|---|---|")
    for title, sizes, shape in CASES:
        with tempfile.TemporaryDirectory() as cache:
            cold = compile_time(sizes, shape, cache)
            warm = statistics.median(compile_time(sizes, shape, cache) for _ in range(3))
        print(f"| {title} | {cold:.3f} | {warm:.3f} |")


if __name__ == "__main__":
    main()
