"""Inception v3 (Szegedy et al. 2015) for 299x299 inputs: a conv stem, then modules of
parallel branches (1x1, factorized 5x5 / 7x7 / 3x3 convs, pools) joined along the
channels.

Every conv is conv (no bias) + BN (eps 1e-3) + ReLU.  Modules are ``HybridConcurrent``
blocks named ``A1_`` .. ``E2_`` whose branches have ``prefix=''``, so their convs count in
the module's scope (``inception30_A1_conv0_weight``), as in MXNet's model zoo.
"""

from __future__ import annotations

from runtime.gluon import nn
from runtime.gluon.block import HybridBlock
from runtime.gluon.model_zoo.model_store import load_pretrained

__all__ = ["Inception3", "inception_v3"]


def _conv(**kwargs):
    seq = nn.HybridSequential(prefix="")
    seq.add(nn.Conv2D(use_bias=False, **kwargs))
    seq.add(nn.BatchNorm(epsilon=0.001))
    seq.add(nn.Activation("relu"))
    return seq


_SETTING = ("channels", "kernel_size", "strides", "padding")


def _conv_of(setting):
    """``_conv`` from (channels, kernel, stride, padding), None meaning Conv2D's default."""
    return _conv(**{k: v for k, v in zip(_SETTING, setting) if v is not None})


def _branch(pool, *convs):
    """An optional pool ('avg': 3x3/1 pad 1, 'max': 3x3/2) then convs (see ``_conv_of``)."""
    seq = nn.HybridSequential(prefix="")
    if pool == "avg":
        seq.add(nn.AvgPool2D(pool_size=3, strides=1, padding=1))
    elif pool == "max":
        seq.add(nn.MaxPool2D(pool_size=3, strides=2))
    for setting in convs:
        seq.add(_conv_of(setting))
    return seq


def _module(prefix, *branches):
    out = nn.HybridConcurrent(axis=1, prefix=prefix)
    with out.name_scope():
        for make in branches:
            out.add(make())
    return out


def _make_A(pool_features, prefix):
    """35x35: 1x1; 1x1 -> 5x5; 1x1 -> 3x3 -> 3x3; avg pool -> 1x1."""
    return _module(
        prefix,
        lambda: _branch(None, (64, 1, None, None)),
        lambda: _branch(None, (48, 1, None, None), (64, 5, None, 2)),
        lambda: _branch(None, (64, 1, None, None), (96, 3, None, 1), (96, 3, None, 1)),
        lambda: _branch("avg", (pool_features, 1, None, None)))


def _make_B(prefix):
    """35 -> 17 reduction: 3x3/2; 1x1 -> 3x3 -> 3x3/2; max pool."""
    return _module(
        prefix,
        lambda: _branch(None, (384, 3, 2, None)),
        lambda: _branch(None, (64, 1, None, None), (96, 3, None, 1), (96, 3, 2, None)),
        lambda: _branch("max"))


def _make_C(c7, prefix):
    """17x17 with 7x7 convs factorized into 1x7 and 7x1 of width ``c7``."""
    return _module(
        prefix,
        lambda: _branch(None, (192, 1, None, None)),
        lambda: _branch(None, (c7, 1, None, None), (c7, (1, 7), None, (0, 3)),
                        (192, (7, 1), None, (3, 0))),
        lambda: _branch(None, (c7, 1, None, None), (c7, (7, 1), None, (3, 0)),
                        (c7, (1, 7), None, (0, 3)), (c7, (7, 1), None, (3, 0)),
                        (192, (1, 7), None, (0, 3))),
        lambda: _branch("avg", (192, 1, None, None)))


def _make_D(prefix):
    """17 -> 8 reduction: 1x1 -> 3x3/2; 1x1 -> 1x7 -> 7x1 -> 3x3/2; max pool."""
    return _module(
        prefix,
        lambda: _branch(None, (192, 1, None, None), (320, 3, 2, None)),
        lambda: _branch(None, (192, 1, None, None), (192, (1, 7), None, (0, 3)),
                        (192, (7, 1), None, (3, 0)), (192, 3, 2, None)),
        lambda: _branch("max"))


def _split_pair():
    """1x3 and 3x1 convs side by side on one input."""
    pair = nn.HybridConcurrent(axis=1, prefix="")
    pair.add(_branch(None, (384, (1, 3), None, (0, 1))))
    pair.add(_branch(None, (384, (3, 1), None, (1, 0))))
    return pair


def _then_split(*convs):
    seq = nn.HybridSequential(prefix="")
    seq.add(_branch(None, *convs))
    seq.add(_split_pair())
    return seq


def _make_E(prefix):
    """8x8: 1x1; 1x1 -> (1x3 | 3x1); 1x1 -> 3x3 -> (1x3 | 3x1); avg pool -> 1x1."""
    return _module(
        prefix,
        lambda: _branch(None, (320, 1, None, None)),
        lambda: _then_split((384, 1, None, None)),
        lambda: _then_split((448, 1, None, None), (384, 3, None, 1)),
        lambda: _branch("avg", (192, 1, None, None)))


def make_aux(classes):
    """The auxiliary classifier of the paper (not part of MXNet's Inception3)."""
    seq = nn.HybridSequential(prefix="")
    seq.add(nn.AvgPool2D(pool_size=5, strides=3))
    seq.add(_conv(channels=128, kernel_size=1))
    seq.add(_conv(channels=768, kernel_size=5))
    seq.add(nn.Flatten())
    seq.add(nn.Dense(classes))
    return seq


#: the stem: (channels, kernel, stride, padding) convs and "pool" (3x3/2 max pools)
_STEM = [(32, 3, 2, None), (32, 3, None, None), (64, 3, None, 1), "pool",
         (80, 1, None, None), (192, 3, None, None), "pool"]


class Inception3(HybridBlock):
    """Ends with a fixed 8x8 average pool and dropout 0.5 before the Dense classifier."""

    def __init__(self, classes=1000, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            for layer in _STEM:
                self.features.add(nn.MaxPool2D(pool_size=3, strides=2) if layer == "pool"
                                  else _conv_of(layer))
            self.features.add(_make_A(32, "A1_"))
            self.features.add(_make_A(64, "A2_"))
            self.features.add(_make_A(64, "A3_"))
            self.features.add(_make_B("B_"))
            for i, c7 in enumerate((128, 160, 160, 192)):
                self.features.add(_make_C(c7, f"C{i + 1}_"))
            self.features.add(_make_D("D_"))
            self.features.add(_make_E("E1_"))
            self.features.add(_make_E("E2_"))
            self.features.add(nn.AvgPool2D(pool_size=8))
            self.features.add(nn.Dropout(0.5))
            self.output = nn.Dense(classes)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def inception_v3(pretrained=False, ctx=None, root=None, device=None, **kwargs):
    """Inception v3."""
    net = Inception3(**kwargs)
    if pretrained:
        load_pretrained(net, "inceptionv3", root, device if device is not None else ctx)
    return net
