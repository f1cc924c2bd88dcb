"""FusedUpdater.step() vs the per-parameter numpy Updater, median time per training step.

Run: python bench/bench_update.py   (single-threaded numpy, float32 params)

Columns: ``numpy`` = Updater over every param; ``fused`` = FusedUpdater.step();
``per-param`` = step() with the exact per-parameter scalar path (what non-built-in
optimizers use); ``native`` = the compiled call alone, i.e. step() minus scalar work.
"deep 50x32" (100 params) shows how the scalar work scales with the parameter count.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from runtime import optim as O  # noqa: E402
from runtime.optim import fused_update as F  # noqa: E402

MODELS = {
    "letter MLP": {"fc1_weight": (64, 16), "fc1_bias": (64,), "fc2_weight": (26, 64),
                   "fc2_bias": (26,)},
    "MNIST MLP": {"fc1_weight": (128, 784), "fc1_bias": (128,), "fc2_weight": (64, 128),
                  "fc2_bias": (64,), "fc3_weight": (10, 64), "fc3_bias": (10,)},
    "deep 50x32": {f"fc{k}_{p}": (32, 32) if p == "weight" else (32,)
                   for k in range(50) for p in ("weight", "bias")},
}
OPTIMIZERS = {
    "sgd+mom+wd": lambda idx: O.SGD(learning_rate=0.1, momentum=0.9, wd=1e-4,
                                    param_idx2name=idx),
    "adam+wd": lambda idx: O.Adam(learning_rate=1e-3, wd=1e-4, param_idx2name=idx),
    "rmsprop": lambda idx: O.RMSProp(learning_rate=1e-3, param_idx2name=idx),
}
STEPS = 300


def median_us(fn, steps=STEPS) -> float:
    """Median wall time of one call in microseconds (after a short warm-up)."""
    for _ in range(10):
        fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    return float(np.median(times)) / 1e3


def params(shapes, seed=0):
    rng = np.random.default_rng(seed)
    weights = {n: rng.normal(size=s).astype(np.float32) * 0.1 for n, s in shapes.items()}
    grads = {n: rng.normal(size=s).astype(np.float32) * 0.01 for n, s in shapes.items()}
    return weights, grads


def bench_one(shapes, make):
    """(numpy, fused, per-param, native) medians in µs for one model and optimizer."""
    names = list(shapes)
    idx = dict(enumerate(names))
    weights, grads = params(shapes)
    updater = O.Updater(make(idx))

    def numpy_step():
        for i, n in enumerate(names):
            updater(i, grads[n], weights[n])

    fused = F.FusedUpdater(make(idx), *params(shapes), names)
    fused_us = median_us(fused.step)
    fused._scalars.groupable = False
    per_param_us = median_us(fused.step)
    native_us = median_us(lambda: fused._fn(fused._table_address))
    return median_us(numpy_step), fused_us, per_param_us, native_us


def main():
    head = (f"{'model':<12} {'optimizer':<11} {'params':>7} {'numpy µs':>9} {'fused µs':>9} "
            f"{'per-param':>9} {'native':>7} {'speedup':>8}")
    print(head)
    print("-" * len(head))
    for model, shapes in MODELS.items():
        count = sum(int(np.prod(s)) for s in shapes.values())
        for opt_name, make in OPTIMIZERS.items():
            ref, fused, per_param, native = bench_one(shapes, make)
            print(f"{model:<12} {opt_name:<11} {count:>7} {ref:>9.1f} {fused:>9.1f} "
                  f"{per_param:>9.1f} {native:>7.1f} {ref / fused:>7.1f}x")


if __name__ == "__main__":
    main()
