"""Training-step time of the conv nets (issue #12's W3 and W4) in two source trees, side
by side: ``python -m bench.compare_trees OLD_TREE NEW_TREE [rounds]``.

Each round runs, for each network and thread count (1, 2), one fresh process per tree in
turn (old, new), so both see the same machine load; each process binds the network (warm
compile cache after the first round), warms up and times 10 steps of
``forward_backward`` + ``update`` through Module, as ``bench.bench_devices`` does, and
the table gives medians over the rounds (ms per step)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, os, sys, time, statistics
import symgraph as sg
from codegen import threadpool
from bench.bench_devices import lenet5, module
from runtime.cli.train import build_model
name, threads = sys.argv[1], int(sys.argv[2])
threadpool.set_num_threads(threads)
net, batch = (build_model("lenet"), 100) if name == "W3" else (lenet5(), 256)
mod, data = module(net, batch, sg.cpu(), threads)
for _ in range(3):
    mod.forward_backward(data); mod.update()
times = []
for _ in range(10):
    t = time.perf_counter()
    mod.forward_backward(data); mod.update()
    times.append((time.perf_counter() - t) * 1e3)
print(json.dumps(statistics.median(times)))
"""


def run(tree: str, name: str, threads: int) -> float:
    env = dict(os.environ, PYTHONPATH=tree, SYMGRAPH_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", CHILD, name, str(threads)], cwd=tree, env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv):
    old, new = argv[0], argv[1]
    rounds = int(argv[2]) if len(argv) > 2 else 3
    configs = [(name, t) for name in ("W3", "W4") for t in (1, 2)]
    samples = {(c, tree): [] for c in configs for tree in (old, new)}
    for _ in range(rounds):
        for config in configs:
            for tree in (old, new):
                samples[(config, tree)].append(run(tree, *config))
    print("| network | threads | before ms/step (runs) | after ms/step (runs) | speed-up |")
    print("|---|---|---|---|---|")
    for name, threads in configs:
        before = samples[((name, threads), old)]
        after = samples[((name, threads), new)]
        b, a = statistics.median(before), statistics.median(after)
        print(f"| {name} | {threads} | {b:.1f} ({', '.join(f'{x:.0f}' for x in before)}) | "
              f"{a:.1f} ({', '.join(f'{x:.0f}' for x in after)}) | {b / a:.2f}x |")


if __name__ == "__main__":
    main(sys.argv[1:])
