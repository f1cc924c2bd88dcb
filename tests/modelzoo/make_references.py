"""Make the model-zoo reference cases with MXNet 1.9.1 (a developer tool, never a dependency).

Run it with an MXNet virtual environment, outside the project's own:

    python3 -m venv /work/mxvenv && /work/mxvenv/bin/pip install mxnet==1.9.1 numpy==1.23.5
    /work/mxvenv/bin/python tests/modelzoo/make_references.py [name ...]

Every case is ``vision.get_model(name, classes=CLASSES)`` from MXNet's Gluon model zoo, built
while ``nn.Conv2D``/``nn.Dense``/``nn.BatchNorm`` divide every width by a per-model divisor
(the model-zoo code itself is untouched: the same blocks, strides, pools and concatenations,
only narrower, so the files stay a few hundred KB), on the smallest square input the
architecture accepts.  The parameters come from a fixed seed; BatchNorm's gamma and beta are
drawn at random too, and its moving statistics are then calibrated by training-mode
forwards on other random batches, so inference is not an identity and no ReLU is dead.

Per case, ``data/<name>/`` holds ``model-symbol.json`` and ``model-0000.params`` as
``export()`` writes them, and ``reference.nd`` (MXNet's ``nd.save`` format):

* ``data`` (stored as float16: its values are float16-exact) and ``head``, fixed random
  weights ``w`` of the output;
* ``infer_out``: the output in inference mode (moving statistics), ``infer_grad``: the
  gradient of ``sum(out * w)`` with respect to ``data`` in inference mode (only for inputs
  of at most SMALL_INPUT values: the three models whose fixed final pools need 200+ pixel
  inputs would double their files);
* ``train_out`` and ``train_grad``: the same under ``autograd.record(train_mode=True)``
  (batch statistics), with every Dropout's rate set to 0 (for ``infer_grad`` too),
  because MXNet's random masks cannot be reproduced (the test zeroes ``p`` in the symbol
  file the same way);
* ``train_grad_rounding``: max |float32 - float64| / max |float64| of MXNet's own training
  gradient (the float32 rounding of this case; narrow deep nets are ill-conditioned);
* ``aux_after:<name>``: every BatchNorm moving statistic after that one training step
  (forward and backward: MXNet's CPU BatchNorm updates them in backward).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

os.environ.setdefault("MXNET_STORAGE_FALLBACK_LOG_VERBOSE", "0")
os.environ.setdefault("MXNET_MKLDNN_ENABLED", "0")  # plain reference kernels (oneDNN fails on
import mxnet as mx  # noqa: E402  - densenet's 1-channel input with "could not construct a sub-memory")
from mxnet import autograd, gluon  # noqa: E402
from mxnet.gluon.model_zoo import vision  # noqa: E402
from narrowing import CASES, CLASSES, narrow  # noqa: E402  - beside this script

HERE = os.path.dirname(os.path.abspath(__file__))
SMALL_INPUT = 24576  # inference-mode input gradients are kept only up to this many values
def build(name: str, divisor: int):
    mx.random.seed(11)
    with narrow(gluon.nn, divisor):
        net = vision.get_model(name, classes=CLASSES)
    net.initialize(mx.init.Xavier(rnd_type="gaussian", magnitude=2))
    return net


def smallest_side(net, batch, channels, start):
    """The smallest square input the architecture accepts (fixed windows such as
    DenseNet's 7x7 or Inception's 8x8 final pools set it)."""
    for side in range(start, 400):
        try:
            with mx.autograd.pause():
                net(mx.nd.zeros((batch, channels, side, side)))
            return side
        except mx.base.MXNetError:
            continue
    raise RuntimeError("no input size up to 400 works")


def randomize_batchnorm(net, rng):
    for pname, param in net.collect_params().items():
        shape = param.shape
        if pname.endswith("gamma") or pname.endswith("running_var"):
            param.set_data(mx.nd.array(rng.uniform(0.5, 1.5, shape).astype(np.float32)))
        elif pname.endswith("beta") or pname.endswith("running_mean"):
            param.set_data(mx.nd.array((0.2 * rng.standard_normal(shape)).astype(np.float32)))


def calibrate(net, batch, rng, steps=150):
    """Move the moving statistics close to real batch statistics (as after training), so
    that inference neither saturates nor kills a narrow ReLU network: training-mode
    steps on other random batches (momentum 0.9: 0.9**150 of the start remains).  MXNet's
    CPU BatchNorm updates them in backward, hence the backward."""
    for _ in range(steps):
        with autograd.record(train_mode=True):
            out = net(mx.nd.array(rng.standard_normal(batch.shape).astype(np.float32)))
        out.backward()


def run(net, data, head, train: bool):
    x = data.copy()
    x.attach_grad()
    with autograd.record(train_mode=train):
        out = net(x)
        loss = (out * head).sum()
    loss.backward()
    return out.asnumpy(), x.grad.asnumpy()


def make_case(name: str) -> dict:
    divisor, batch, channels, start = CASES[name]
    net = build(name, divisor)
    side = smallest_side(net, batch, channels, start)
    rng = np.random.default_rng(7)
    randomize_batchnorm(net, rng)
    data_np = rng.standard_normal((batch, channels, side, side)).astype(np.float16)
    calibrate(net, data_np, rng)
    data = mx.nd.array(data_np.astype(np.float32))
    net.hybridize(static_alloc=False)
    out = net(data)
    head = mx.nd.array(rng.standard_normal(out.shape).astype(np.float32))
    folder = os.path.join(HERE, "data", name)
    os.makedirs(folder, exist_ok=True)
    net.export(os.path.join(folder, "model"), epoch=0)
    with autograd.predict_mode():
        infer_out = net(data).asnumpy()
    for block in _blocks(net, gluon.nn.Dropout):
        block._rate = 0.0
    infer_grad = _inference_gradient(net, data, head, infer_out)
    train_out, train_grad = run(net, data, head, train=True)
    aux_after = {pname: param.data().copy() for pname, param in net.collect_params().items()
                 if pname.endswith("running_mean") or pname.endswith("running_var")}
    rounding = conditioning(net, data, head, train_grad)
    arrays = {"data": mx.nd.array(data_np, dtype="float16"), "head": head,
              "infer_out": mx.nd.array(infer_out),
              "train_out": mx.nd.array(train_out), "train_grad": mx.nd.array(train_grad)}
    if data_np.size <= SMALL_INPUT:
        arrays["infer_grad"] = mx.nd.array(infer_grad)
    arrays["train_grad_rounding"] = mx.nd.array([rounding], dtype="float64")
    for pname, value in aux_after.items():
        arrays[f"aux_after:{pname}"] = value
    mx.nd.save(os.path.join(folder, "reference.nd"), arrays)
    return {"name": name, "input": [batch, channels, side, side], "divisor": divisor,
            "params": sum(int(np.prod(p.shape)) for p in net.collect_params().values()),
            "ops": sorted({n["op"] for n in _nodes(folder)})}


def conditioning(net, data, head, grad32) -> float:
    """How far MXNet's float32 training gradient is from its own float64 one (relative to
    the largest value): the float32 rounding the test must allow (casts ``net``: call it
    last)."""
    net.cast("float64")
    net.hybridize(static_alloc=False)
    _, grad64 = run(net, data.astype("float64"), head.astype("float64"), train=True)
    error = float(np.abs(grad64 - grad32).max() / np.abs(grad64).max())
    print(f"conditioning: float32 vs float64 training gradient {error:.2g}", file=sys.stderr)
    return error


def _inference_gradient(net, data, head, infer_out):
    """The input gradient of the inference function.  MXNet's BatchNorm backward after an
    inference-mode forward reads batch statistics that forward never wrote (it returns
    1e-10 to 1e20 or NaN), so it is taken in training mode with ``use_global_stats``:
    the same function (checked against ``infer_out``) with a correct backward."""
    norms = list(_blocks(net, gluon.nn.BatchNorm))
    for block in norms:
        block._kwargs["use_global_stats"] = True
    net.hybridize(static_alloc=False)  # rebuild the cached graph with the new attributes
    out, grad = run(net, data, head, train=True)
    np.testing.assert_allclose(out, infer_out, rtol=1e-5, atol=1e-5 * np.abs(out).max())
    for block in norms:
        block._kwargs["use_global_stats"] = False
    net.hybridize(static_alloc=False)
    return grad


def _blocks(block, kind):
    if isinstance(block, kind):
        yield block
    for child in block._children.values():
        yield from _blocks(child, kind)


def _nodes(folder):
    with open(os.path.join(folder, "model-symbol.json")) as f:
        return json.load(f)["nodes"]


def main(names):
    for name in names or CASES:
        print(json.dumps(make_case(name)))


if __name__ == "__main__":
    main(sys.argv[1:])
