"""Both cores, two ways, against one: one context on one thread, one context whose kernels
split over two threads (``SYMGRAPH_NUM_THREADS=2``, codegen/threadpool.py), and
``context=[cpu(0), cpu(1)]`` (runtime/device_group.py). The training step (forward+backward
and update through Module) of the MNIST LeNet (batch 100) and of seed 000's Fashion-MNIST
LeNet-5 (batch 256), interleaved round by round, medians.

Random inputs: this measures speed only (the numbers match one context; see
tests/runtime/test_device_group.py). Also the process's CPU time per wall second, which
is about 2 when both cores work."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import logging  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import symgraph as sg  # noqa: E402
from codegen import threadpool  # noqa: E402
from runtime.cli.train import build_model  # noqa: E402

ROUNDS, STEPS = 5, 10


def lenet5():
    s = sg.sym
    x = s.Variable("data")
    for i, (filters, kernel) in enumerate(((6, 5), (16, 3)), 1):
        x = s.Activation(s.Convolution(x, kernel=(kernel, kernel), num_filter=filters,
                                       name=f"conv{i}"), act_type="relu")
        x = s.Pooling(x, pool_type="max", kernel=(2, 2), stride=(2, 2))
    x = s.Flatten(x)
    for i, units in enumerate((120, 84), 1):
        x = s.Activation(s.FullyConnected(x, num_hidden=units, name=f"fc{i}"), act_type="relu")
    return s.SoftmaxOutput(s.FullyConnected(x, num_hidden=10, name="fc3"), name="softmax")


def module(net, batch, context, threads):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, batch).astype(np.float32)
    mod = sg.mod.Module(net, context=context)
    with threadpool.compiling_for(threads):
        mod.bind(data_shapes=[("data", x.shape)], label_shapes=[("softmax_label", y.shape)])
    mod.init_params(sg.init.Xavier())
    mod.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.01})
    return mod, sg.io.DataBatch([x], [y])


def timed(mod, batch):
    """(wall ms, CPU ms) per step over STEPS steps."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(STEPS):
        mod.forward_backward(batch)
        mod.update()
    return ((time.perf_counter() - wall) * 1e3 / STEPS,
            (time.process_time() - cpu) * 1e3 / STEPS)


def main():
    logging.getLogger().setLevel(logging.WARNING)
    cases = {"MNIST LeNet 20c5-50c5-500, b100": (lambda: build_model("lenet"), 100),
             "Fashion LeNet-5 6c5-16c3-120-84, b256": (lenet5, 256)}
    threadpool.set_num_threads(2)
    runs = {"one": (sg.cpu(), 1), "threads": (sg.cpu(), 2), "two": ([sg.cpu(0), sg.cpu(1)], 1)}
    print("| network | 1 thread ms/step | 2 threads ms/step | speed-up | 2 contexts ms/step "
          "| speed-up | CPU/wall (1 thread, 2 threads, 2 contexts) |")
    print("|---|---|---|---|---|---|---|")
    for title, (build, batch) in cases.items():
        mods = {n: module(build(), batch, c, t) for n, (c, t) in runs.items()}
        for mod, data in mods.values():
            timed(mod, data)  # warm up
        samples = {n: [] for n in mods}
        for _ in range(ROUNDS):
            for name, (mod, data) in mods.items():
                samples[name].append(timed(mod, data))
        ms = {n: statistics.median(s[0] for s in samples[n]) for n in mods}
        load = {n: statistics.median(c / w for w, c in s) for n, s in samples.items()}
        print(f"| {title} | {ms['one']:.1f} | {ms['threads']:.1f} | "
              f"{ms['one'] / ms['threads']:.2f}x | {ms['two']:.1f} | {ms['one'] / ms['two']:.2f}x "
              f"| {load['one']:.2f}, {load['threads']:.2f}, {load['two']:.2f} |")


if __name__ == "__main__":
    main()
