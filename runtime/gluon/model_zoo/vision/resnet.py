"""ResNet v1 (He et al. 2015: conv-BN-ReLU, the shortcut added before the last ReLU) and
v2 (He et al. 2016: pre-activation, BN-ReLU before each conv, a plain sum at the end).

Blocks are built in the same order and name scopes as MXNet's model zoo, so parameter
names (``resnetv10_stage1_conv0_weight``) and hence MXNet's weight files match.  A residual
block takes ``prefix=''`` and creates its layers in its stage's scope, so layer counters
run on through a stage (``stage2_conv0`` .. ``stage2_conv4``).
"""

from __future__ import annotations

from collections import namedtuple

from runtime.gluon import nn
from runtime.gluon.block import HybridBlock
from runtime.gluon.model_zoo.model_store import load_pretrained

__all__ = ["ResNetV1", "ResNetV2", "BasicBlockV1", "BasicBlockV2", "BottleneckV1",
           "BottleneckV2", "get_resnet",
           "resnet18_v1", "resnet34_v1", "resnet50_v1", "resnet101_v1", "resnet152_v1",
           "resnet18_v2", "resnet34_v2", "resnet50_v2", "resnet101_v2", "resnet152_v2"]


def _conv3x3(channels, stride, in_channels):
    return nn.Conv2D(channels, kernel_size=3, strides=stride, padding=1, use_bias=False,
                     in_channels=in_channels)


def _projection(channels, stride, in_channels, with_norm):
    """The 1x1 strided shortcut used where a block changes width or resolution."""
    conv = nn.Conv2D(channels, kernel_size=1, strides=stride, use_bias=False,
                     in_channels=in_channels)
    if not with_norm:
        return conv
    seq = nn.HybridSequential(prefix="")
    seq.add(conv)
    seq.add(nn.BatchNorm())
    return seq


class _ResidualV1(HybridBlock):
    """v1's block: ``body`` (conv-BN-ReLU stacks), the shortcut (``downsample`` or the
    input) added, then ReLU."""

    def hybrid_forward(self, F, x):
        shortcut = self.downsample(x) if self.downsample is not None else x
        return F.Activation(self.body(x) + shortcut, act_type="relu")


class BasicBlockV1(_ResidualV1):
    """Two 3x3 convs (ResNet-18/34, v1)."""

    def __init__(self, channels, stride, downsample=False, in_channels=0, **kwargs):
        super().__init__(**kwargs)
        self.body = nn.HybridSequential(prefix="")
        self.body.add(_conv3x3(channels, stride, in_channels))
        self.body.add(nn.BatchNorm())
        self.body.add(nn.Activation("relu"))
        self.body.add(_conv3x3(channels, 1, channels))
        self.body.add(nn.BatchNorm())
        self.downsample = _projection(channels, stride, in_channels, True) \
            if downsample else None


class BottleneckV1(_ResidualV1):
    """1x1 reduce (strided, with bias as in MXNet), 3x3, 1x1 expand (ResNet-50+, v1)."""

    def __init__(self, channels, stride, downsample=False, in_channels=0, **kwargs):
        super().__init__(**kwargs)
        inner = channels // 4
        self.body = nn.HybridSequential(prefix="")
        self.body.add(nn.Conv2D(inner, kernel_size=1, strides=stride))
        self.body.add(nn.BatchNorm())
        self.body.add(nn.Activation("relu"))
        self.body.add(_conv3x3(inner, 1, inner))
        self.body.add(nn.BatchNorm())
        self.body.add(nn.Activation("relu"))
        self.body.add(nn.Conv2D(channels, kernel_size=1, strides=1))
        self.body.add(nn.BatchNorm())
        self.downsample = _projection(channels, stride, in_channels, True) \
            if downsample else None


class BasicBlockV2(HybridBlock):
    """Pre-activation pair of 3x3 convs; the shortcut branches off after the first BN-ReLU."""

    def __init__(self, channels, stride, downsample=False, in_channels=0, **kwargs):
        super().__init__(**kwargs)
        self.bn1 = nn.BatchNorm()
        self.conv1 = _conv3x3(channels, stride, in_channels)
        self.bn2 = nn.BatchNorm()
        self.conv2 = _conv3x3(channels, 1, channels)
        self.downsample = _projection(channels, stride, in_channels, False) \
            if downsample else None

    def hybrid_forward(self, F, x):
        shortcut = x
        x = F.Activation(self.bn1(x), act_type="relu")
        if self.downsample is not None:
            shortcut = self.downsample(x)
        x = F.Activation(self.bn2(self.conv1(x)), act_type="relu")
        return self.conv2(x) + shortcut


class BottleneckV2(HybridBlock):
    """Pre-activation bottleneck; the stride sits on the 3x3 conv."""

    def __init__(self, channels, stride, downsample=False, in_channels=0, **kwargs):
        super().__init__(**kwargs)
        inner = channels // 4
        self.bn1 = nn.BatchNorm()
        self.conv1 = nn.Conv2D(inner, kernel_size=1, strides=1, use_bias=False)
        self.bn2 = nn.BatchNorm()
        self.conv2 = _conv3x3(inner, stride, inner)
        self.bn3 = nn.BatchNorm()
        self.conv3 = nn.Conv2D(channels, kernel_size=1, strides=1, use_bias=False)
        self.downsample = _projection(channels, stride, in_channels, False) \
            if downsample else None

    def hybrid_forward(self, F, x):
        shortcut = x
        x = F.Activation(self.bn1(x), act_type="relu")
        if self.downsample is not None:
            shortcut = self.downsample(x)
        x = F.Activation(self.bn2(self.conv1(x)), act_type="relu")
        x = F.Activation(self.bn3(self.conv2(x)), act_type="relu")
        return self.conv3(x) + shortcut


