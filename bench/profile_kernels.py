"""Per-kernel time of a compiled training step: each call of the forward_backward phase is
compiled into its own phase and timed alone on the executor's arena (medians).

``python -m bench.profile_kernels [letter|mnist]`` prints one line per kernel call, so the
kernels worth optimizing are visible before and after a change.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys  # noqa: E402
from functools import partial  # noqa: E402

from bench.bench_steps import CASES, bound_mlp, median_us  # noqa: E402
from codegen.program import Program, compile_program  # noqa: E402


def profile(sizes, shape):
    exe, _ = bound_mlp(sizes, shape)
    exe.forward_backward()
    program = exe._compiled.program.program
    calls = program.phases["forward_backward"]
    phases = {f"k{i}": [c] for i, c in enumerate(calls)}
    single = compile_program(Program(program.kernels, program.arena_bytes, phases,
                                     program.externals))
    number = 2000 if shape[0] < 64 else 200
    address, pointers = exe._arena.ctypes.data, exe._ext_address
    rows = []
    for i, call in enumerate(calls):
        fn = single.function(f"k{i}")
        seconds = median_us(partial(fn, address, pointers), number=number)
        rows.append((",".join(call.node_names), seconds))
    whole = exe._compiled.program.function("forward_backward")
    return rows, median_us(partial(whole, address, pointers), number=number)


def main(argv):
    chosen = [c for c in CASES if not argv or argv[0] in c[0].lower()]
    for title, sizes, shape in chosen:
        rows, whole = profile(sizes, shape)
        print(f"## {title}: whole phase {whole:.2f} us, sum of calls "
              f"{sum(t for _, t in rows):.2f} us")
        for name, us in rows:
            print(f"  {us:8.2f} us  {name}")


if __name__ == "__main__":
    main(sys.argv[1:])
