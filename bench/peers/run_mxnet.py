"""MXNet 1.9.1 on one workload through ``mx.mod.Module`` and ``NDArrayIter`` (the same
recipe and symbols as symgraph's script); prints one JSON result line. Runs in its own
virtual environment (numpy 1.23.5), without symgraph."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    import peer_common as pc
    from symbols import BUILDERS

    args, workload = pc.parse_args(__doc__)
    split = pc.load(workload, args.quick)
    import mxnet as mx

    mx.random.seed(0)
    # bind + init is graph setup, not a compile: reported as extra, not as compile time
    setup_s, wall, cpu, accuracy = pc.fit_module(mx, BUILDERS[workload.net](mx.sym), split,
                                                 workload)
    pc.emit("mxnet", workload, split, wall, cpu, accuracy, setup_s=setup_s,
            version=mx.__version__)


if __name__ == "__main__":
    main()
