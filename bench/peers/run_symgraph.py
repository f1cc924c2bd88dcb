"""symgraph on one workload through its Module API, as a user runs it (``sg.mod.Module``,
``NDArrayIter``, ``fit`` with a validation set); prints one JSON result line.

W1-W4 reuse symgraph's own network builders (runtime/cli/train.py, bench/bench_devices.py);
ResNet-18 comes from bench/peers/symbols.py. The compile is cold when ``SYMGRAPH_CACHE_DIR``
is empty at start, warm otherwise (the driver runs round 1 on an empty folder)."""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(os.path.dirname(HERE))]


def cache_state():
    folder = os.environ.get("SYMGRAPH_CACHE_DIR")
    if not folder:
        return None
    return "warm" if os.path.isdir(folder) and os.listdir(folder) else "cold"


def build(net):
    from symbols import resnet18

    import symgraph as sg
    from bench.bench_devices import lenet5
    from runtime.cli.train import build_model

    if net == "lenet5":
        return lenet5()
    if net == "resnet18":
        return resnet18(sg.sym)
    return build_model(net)


def main():
    import peer_common as pc

    args, workload = pc.parse_args(__doc__)
    kind = cache_state()
    split = pc.load(workload, args.quick)
    import symgraph as sg

    compile_s, wall, cpu, accuracy = pc.fit_module(sg, build(workload.net), split, workload)
    pc.emit("symgraph", workload, split, wall, cpu, accuracy, compile_s, kind)


if __name__ == "__main__":
    main()
