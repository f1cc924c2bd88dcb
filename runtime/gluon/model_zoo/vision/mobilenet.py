"""MobileNet v1 (Howard et al. 2017: depthwise-separable convs) and v2 (Sandler et al.
2018: inverted residuals with linear bottlenecks and ReLU6), with a width multiplier.

Layer creation order and scopes follow MXNet's model zoo, so the parameter names
(``mobilenet0_conv0_weight``, ``mobilenetv20_features_linearbottleneck0_conv0_weight``,
``mobilenetv20_output_pred_weight``) and MXNet's weight files match.
"""

from __future__ import annotations

from collections import namedtuple

from runtime.gluon import nn
from runtime.gluon.block import HybridBlock
from runtime.gluon.model_zoo.model_store import load_pretrained

__all__ = ["MobileNet", "MobileNetV2", "RELU6", "LinearBottleneck", "get_mobilenet",
           "get_mobilenet_v2", "mobilenet1_0", "mobilenet0_75", "mobilenet0_5",
           "mobilenet0_25", "mobilenet_v2_1_0", "mobilenet_v2_0_75", "mobilenet_v2_0_5",
           "mobilenet_v2_0_25"]


class RELU6(HybridBlock):
    """``min(max(x, 0), 6)``."""

    def hybrid_forward(self, F, x):
        return F.clip(x, a_min=0, a_max=6)


def _conv_bn(seq, channels, kernel=1, stride=1, pad=0, groups=1, active=True, relu6=False):
    """Append conv (no bias), BN and, unless ``active`` is False, ReLU or ReLU6."""
    seq.add(nn.Conv2D(channels, kernel, stride, pad, groups=groups, use_bias=False))
    seq.add(nn.BatchNorm(scale=True))
    if active:
        seq.add(RELU6() if relu6 else nn.Activation("relu"))


def _separable(seq, dw_channels, channels, stride, relu6=False):
    """A 3x3 depthwise conv then a 1x1 pointwise conv, each with BN and activation."""
    _conv_bn(seq, dw_channels, kernel=3, stride=stride, pad=1, groups=dw_channels,
             relu6=relu6)
    _conv_bn(seq, channels, relu6=relu6)


class LinearBottleneck(HybridBlock):
    """Expand by ``t`` (1x1), filter depthwise (3x3), project linearly (1x1); the input is
    added back when shape allows (stride 1, same width)."""

    def __init__(self, in_channels, channels, t, stride, **kwargs):
        super().__init__(**kwargs)
        self.use_shortcut = stride == 1 and in_channels == channels
        wide = in_channels * t
        with self.name_scope():
            self.out = nn.HybridSequential()
            _conv_bn(self.out, wide, relu6=True)
            _conv_bn(self.out, wide, kernel=3, stride=stride, pad=1, groups=wide, relu6=True)
            _conv_bn(self.out, channels, active=False)

    def hybrid_forward(self, F, x):
        out = self.out(x)
        return F.elemwise_add(out, x) if self.use_shortcut else out


def _scaled(widths, multiplier):
    return [int(w * multiplier) for w in widths]


#: v1 after the stem: (depthwise width, pointwise width, stride) of the 13 separable layers
_V1_LAYERS = list(zip([32, 64] + [128] * 2 + [256] * 2 + [512] * 6 + [1024],
                      [64] + [128] * 2 + [256] * 2 + [512] * 6 + [1024] * 2,
                      [1, 2] * 3 + [1] * 5 + [2, 1]))