def _stage(block, count, channels, stride, index, in_channels):
    """``count`` residual blocks under the prefix ``stage<index>_``; the first one may
    change resolution and width."""
    layer = nn.HybridSequential(prefix=f"stage{index}_")
    with layer.name_scope():
        layer.add(block(channels, stride, channels != in_channels, in_channels=in_channels,
                        prefix=""))
        for _ in range(count - 1):
            layer.add(block(channels, 1, False, in_channels=channels, prefix=""))
    return layer


def _stem(features, width, thumbnail):
    """7x7/2 conv, BN, ReLU, 3x3/2 max pool; or one 3x3 conv for small (CIFAR) images."""
    if thumbnail:
        features.add(_conv3x3(width, 1, 0))
        return
    features.add(nn.Conv2D(width, 7, 2, 3, use_bias=False))
    features.add(nn.BatchNorm())
    features.add(nn.Activation("relu"))
    features.add(nn.MaxPool2D(3, 2, 1))


class ResNetV1(HybridBlock):
    """``layers[i]`` blocks in stage i+1, of width ``channels[i+1]``; ``channels[0]`` is the
    stem's width."""

    def __init__(self, block, layers, channels, classes=1000, thumbnail=False, **kwargs):
        super().__init__(**kwargs)
        if len(layers) != len(channels) - 1:
            raise ValueError(f"ResNet: {len(layers)} stages need {len(layers) + 1} widths, "
                             f"got channels={channels}")
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            _stem(self.features, channels[0], thumbnail)
            for i, count in enumerate(layers):
                self.features.add(_stage(block, count, channels[i + 1], 1 if i == 0 else 2,
                                         i + 1, channels[i]))
            self.features.add(nn.GlobalAvgPool2D())
            self.output = nn.Dense(classes, in_units=channels[-1])

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


class ResNetV2(HybridBlock):
    """As ResNetV1, with a scale-free BN on the input and BN-ReLU before the pool."""

    def __init__(self, block, layers, channels, classes=1000, thumbnail=False, **kwargs):
        super().__init__(**kwargs)
        if len(layers) != len(channels) - 1:
            raise ValueError(f"ResNet: {len(layers)} stages need {len(layers) + 1} widths, "
                             f"got channels={channels}")
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            self.features.add(nn.BatchNorm(scale=False, center=False))
            _stem(self.features, channels[0], thumbnail)
            width = channels[0]
            for i, count in enumerate(layers):
                self.features.add(_stage(block, count, channels[i + 1], 1 if i == 0 else 2,
                                         i + 1, width))
                width = channels[i + 1]
            self.features.add(nn.BatchNorm())
            self.features.add(nn.Activation("relu"))
            self.features.add(nn.GlobalAvgPool2D())
            self.features.add(nn.Flatten())
            self.output = nn.Dense(classes, in_units=width)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


_Spec = namedtuple("_Spec", "kind layers channels")

#: depth -> block kind, blocks per stage, widths (stem, then each stage)
resnet_spec = {
    18: _Spec("basic_block", [2, 2, 2, 2], [64, 64, 128, 256, 512]),
    34: _Spec("basic_block", [3, 4, 6, 3], [64, 64, 128, 256, 512]),
    50: _Spec("bottle_neck", [3, 4, 6, 3], [64, 256, 512, 1024, 2048]),
    101: _Spec("bottle_neck", [3, 4, 23, 3], [64, 256, 512, 1024, 2048]),
    152: _Spec("bottle_neck", [3, 8, 36, 3], [64, 256, 512, 1024, 2048]),
}
resnet_net_versions = [ResNetV1, ResNetV2]
resnet_block_versions = [{"basic_block": BasicBlockV1, "bottle_neck": BottleneckV1},
                         {"basic_block": BasicBlockV2, "bottle_neck": BottleneckV2}]


def get_resnet(version, num_layers, pretrained=False, ctx=None, root=None, device=None,
               **kwargs):
    """ResNet ``v<version>`` of depth ``num_layers`` (18, 34, 50, 101, 152)."""
    if num_layers not in resnet_spec:
        raise ValueError(f"Invalid number of layers: {num_layers}. Options are "
                         f"{sorted(resnet_spec)}")
    if version not in (1, 2):
        raise ValueError(f"Invalid resnet version: {version}. Options are 1 and 2.")
    spec = resnet_spec[num_layers]
    block = resnet_block_versions[version - 1][spec.kind]
    net = resnet_net_versions[version - 1](block, spec.layers, spec.channels, **kwargs)
    if pretrained:
        load_pretrained(net, f"resnet{num_layers}_v{version}", root,
                        device if device is not None else ctx)
    return net


def _variant(version, depth):
    def build(**kwargs):
        return get_resnet(version, depth, **kwargs)

    build.__name__ = build.__qualname__ = f"resnet{depth}_v{version}"
    build.__doc__ = f"ResNet-{depth} v{version} (``get_resnet({version}, {depth}, ...)``)."
    return build


resnet18_v1, resnet34_v1, resnet50_v1, resnet101_v1, resnet152_v1 = (
    _variant(1, d) for d in (18, 34, 50, 101, 152))
resnet18_v2, resnet34_v2, resnet50_v2, resnet101_v2, resnet152_v2 = (
    _variant(2, d) for d in (18, 34, 50, 101, 152))
