"""Where the overlapped step's cuts fall: the time of each sub-phase of forward_backward
(runtime/overlap.py) and the bytes of the gradient bucket it completes, one process, one
thread, for the MNIST MLP and LeNet of examples/train_mnist_dist.py at batch 64 (one
rank's batch of 2 x 64).

A piece started after sub-phase k has the later sub-phases' time to travel before the
step waits for it; this is the window the 8-machine model of docs/distributed.md uses.
Medians of repeated runs.

    OPENBLAS_NUM_THREADS=1 python -m bench.bench_overlap
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import symgraph as sg  # noqa: E402
from runtime.overlap import overlapped_step  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import train_mnist_dist as models  # noqa: E402

BATCH = 64
FORCED_MIN_BYTES = 16384
CASES = [("MNIST MLP 784-128-64-10", models.mlp, (BATCH, 784)),
         ("LeNet 20/50 conv, 500 fc", models.lenet, (BATCH, 1, 28, 28))]


def measure(build, shape, repeats):
    symbol = build()
    reqs = {n: "null" if n in ("data", "softmax_label") else "write"
            for n in symbol.list_arguments()}  # as Module binds it
    exe = symbol.simple_bind(sg.cpu(), grad_req=reqs, data=shape, softmax_label=(BATCH,))
    rng = np.random.default_rng(0)
    for name, array in exe.arg_dict.items():
        array[:] = rng.integers(0, 10, array.shape) if name == "softmax_label" else \
            rng.standard_normal(array.shape).astype(array.dtype) * 0.05
    step, forced = overlapped_step(exe), False
    if step is None:  # no cut by default: show where the smallest pieces would go
        step, forced = overlapped_step(exe, min_bytes=FORCED_MIN_BYTES), True
    whole, parts = [], []
    for _ in range(repeats):
        tic = time.perf_counter()
        exe.forward_backward()
        whole.append(time.perf_counter() - tic)
        marks = [time.perf_counter()]
        exe.forward_backward_parts(step, lambda k, marks=marks: marks.append(time.perf_counter()))
        parts.append(np.diff(marks))
    return exe, step, forced, float(np.median(whole)), np.median(np.array(parts), axis=0)


def main(repeats=60):
    for title, build, shape in CASES:
        exe, step, forced, whole, parts = measure(build, shape, repeats)
        total = exe.grad_bucket.nbytes
        how = (f" (not split by default; SYMGRAPH_OVERLAP_MIN_BYTES={FORCED_MIN_BYTES})"
               if forced else "")
        print(f"{title}, batch {BATCH}: forward_backward {1e3 * whole:.2f} ms as one phase, "
              f"{1e3 * parts.sum():.2f} ms as {step.parts} sub-phases{how}")
        for k, seconds in enumerate(parts):
            nbytes = sum(p.nbytes for p in step.pieces[k])
            after = parts[k + 1:].sum()
            print(f"  sub-phase {k}: {1e3 * seconds:6.2f} ms, completes {nbytes / 1e3:7.1f} kB "
                  f"({100 * nbytes / total:4.1f}% of the bucket: {', '.join(step.names[k])}); "
                  f"{1e3 * after:.2f} ms of backward left to overlap it")


if __name__ == "__main__":
    main()