class MobileNet(HybridBlock):
    """v1: a 3x3/2 stem, 13 separable layers, global average pool, a Dense classifier."""

    def __init__(self, multiplier=1.0, classes=1000, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            with self.features.name_scope():
                _conv_bn(self.features, int(32 * multiplier), kernel=3, stride=2, pad=1)
                for dw, pw, stride in _V1_LAYERS:
                    _separable(self.features, int(dw * multiplier), int(pw * multiplier),
                               stride)
                self.features.add(nn.GlobalAvgPool2D())
                self.features.add(nn.Flatten())
            self.output = nn.Dense(classes)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


_V2Layer = namedtuple("_V2Layer", "in_channels channels t stride")

#: v2 after the stem: the 17 inverted-residual blocks
_V2_LAYERS = [_V2Layer(*row) for row in zip(
    [32] + [16] + [24] * 2 + [32] * 3 + [64] * 4 + [96] * 3 + [160] * 3,
    [16] + [24] * 2 + [32] * 3 + [64] * 4 + [96] * 3 + [160] * 3 + [320],
    [1] + [6] * 16,
    [1, 2] * 2 + [1, 1, 2] + [1] * 6 + [2] + [1] * 3)]


class MobileNetV2(HybridBlock):
    """v2: a 3x3/2 stem, 17 linear bottlenecks, a 1x1 conv to 1280 (wider only for
    multipliers above 1), global average pool, a 1x1 conv classifier (``output_pred``)."""

    def __init__(self, multiplier=1.0, classes=1000, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="features_")
            with self.features.name_scope():
                _conv_bn(self.features, int(32 * multiplier), kernel=3, stride=2, pad=1,
                         relu6=True)
                for layer in _V2_LAYERS:
                    self.features.add(LinearBottleneck(
                        in_channels=int(layer.in_channels * multiplier),
                        channels=int(layer.channels * multiplier), t=layer.t,
                        stride=layer.stride))
                last = int(1280 * multiplier) if multiplier > 1.0 else 1280
                _conv_bn(self.features, last, relu6=True)
                self.features.add(nn.GlobalAvgPool2D())
            self.output = nn.HybridSequential(prefix="output_")
            with self.output.name_scope():
                self.output.add(nn.Conv2D(classes, 1, use_bias=False, prefix="pred_"),
                                nn.Flatten())

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def _suffix(multiplier):
    """MXNet's file-name spelling of a multiplier: 1.0, 0.75, 0.5, 0.25."""
    text = f"{multiplier:.2f}"
    return text[:-1] if text in ("1.00", "0.50") else text


def get_mobilenet(multiplier, pretrained=False, ctx=None, root=None, device=None, **kwargs):
    """MobileNet v1 of width ``multiplier``."""
    net = MobileNet(multiplier, **kwargs)
    if pretrained:
        load_pretrained(net, f"mobilenet{_suffix(multiplier)}", root,
                        device if device is not None else ctx)
    return net


def get_mobilenet_v2(multiplier, pretrained=False, ctx=None, root=None, device=None,
                     **kwargs):
    """MobileNet v2 of width ``multiplier``."""
    net = MobileNetV2(multiplier, **kwargs)
    if pretrained:
        load_pretrained(net, f"mobilenetv2_{_suffix(multiplier)}", root,
                        device if device is not None else ctx)
    return net


def _variant(getter, multiplier, name):
    def build(**kwargs):
        return getter(multiplier, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"``{getter.__name__}({multiplier}, ...)``."
    return build


mobilenet1_0 = _variant(get_mobilenet, 1.0, "mobilenet1_0")
mobilenet0_75 = _variant(get_mobilenet, 0.75, "mobilenet0_75")
mobilenet0_5 = _variant(get_mobilenet, 0.5, "mobilenet0_5")
mobilenet0_25 = _variant(get_mobilenet, 0.25, "mobilenet0_25")
mobilenet_v2_1_0 = _variant(get_mobilenet_v2, 1.0, "mobilenet_v2_1_0")
mobilenet_v2_0_75 = _variant(get_mobilenet_v2, 0.75, "mobilenet_v2_0_75")
mobilenet_v2_0_5 = _variant(get_mobilenet_v2, 0.5, "mobilenet_v2_0_5")
mobilenet_v2_0_25 = _variant(get_mobilenet_v2, 0.25, "mobilenet_v2_0_25")
