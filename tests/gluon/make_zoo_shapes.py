"""Write the full-width model-zoo reference of MXNet 1.9.1: every ``get_model`` name's
parameters (MXNet's parameter name, the structural key ``save_parameters`` writes, shape).

A developer tool, run once with an MXNet virtual environment (never a dependency):

    /work/mxvenv/bin/python tests/gluon/make_zoo_shapes.py

Shapes come from MXNet's symbolic ``infer_shape`` on an ImageNet-sized batch of one
(299x299 for Inception v3, 224x224 otherwise), which fills the deferred shapes without
running the network.  Output: ``data/zoo_shapes.json.gz``, name -> {"input": [N, C, H, W],
"params": [[name, structural key, shape], ...]} in MXNet's collect_params order.
"""

from __future__ import annotations

import gzip
import json
import os

os.environ.setdefault("MXNET_STORAGE_FALLBACK_LOG_VERBOSE", "0")
import mxnet as mx  # noqa: E402
from mxnet.gluon.model_zoo import vision  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data", "zoo_shapes.json.gz")

NAMES = ["resnet18_v1", "resnet34_v1", "resnet50_v1", "resnet101_v1", "resnet152_v1",
         "resnet18_v2", "resnet34_v2", "resnet50_v2", "resnet101_v2", "resnet152_v2",
         "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
         "alexnet", "densenet121", "densenet161", "densenet169", "densenet201",
         "squeezenet1.0", "squeezenet1.1", "inceptionv3",
         "mobilenet1.0", "mobilenet0.75", "mobilenet0.5", "mobilenet0.25",
         "mobilenetv2_1.0", "mobilenetv2_0.75", "mobilenetv2_0.5", "mobilenetv2_0.25"]


def describe(name):
    side = 299 if name == "inceptionv3" else 224
    with mx.name.NameManager():  # fresh counters: every net is <family>0_
        net = vision.get_model(name)
    net.initialize()
    net.infer_shape(mx.nd.zeros((1, 3, side, side)))
    structural = {id(p): key for key, p in net._collect_params_with_prefix().items()}
    params = [[p.name, structural[id(p)], list(p.shape)]
              for p in net.collect_params().values()]
    return {"input": [1, 3, side, side], "params": params}


def main():
    table = {name: describe(name) for name in NAMES}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    text = json.dumps(table, separators=(",", ":")).encode()
    with open(OUT, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as z:
        z.write(text)  # mtime 0: the same tables give the same bytes
    print(f"{OUT}: {len(table)} models, "
          f"{sum(len(v['params']) for v in table.values())} parameters")


if __name__ == "__main__":
    main()
