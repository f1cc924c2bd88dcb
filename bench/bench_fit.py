"""Module.fit throughput on the letter MLP (batch 32) vs a plain per-op numpy training
loop of the same network, and fit's Python overhead per batch (fit time minus the time of
the native calls it makes). Medians over epochs, measured side by side in one process."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import logging  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import symgraph as sg  # noqa: E402
from bench.bench_kernels import peak_gflops  # noqa: E402
from bench.bench_steps import matmul_flops, median_us, mlp, numpy_step  # noqa: E402
from runtime.datasets import load_letter_recognition  # noqa: E402

BATCH, EPOCHS = 32, 5


def fit_epoch_times(x, y):
    it = sg.io.NDArrayIter(x, y, batch_size=BATCH, shuffle=False)
    mod = sg.mod.Module(mlp((64, 26)))
    history = []
    mod.fit(it, num_epoch=EPOCHS, optimizer="sgd", optimizer_params={"learning_rate": 0.1},
            history=history)
    return [h["time"] for h in history], mod


def numpy_epoch_time(x, y):
    rng = np.random.default_rng(0)
    params = [rng.uniform(-0.01, 0.01, s).astype(np.float32)
              for s in [(64, 16), (64,), (26, 64), (26,)]]
    labels = y.astype(np.int64)
    start = time.perf_counter()
    for begin in range(0, len(x) - BATCH + 1, BATCH):
        grads = numpy_step(params, x[begin:begin + BATCH], labels[begin:begin + BATCH])
        for p, g in zip(params, grads):
            p -= 0.1 / BATCH * g
    return time.perf_counter() - start


def main():
    logging.getLogger().setLevel(logging.WARNING)
    x, y = load_letter_recognition()
    x, y = x[:16000], y[:16000]
    fit_times, mod = fit_epoch_times(x, y)
    fit_epoch = statistics.median(fit_times[1:])
    numpy_epoch = statistics.median(numpy_epoch_time(x, y) for _ in range(3))
    batches = len(x) // BATCH
    print("## Module.fit on the letter MLP (16-64-26, batch 32, 16000 samples/epoch)\n")
    print("| loop | s/epoch | samples/s | ratio |")
    print("|---|---|---|---|")
    print(f"| symgraph Module.fit | {fit_epoch:.4f} | {len(x) / fit_epoch:,.0f} | "
          f"{numpy_epoch / fit_epoch:.1f}x |")
    print(f"| numpy per-op loop | {numpy_epoch:.4f} | {len(x) / numpy_epoch:,.0f} | 1.0x |")
    per_batch = fit_epoch / batches * 1e6
    native, update = native_us_per_batch(mod)
    print(f"\nfit: {per_batch:.1f} us per batch in total, {native:.1f} us of it in the two "
          f"native calls (forward+backward, update): Python overhead {per_batch - native:.1f} "
          "us per batch (iterator, copies, metric, bookkeeping)")
    floor = matmul_flops((64, 26), (BATCH, 16)) / peak_gflops() / 1e3 + update
    numpy_batch = numpy_epoch / batches * 1e6
    print(f"metric: Accuracy.update_dict on a batch of 128 x 10 takes {accuracy_us():.1f} us")
    print(f"bound: {floor:.1f} us per batch (the step's matmul FLOPs at the measured peak plus "
          f"the {update:.2f} us native update, no Python at all) = "
          f"{numpy_batch / floor:.1f}x the numpy loop's {numpy_batch:.1f} us")


def accuracy_us():
    """fit's per-batch metric update (a test used to assert it stays under 20 us)."""
    rng = np.random.default_rng(0)
    metric = sg.metric.Accuracy()
    labels = {"softmax_label": rng.integers(0, 10, 128).astype(np.float32)}
    preds = {"softmax_output": rng.random((128, 10), dtype=np.float32)}
    return median_us(lambda: metric.update_dict(labels, preds), number=2000)


def native_us_per_batch(mod):
    """Median times of the native calls fit makes per batch, called straight from ctypes:
    both together, and the update alone."""
    bound = mod._bound
    step = bound.exe._compiled.program.function("forward_backward")
    address, pointers = bound.exe._arena.ctypes.data, bound.exe._ext_address
    fused = bound.fused
    update, table = fused._fn, fused._table_address

    def both():
        step(address, pointers)
        update(table)
    return median_us(both, number=2000), median_us(lambda: update(table), number=2000)


if __name__ == "__main__":
    main()
