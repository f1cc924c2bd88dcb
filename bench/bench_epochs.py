"""fit's three paths side by side on W1 and W2 of issue 12: step by step (a ctypes call
per phase, the update's scalars and the metric in Python), one native call per step
(runtime/native_step.py) and compiled epochs (runtime/compiled_epoch.py).

Samples/s over fit's training epochs (``history`` times: the epoch loop only) and over
the whole fit including each epoch's validation pass on the test split (as issue 12's
table), medians over rounds in which the three paths alternate, so they see the same
machine load. The machine is shared: expect noise of 10-30%.

``python -m bench.bench_epochs user [rounds]``: only the second table, the
Module tutorial's own loop (forward, update_metric, backward, update) per step, step by
step against one native call per step (runtime/deferred_step.py).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import logging  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import symgraph as sg  # noqa: E402
from bench.bench_steps import mlp  # noqa: E402
from runtime import compiled_epoch, native_step  # noqa: E402
from runtime.datasets import load_letter_recognition  # noqa: E402

MODES = {"step by step": (False, False), "one native call per step": (True, False),
         "compiled epoch": (True, True)}


def letter():
    x, y = load_letter_recognition()
    x, y = x.astype(np.float32), y.astype(np.float32)
    return (x[:16000], y[:16000]), (x[16000:], y[16000:])


def mnist():
    data = sg.datasets.get_mnist()

    def split(kind):
        x = data[f"{kind}_data"]
        return (np.ascontiguousarray(x.reshape(len(x), -1)),
                data[f"{kind}_label"].astype(np.float32))
    return split("train"), split("test")


WORKLOADS = [("W1 letter MLP 16-64-26, b32, SGD 0.1", letter, (64, 26), 32, 0.1),
             ("W2 MNIST MLP 784-128-64-10, b100, SGD 0.02", mnist, (128, 64, 10), 100, 0.02)]


def fit(mode, train, test, sizes, batch, lr, epochs):
    """(epoch loop times, whole fit wall time incl. validation, final train accuracy)."""
    native_step.ENABLED, compiled_epoch.ENABLED = MODES[mode]
    np.random.seed(0)  # same shuffles and initial weights: the paths agree bitwise
    sg.random.seed(0)
    it = sg.io.NDArrayIter(*train, batch_size=batch, shuffle=True)
    val = sg.io.NDArrayIter(*test, batch_size=batch)
    mod = sg.mod.Module(mlp(sizes))
    history = []
    start = time.perf_counter()
    mod.fit(it, eval_data=val, num_epoch=epochs, optimizer="sgd",
            optimizer_params={"learning_rate": lr}, initializer=sg.init.Xavier(),
            history=history)
    wall = time.perf_counter() - start
    return [h["time"] for h in history], wall, history[-1]["train"]["accuracy"]


USER_LOOPS = {
    "tutorial: forward, update_metric, backward, update":
        ("forward", "update_metric", "backward", "update"),
    "forward_backward, update, update_metric": ("forward_backward", "update", "update_metric"),
}


def user_loop(train, sizes, batch, lr, calls):
    """The Module tutorial's own loop (no fit) on a fresh module: ``epoch(deferred)`` runs
    one epoch (``deferred`` False: the step-by-step path) and returns (seconds per step,
    train accuracy)."""
    np.random.seed(0)
    sg.random.seed(0)
    it = sg.io.NDArrayIter(*train, batch_size=batch, shuffle=True)
    mod = sg.mod.Module(mlp(sizes))
    mod.bind(data_shapes=it.provide_data, label_shapes=it.provide_label)
    mod.init_params(initializer=sg.init.Xavier())
    mod.init_optimizer(optimizer="sgd", optimizer_params=(("learning_rate", lr),))
    metric = sg.metric.create("acc")
    step = {"forward": lambda b: mod.forward(b, is_train=True),
            "forward_backward": mod.forward_backward, "backward": lambda b: mod.backward(),
            "update": lambda b: mod.update(),
            "update_metric": lambda b: mod.update_metric(metric, b.label)}
    fns = [step[c] for c in calls]
    shuffles = [np.random.get_state()]  # this module's own stream of shuffles

    def epoch(deferred):
        native_step.ENABLED = deferred
        np.random.set_state(shuffles[0])
        it.reset()
        shuffles[0] = np.random.get_state()
        metric.reset()
        start, steps = time.perf_counter(), 0
        for b in it:
            for fn in fns:
                fn(b)
            steps += 1
        return (time.perf_counter() - start) / steps, metric.get()[1]
    return epoch


def main_user_loop(rounds=7):
    """Two modules trained side by side, one epoch each in turn (same shuffles: both see
    the same batches), so the two paths see the same machine load."""
    logging.getLogger().setLevel(logging.WARNING)
    print("## The user's own loop (Module tutorial), us per step incl. the iterator: step "
          "by step vs one native call per step (forward/forward_backward deferred to "
          "update, runtime/deferred_step.py); medians over alternating epochs\n")
    print("| workload | loop | step by step us | one native call us | speed-up |")
    print("|---|---|---|---|---|")
    for name, load, sizes, batch, lr in WORKLOADS:
        train, _ = load()
        for loop, calls in USER_LOOPS.items():
            epochs = {d: user_loop(train, sizes, batch, lr, calls) for d in (False, True)}
            times, accuracy = {False: [], True: []}, {False: [], True: []}
            for _ in range(rounds):
                for deferred, epoch in epochs.items():
                    per_step, acc = epoch(deferred)
                    times[deferred].append(per_step)
                    accuracy[deferred].append(acc)
            before, after = (statistics.median(times[d][1:]) * 1e6 for d in (False, True))
            print(f"| {name} | {loop} | {before:.1f} | {after:.1f} | {before / after:.2f}x |",
                  flush=True)
            if accuracy[False] != accuracy[True]:
                print(f"(train accuracy differs between the paths: {accuracy})")
    native_step.ENABLED = True


def main(rounds=3, epochs=2):
    logging.getLogger().setLevel(logging.WARNING)
    print("## fit paths side by side (samples/s, medians over rounds in which the paths "
          "alternate; the machine is shared with other jobs, so expect 10-30% noise)\n")
    print("| workload | measure | " + " | ".join(MODES) + " | compiled / step by step |")
    print("|---" * (len(MODES) + 3) + "|")
    for name, load, sizes, batch, lr in WORKLOADS:
        train, test = load()
        fit("compiled epoch", train, test, sizes, batch, lr, 1)  # compile once, warm memo
        loops, walls = {m: [] for m in MODES}, {m: [] for m in MODES}
        accuracy = {}
        for _ in range(rounds):
            for mode in MODES:
                times, wall, acc = fit(mode, train, test, sizes, batch, lr, epochs)
                loops[mode] += times
                walls[mode].append(wall)
                accuracy[mode] = acc
        n = len(train[0])
        for measure, rate in (
                ("training epochs", {m: n / statistics.median(t) for m, t in loops.items()}),
                ("whole fit incl. validation",
                 {m: epochs * n / statistics.median(t) for m, t in walls.items()})):
            cells = " | ".join(f"{rate[m]:,.0f}" for m in MODES)
            ratio = rate["compiled epoch"] / rate["step by step"]
            print(f"| {name} | {measure} | {cells} | {ratio:.2f}x |", flush=True)
        if len(set(accuracy.values())) != 1:
            print(f"(final train accuracy differs between paths: {accuracy})")
    native_step.ENABLED = compiled_epoch.ENABLED = True


if __name__ == "__main__":
    if sys.argv[1:2] == ["user"]:  # only the user-loop table
        main_user_loop(*map(int, sys.argv[2:]))
    else:
        main(*map(int, sys.argv[1:]))
        main_user_loop()
