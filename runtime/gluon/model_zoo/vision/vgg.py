"""VGG (Simonyan and Zisserman 2014): stacks of 3x3 convs (optionally with BatchNorm)
between 2x2 max pools, then two 4096-wide Dense layers with dropout.

Names and initializers follow MXNet's model zoo (``vgg0_conv0_weight``, Xavier for the
convs, normal for the Dense layers), so MXNet's weight files load.
"""

from __future__ import annotations

from collections import namedtuple

from runtime.gluon import nn
from runtime.gluon.block import HybridBlock
from runtime.gluon.model_zoo.model_store import load_pretrained
from runtime.initializer import Xavier

__all__ = ["VGG", "get_vgg", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn",
           "vgg16_bn", "vgg19_bn"]


class VGG(HybridBlock):
    """``layers[i]`` convs of ``filters[i]`` channels in block i; the Dense layers' input
    width follows from the input size (512 x 7 x 7 for 224x224 images)."""

    def __init__(self, layers, filters, classes=1000, batch_norm=False, **kwargs):
        super().__init__(**kwargs)
        if len(layers) != len(filters):
            raise ValueError(f"VGG: layers {layers} and filters {filters} differ in length")
        with self.name_scope():
            self.features = self._make_features(layers, filters, batch_norm)
            for _ in range(2):
                self.features.add(nn.Dense(4096, activation="relu",
                                           weight_initializer="normal",
                                           bias_initializer="zeros"))
                self.features.add(nn.Dropout(rate=0.5))
            self.output = nn.Dense(classes, weight_initializer="normal",
                                   bias_initializer="zeros")

    @staticmethod
    def _make_features(layers, filters, batch_norm):
        seq = nn.HybridSequential(prefix="")
        for count, width in zip(layers, filters):
            for _ in range(count):
                seq.add(nn.Conv2D(width, kernel_size=3, padding=1,
                                  weight_initializer=Xavier(rnd_type="gaussian",
                                                            factor_type="out", magnitude=2),
                                  bias_initializer="zeros"))
                if batch_norm:
                    seq.add(nn.BatchNorm())
                seq.add(nn.Activation("relu"))
            seq.add(nn.MaxPool2D(strides=2))
        return seq

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


_Spec = namedtuple("_Spec", "layers filters")

vgg_spec = {
    11: _Spec([1, 1, 2, 2, 2], [64, 128, 256, 512, 512]),
    13: _Spec([2, 2, 2, 2, 2], [64, 128, 256, 512, 512]),
    16: _Spec([2, 2, 3, 3, 3], [64, 128, 256, 512, 512]),
    19: _Spec([2, 2, 4, 4, 4], [64, 128, 256, 512, 512]),
}


def get_vgg(num_layers, pretrained=False, ctx=None, root=None, device=None, **kwargs):
    """VGG-``num_layers`` (11, 13, 16, 19); ``batch_norm=True`` for the ``_bn`` models."""
    if num_layers not in vgg_spec:
        raise ValueError(f"Invalid number of layers: {num_layers}. Options are "
                         f"{sorted(vgg_spec)}")
    spec = vgg_spec[num_layers]
    net = VGG(spec.layers, spec.filters, **kwargs)
    if pretrained:
        suffix = "_bn" if kwargs.get("batch_norm") else ""
        load_pretrained(net, f"vgg{num_layers}{suffix}", root,
                        device if device is not None else ctx)
    return net


def _variant(depth, batch_norm):
    def build(**kwargs):
        if batch_norm:
            kwargs["batch_norm"] = True
        return get_vgg(depth, **kwargs)

    build.__name__ = build.__qualname__ = f"vgg{depth}" + ("_bn" if batch_norm else "")
    build.__doc__ = f"VGG-{depth}" + (" with BatchNorm." if batch_norm else ".")
    return build


vgg11, vgg13, vgg16, vgg19 = (_variant(d, False) for d in (11, 13, 16, 19))
vgg11_bn, vgg13_bn, vgg16_bn, vgg19_bn = (_variant(d, True) for d in (11, 13, 16, 19))
