"""SqueezeNet 1.0 and 1.1 (Iandola et al. 2016): "fire" modules, a 1x1 squeeze conv
feeding parallel 1x1 and 3x3 expand convs whose outputs are concatenated.  1.1 has a
smaller stem and pools earlier (about 2.4x less computation, same accuracy).

Every container has ``prefix=''``, so all convs count in the network's own scope
(``squeezenet0_conv0`` .. ``conv25``), as in MXNet's model zoo.
"""

from __future__ import annotations

from runtime.gluon import nn
from runtime.gluon.block import HybridBlock
from runtime.gluon.model_zoo.model_store import load_pretrained

__all__ = ["SqueezeNet", "get_squeezenet", "squeezenet1_0", "squeezenet1_1"]


def _conv_relu(channels, kernel_size, padding=0):
    seq = nn.HybridSequential(prefix="")
    seq.add(nn.Conv2D(channels, kernel_size, padding=padding))
    seq.add(nn.Activation("relu"))
    return seq


def _fire(squeeze, expand1x1, expand3x3):
    seq = nn.HybridSequential(prefix="")
    seq.add(_conv_relu(squeeze, 1))
    expand = nn.HybridConcurrent(axis=1, prefix="")
    expand.add(_conv_relu(expand1x1, 1))
    expand.add(_conv_relu(expand3x3, 3, 1))
    seq.add(expand)
    return seq


def _pool():
    return nn.MaxPool2D(pool_size=3, strides=2, ceil_mode=True)


#: version -> (stem channels, stem kernel, the layers after the stem's pool: a fire module
#: as its (squeeze, expand 1x1, expand 3x3) widths, "pool" a 3x3/2 ceil-mode max pool)
_LAYOUT = {
    "1.0": (96, 7, [(16, 64, 64), (16, 64, 64), (32, 128, 128), "pool", (32, 128, 128),
                    (48, 192, 192), (48, 192, 192), (64, 256, 256), "pool",
                    (64, 256, 256)]),
    "1.1": (64, 3, [(16, 64, 64), (16, 64, 64), "pool", (32, 128, 128), (32, 128, 128),
                    "pool", (48, 192, 192), (48, 192, 192), (64, 256, 256),
                    (64, 256, 256)]),
}


class SqueezeNet(HybridBlock):
    """``version`` '1.0' or '1.1'; the classifier is a 1x1 conv, ReLU and a 13x13 average
    pool, so the last feature map must be at least 13x13 (ImageNet's 224x224 inputs)."""

    def __init__(self, version, classes=1000, **kwargs):
        super().__init__(**kwargs)
        if version not in _LAYOUT:
            raise ValueError(f"Unsupported SqueezeNet version {version}: 1.0 or 1.1 expected")
        stem_channels, stem_kernel, layers = _LAYOUT[version]
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            self.features.add(nn.Conv2D(stem_channels, kernel_size=stem_kernel, strides=2))
            self.features.add(nn.Activation("relu"))
            self.features.add(_pool())
            for layer in layers:
                self.features.add(_pool() if layer == "pool" else _fire(*layer))
            self.features.add(nn.Dropout(0.5))
            self.output = nn.HybridSequential(prefix="")
            self.output.add(nn.Conv2D(classes, kernel_size=1))
            self.output.add(nn.Activation("relu"))
            self.output.add(nn.AvgPool2D(13))
            self.output.add(nn.Flatten())

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def get_squeezenet(version, pretrained=False, ctx=None, root=None, device=None, **kwargs):
    """SqueezeNet ``version`` ('1.0' or '1.1')."""
    net = SqueezeNet(version, **kwargs)
    if pretrained:
        load_pretrained(net, f"squeezenet{version}", root,
                        device if device is not None else ctx)
    return net


def squeezenet1_0(**kwargs):
    """SqueezeNet 1.0."""
    return get_squeezenet("1.0", **kwargs)


def squeezenet1_1(**kwargs):
    """SqueezeNet 1.1."""
    return get_squeezenet("1.1", **kwargs)
