"""The narrowed model-zoo cases, shared by the MXNet generator (``make_references.py``) and
symgraph's Gluon model-zoo test: one table and one narrowing, so the two frameworks build
exactly the same networks. No framework import here: ``narrow`` takes the ``nn`` module.
"""

from __future__ import annotations

import contextlib

CLASSES = 7  # no hidden width of any model equals it, so the classifier keeps it

#: name -> (width divisor, batch, channels, smallest input side to try).  Sides of 64
#: where 32 would leave BatchNorm one pixel of two images at the end: its training-mode
#: gradient is then so ill-conditioned that MXNet's float32 and float64 results differ by
#: up to 13%; ``conditioning`` records that gap for every case.
CASES = {
    "resnet18_v1": (16, 2, 3, 64),
    "resnet18_v2": (16, 2, 3, 64),
    "resnet50_v1": (16, 2, 3, 64),
    "mobilenet1.0": (16, 2, 3, 64),
    "mobilenet0.25": (2, 2, 3, 64),
    "mobilenetv2_1.0": (8, 2, 3, 64),
    "squeezenet1.1": (8, 1, 1, 32),
    "densenet121": (16, 1, 1, 32),
    "vgg11_bn": (32, 2, 3, 32),
    "alexnet": (32, 2, 3, 32),
    "inceptionv3": (16, 1, 1, 75),
}
DIVISORS = {name: case[0] for name, case in CASES.items()}


def _scaled(value: int, divisor: int, what: str) -> int:
    if value in (0, CLASSES):  # 0: inferred; the classifier keeps its classes
        return value
    if value % divisor:
        raise ValueError(f"{what}={value} is not divisible by {divisor}")
    return value // divisor


@contextlib.contextmanager
def narrow(nn, divisor: int):
    """Divide every ``nn.Conv2D``/``nn.Dense``/``nn.BatchNorm`` width (and depthwise group
    count) by ``divisor`` while a model zoo builds its blocks (the model-zoo code itself is
    untouched: the same blocks, strides, pools and concatenations, only narrower)."""
    originals = {k: getattr(nn, k) for k in ("Conv2D", "Dense", "BatchNorm")}

    def conv(channels, kernel_size, strides=(1, 1), padding=(0, 0), dilation=(1, 1),
             groups=1, *args, in_channels=0, **kwargs):
        if groups > 1:
            groups = _scaled(groups, divisor, "groups")
        return originals["Conv2D"](_scaled(channels, divisor, "channels"), kernel_size,
                                   strides, padding, dilation, groups, *args,
                                   in_channels=_scaled(in_channels, divisor, "in_channels"),
                                   **kwargs)

    def dense(units, *args, in_units=0, **kwargs):
        return originals["Dense"](_scaled(units, divisor, "units"), *args,
                                  in_units=_scaled(in_units, divisor, "in_units"), **kwargs)

    def batchnorm(*args, in_channels=0, **kwargs):
        return originals["BatchNorm"](*args, in_channels=_scaled(in_channels, divisor,
                                                                  "in_channels"), **kwargs)

    nn.Conv2D, nn.Dense, nn.BatchNorm = conv, dense, batchnorm
    try:
        yield
    finally:
        for key, value in originals.items():
            setattr(nn, key, value)
