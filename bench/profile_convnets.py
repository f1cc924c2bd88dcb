"""Per-kernel time of the conv nets' training step (issue #12's W3 MNIST LeNet, batch 100,
and W4 Fashion LeNet-5, batch 256): each call of the forward_backward phase is compiled
into its own phase and timed alone on the executor's arena (medians), like
``bench.profile_kernels`` does for the MLPs.

``python -m bench.profile_convnets [w3|w4]`` prints one line per kernel call, sorted by time.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys  # noqa: E402
from functools import partial  # noqa: E402

import numpy as np  # noqa: E402

import symgraph as sg  # noqa: E402
from bench.bench_devices import lenet5  # noqa: E402
from bench.bench_steps import median_us  # noqa: E402
from codegen import threadpool  # noqa: E402
from codegen.program import Program, compile_program  # noqa: E402
from runtime.cli.train import build_model  # noqa: E402

CASES = [("W3 MNIST LeNet 20c5-50c5-500-10, batch 100", build_model, "lenet", 100),
         ("W4 Fashion LeNet-5 6c5-16c3-120-84-10, batch 256", lambda _: lenet5(), None, 256)]


def bound(net, batch):
    reqs = {n: "write" for n in net.list_arguments() if n not in ("data", "softmax_label")}
    exe = net.simple_bind(sg.cpu(), grad_req=reqs, data=(batch, 1, 28, 28))
    rng = np.random.default_rng(0)
    for name, array in exe.arg_dict.items():
        array[:] = rng.integers(0, 10, array.shape) if name == "softmax_label" else \
            rng.standard_normal(array.shape) * 0.1
    return exe


def profile(net, batch, number=5):
    exe = bound(net, batch)
    exe.forward_backward()
    program = exe._compiled.full().program.program  # kernels with IR (a warm start has stubs)
    calls = program.phases["forward_backward"]
    phases = {f"k{i}": [c] for i, c in enumerate(calls)}
    single = compile_program(Program(program.kernels, program.arena_bytes, phases,
                                     program.externals, threads=program.threads))
    address, pointers = exe._arena.ctypes.data, exe._ext_address
    rows = []
    for i, call in enumerate(calls):
        fn = single.function(f"k{i}")
        us = median_us(partial(fn, address, pointers), repeat=5, number=number)
        rows.append((i, ",".join(call.node_names), call.kernel.name, us))
    whole = exe._compiled.program.function("forward_backward")
    return rows, median_us(partial(whole, address, pointers), repeat=5, number=number)


def main(argv):
    threads = int(os.environ.get("SYMGRAPH_NUM_THREADS", "1"))
    threadpool.set_num_threads(threads)
    for title, make, arg, batch in CASES:
        if argv and argv[0].lower() not in title.lower():
            continue
        with threadpool.compiling_for(threads):
            rows, whole = profile(make(arg), batch)
        print(f"## {title} ({threads} thread(s)): whole phase {whole / 1000:.2f} ms, sum of "
              f"calls {sum(r[3] for r in rows) / 1000:.2f} ms")
        for i, name, _kernel, us in sorted(rows, key=lambda r: -r[3]):
            print(f"  {us / 1000:8.3f} ms  #{i:<3d} {name[:90]}")


if __name__ == "__main__":
    main(sys.argv[1:])
