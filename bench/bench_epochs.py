"""fit's three paths side by side on W1 and W2 of issue 12: step by step (a ctypes call
per phase, the update's scalars and the metric in Python), one native call per step
(runtime/native_step.py) and compiled epochs (runtime/compiled_epoch.py).

Samples/s over fit's training epochs (``history`` times: the epoch loop only, no
validation pass, no compile), median over rounds in which the three paths alternate, so
they see the same machine load. The machine is shared: expect noise of 10-30%.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import logging  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

import symgraph as sg  # noqa: E402
from bench.bench_steps import mlp  # noqa: E402
from runtime import compiled_epoch, native_step  # noqa: E402
from runtime.datasets import load_letter_recognition  # noqa: E402

MODES = {"step by step": (False, False), "one native call per step": (True, False),
         "compiled epoch": (True, True)}


def letter():
    x, y = load_letter_recognition()
    return x, y.astype(np.float32)


def mnist():
    data = sg.datasets.get_mnist()
    x = data["train_data"].reshape(len(data["train_data"]), -1)
    return np.ascontiguousarray(x), data["train_label"].astype(np.float32)


WORKLOADS = [("W1 letter MLP 16-64-26, b32, SGD 0.1", letter, (64, 26), 32, 0.1),
             ("W2 MNIST MLP 784-128-64-10, b100, SGD 0.02", mnist, (128, 64, 10), 100, 0.02)]


def epoch_times(mode, x, y, sizes, batch, lr, epochs):
    native_step.ENABLED, compiled_epoch.ENABLED = MODES[mode]
    np.random.seed(0)  # same shuffles and initial weights: the paths agree bitwise
    sg.random.seed(0)
    it = sg.io.NDArrayIter(x, y, batch_size=batch, shuffle=True)
    mod = sg.mod.Module(mlp(sizes))
    history = []
    mod.fit(it, num_epoch=epochs, optimizer="sgd", optimizer_params={"learning_rate": lr},
            initializer=sg.init.Xavier(), history=history)
    return [h["time"] for h in history], history[-1]["train"]["accuracy"]


def main(rounds=3, epochs=3):
    logging.getLogger().setLevel(logging.WARNING)
    print("## fit paths, samples/s (median over rounds x epochs; shared, noisy machine)\n")
    print("| workload | " + " | ".join(MODES) + " | compiled / step by step |")
    print("|---" * (len(MODES) + 2) + "|")
    for name, load, sizes, batch, lr in WORKLOADS:
        x, y = load()
        times = {m: [] for m in MODES}
        accuracy = {}
        for _ in range(rounds):
            for mode in MODES:
                t, acc = epoch_times(mode, x, y, sizes, batch, lr, epochs)
                times[mode] += t
                accuracy[mode] = acc
        rate = {m: len(x) / statistics.median(t) for m, t in times.items()}
        cells = " | ".join(f"{rate[m]:,.0f}" for m in MODES)
        ratio = rate["compiled epoch"] / rate["step by step"]
        print(f"| {name} | {cells} | {ratio:.2f}x |", flush=True)
        if len(set(accuracy.values())) != 1:
            print(f"(final train accuracy differs between paths: {accuracy})")
    native_step.ENABLED = compiled_epoch.ENABLED = True


if __name__ == "__main__":
    main(*map(int, sys.argv[1:]))
