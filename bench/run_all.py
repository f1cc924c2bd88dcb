"""`make bench`: every benchmark script in turn, one table each (medians, side by side)."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPTS = ["bench_kernels", "bench_steps", "bench_update", "bench_fit", "bench_epochs",
           "bench_threads", "bench_devices", "bench_lenet", "bench_gluon", "bench_gluon_step",
           "bench_dataloader", "bench_conv_wgrad",
           "bench_gluon_memory"]


def main():
    # one compute thread unless a benchmark compares thread counts itself (bench_devices,
    # bench_lenet), so figures stay comparable with the one-thread numpy references
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    env.setdefault("SYMGRAPH_NUM_THREADS", "1")
    env["PYTHONPATH"] = os.getcwd() + os.pathsep + env.get("PYTHONPATH", "")
    failed = []
    for name in SCRIPTS:
        print(f"\n# {name}\n", flush=True)
        code = subprocess.call([sys.executable, "-m", f"bench.{name}"], env=env)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
