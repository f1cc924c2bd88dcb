"""Memory over many traced steps (the issue's target: flat over 10,000 steps, bounded graph
cache, no leak). A small MLP trains 10,000 steps in the traced (not hybridized) loop and
10,000 hybridized, then 'churn' cycles batch sizes past the runner's executor cap
(MAX_EXECUTORS) so every step evicts and rebuilds an executor. Prints RSS after warm-up,
at the end, and the largest RSS seen (MiB), with the executor and segment cache sizes and
the number of recorded-structure trie states (runtime/ndarray/trace.py)."""

from __future__ import annotations

import os
import time

import numpy as np

from runtime.gluon import hybrid
from runtime.ndarray import runner
from runtime.ndarray import trace as T
from symgraph import autograd, gluon, nd
from symgraph.gluon import nn

STEPS, WARMUP, FEATURES, BATCH = 10_000, 200, 32, 32
CHURN_SIZES = runner.MAX_EXECUTORS + 8  # distinct batch sizes, cycled
CHURN_STEPS = 100 * CHURN_SIZES


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _model(hybridize):
    net = nn.HybridSequential()
    net.add(nn.Dense(64, activation="relu", in_units=FEATURES), nn.Dense(10, in_units=64))
    net.initialize()
    if hybridize:
        net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.05})
    return net, trainer, gluon.loss.SoftmaxCrossEntropyLoss()


def _run(hybridize, batch_of_step, steps):
    net, trainer, loss_fn = _model(hybridize)
    rng = np.random.default_rng(0)
    pool = [(rng.standard_normal((n, FEATURES)).astype(np.float32),
             rng.integers(0, 10, n).astype(np.float32))
            for n in sorted({batch_of_step(i) for i in range(steps)})]
    by_size = {len(x): (x, y) for x, y in pool}
    start_rss = peak = None
    start = time.perf_counter()
    for step in range(steps):
        x, y = by_size[batch_of_step(step)]
        with autograd.record():
            loss = loss_fn(net(nd.array(x)), nd.array(y))
        loss.backward()
        trainer.step(len(x))
        if step == WARMUP:
            float(loss.mean())
            start_rss, peak, start = rss_mib(), rss_mib(), time.perf_counter()
        elif step > WARMUP and step % 500 == 0:
            peak = max(peak, rss_mib())
    float(loss.mean())
    seconds = time.perf_counter() - start
    end = rss_mib()
    return start_rss, end, max(peak, end), seconds / (steps - WARMUP), net


def main():
    cases = [("traced, one signature", False, lambda i: BATCH, STEPS),
             ("hybridized, one signature", True, lambda i: BATCH, STEPS),
             (f"traced, {CHURN_SIZES} signatures cycled", False,
              lambda i: 1 + i % CHURN_SIZES, CHURN_STEPS),
             (f"hybridized, {CHURN_SIZES} signatures cycled", True,
              lambda i: 1 + i % CHURN_SIZES, CHURN_STEPS)]
    print(f"{'case':<36}{'steps':>7}{'start MiB':>11}{'end MiB':>9}{'peak MiB':>10}"
          f"{'ms/step':>9}{'executors':>11}{'segments':>10}{'trie':>6}")
    for name, hybridize, batch_of_step, steps in cases:
        start, end, peak, per_step, net = _run(hybridize, batch_of_step, steps)
        print(f"{name:<36}{steps:>7}{start:>11.1f}{end:>9.1f}{peak:>10.1f}"
              f"{per_step * 1e3:>9.3f}{len(runner._EXECUTORS):>11}{_segments(net):>10}"
              f"{T.TRIE.edges:>6}")
    print(f"(caps: MAX_EXECUTORS={runner.MAX_EXECUTORS}, MAX_SEGMENTS={hybrid.MAX_SEGMENTS} "
          f"per block, trie MAX_EDGES={T.MAX_EDGES})")


def _segments(net) -> int:
    """Recorded calls the net keeps: hybridized segments, or (not hybridized) the segments
    a library block records by itself."""
    auto = net.__dict__.get("_auto_segments")
    return len(net._segments) + (len(auto[1]) if auto else 0)


if __name__ == "__main__":
    main()
