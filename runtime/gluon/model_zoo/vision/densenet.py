"""DenseNet (Huang et al. 2016): every layer of a dense block sees the concatenation of
all earlier outputs of that block; transitions halve the width and the resolution.

A dense layer is a ``HybridConcurrent`` of an Identity and a BN-ReLU-1x1-BN-ReLU-3x3
branch, built in MXNet's order and scopes (``densenet0_stage1_conv0_weight``), so MXNet's
weight files load.
"""

from __future__ import annotations

from collections import namedtuple

from runtime.gluon import nn
from runtime.gluon.block import HybridBlock
from runtime.gluon.model_zoo.model_store import load_pretrained

__all__ = ["DenseNet", "get_densenet", "densenet121", "densenet161", "densenet169",
           "densenet201"]


def _dense_layer(growth_rate, bn_size, dropout):
    branch = nn.HybridSequential(prefix="")
    branch.add(nn.BatchNorm())
    branch.add(nn.Activation("relu"))
    branch.add(nn.Conv2D(bn_size * growth_rate, kernel_size=1, use_bias=False))
    branch.add(nn.BatchNorm())
    branch.add(nn.Activation("relu"))
    branch.add(nn.Conv2D(growth_rate, kernel_size=3, padding=1, use_bias=False))
    if dropout:
        branch.add(nn.Dropout(dropout))
    joined = nn.HybridConcurrent(axis=1, prefix="")
    joined.add(nn.Identity())
    joined.add(branch)
    return joined


def _dense_block(num_layers, bn_size, growth_rate, dropout, stage_index):
    block = nn.HybridSequential(prefix=f"stage{stage_index}_")
    with block.name_scope():
        for _ in range(num_layers):
            block.add(_dense_layer(growth_rate, bn_size, dropout))
    return block


def _transition(channels):
    seq = nn.HybridSequential(prefix="")
    seq.add(nn.BatchNorm())
    seq.add(nn.Activation("relu"))
    seq.add(nn.Conv2D(channels, kernel_size=1, use_bias=False))
    seq.add(nn.AvgPool2D(pool_size=2, strides=2))
    return seq


class DenseNet(HybridBlock):
    """``block_config[i]`` layers of ``growth_rate`` new channels in stage i+1, after a
    7x7/2 conv of ``num_init_features`` and a 3x3/2 max pool; ends with a fixed 7x7 average
    pool (ImageNet's 224x224 inputs)."""

    def __init__(self, num_init_features, growth_rate, block_config, bn_size=4, dropout=0,
                 classes=1000, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            self.features.add(nn.Conv2D(num_init_features, kernel_size=7, strides=2,
                                        padding=3, use_bias=False))
            self.features.add(nn.BatchNorm())
            self.features.add(nn.Activation("relu"))
            self.features.add(nn.MaxPool2D(pool_size=3, strides=2, padding=1))
            width = num_init_features
            for i, num_layers in enumerate(block_config):
                self.features.add(_dense_block(num_layers, bn_size, growth_rate, dropout,
                                               i + 1))
                width += num_layers * growth_rate
                if i != len(block_config) - 1:
                    width //= 2
                    self.features.add(_transition(width))
            self.features.add(nn.BatchNorm())
            self.features.add(nn.Activation("relu"))
            self.features.add(nn.AvgPool2D(pool_size=7))
            self.features.add(nn.Flatten())
            self.output = nn.Dense(classes)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


_Spec = namedtuple("_Spec", "num_init_features growth_rate block_config")

densenet_spec = {
    121: _Spec(64, 32, [6, 12, 24, 16]),
    161: _Spec(96, 48, [6, 12, 36, 24]),
    169: _Spec(64, 32, [6, 12, 32, 32]),
    201: _Spec(64, 32, [6, 12, 48, 32]),
}


def get_densenet(num_layers, pretrained=False, ctx=None, root=None, device=None, **kwargs):
    """DenseNet-``num_layers`` (121, 161, 169, 201)."""
    if num_layers not in densenet_spec:
        raise ValueError(f"Invalid number of layers: {num_layers}. Options are "
                         f"{sorted(densenet_spec)}")
    spec = densenet_spec[num_layers]
    net = DenseNet(spec.num_init_features, spec.growth_rate, spec.block_config, **kwargs)
    if pretrained:
        load_pretrained(net, f"densenet{num_layers}", root,
                        device if device is not None else ctx)
    return net


def _variant(depth):
    def build(**kwargs):
        return get_densenet(depth, **kwargs)

    build.__name__ = build.__qualname__ = f"densenet{depth}"
    build.__doc__ = f"DenseNet-{depth} (``get_densenet({depth}, ...)``)."
    return build


densenet121, densenet161, densenet169, densenet201 = (_variant(d) for d in (121, 161, 169, 201))
