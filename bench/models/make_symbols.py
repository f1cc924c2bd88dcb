"""Write the full-width Gluon model-zoo symbol files the compile benchmark loads (MXNet
1.9.1, developer tool only: ``/work/mxvenv/bin/python bench/models/make_symbols.py``).

Only the graph is exported (no parameters): compile time depends on the graph and its
shapes, and a user's file is exactly this ``export()`` output.
"""

from __future__ import annotations

import os

import mxnet as mx
from mxnet.gluon.model_zoo import vision

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = ("resnet50_v1", "mobilenet1.0")


def main():
    for name in NAMES:
        net = vision.get_model(name, classes=1000)
        net.hybridize()
        out = net(mx.sym.var("data"))
        with open(os.path.join(HERE, f"{name}-symbol.json"), "w") as f:
            f.write(out.tojson())


if __name__ == "__main__":
    main()
