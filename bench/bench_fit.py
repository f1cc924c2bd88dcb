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
from bench.bench_steps import mlp, numpy_step  # noqa: E402
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
    native = native_us_per_batch(mod)
    print(f"\nfit: {per_batch:.1f} us per batch in total, {native:.1f} us of it in the two "
          f"native calls (forward+backward, update): Python overhead {per_batch - native:.1f} "
          "us per batch (iterator, copies, metric, bookkeeping)")


def native_us_per_batch(mod):
    """Median time of the native calls fit makes per batch, called straight from ctypes."""
    bound = mod._bound
    step = bound.exe._compiled.program.function("forward_backward")
    address = bound.exe._arena.ctypes.data
    fused = bound.fused
    update, table = fused._fn, fused._table_address

    def both():
        step(address)
        update(table)
    times = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(2000):
            both()
        times.append((time.perf_counter() - start) / 2000 * 1e6)
    return statistics.median(times)


if __name__ == "__main__":
    main()
