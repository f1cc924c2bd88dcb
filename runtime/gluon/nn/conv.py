"""Convolution and pooling layers (NCW / NCHW), over the Convolution and Pooling ops."""

from __future__ import annotations

from runtime.gluon.block import HybridBlock
from runtime.gluon.nn.basic import _activation


def _tuple(value, dims):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims


class _Conv(HybridBlock):
    def __init__(self, dims, channels, kernel_size, strides, padding, dilation, groups,
                 layout, in_channels, activation, use_bias, weight_initializer,
                 bias_initializer, op_name="Convolution", **kwargs):
        super().__init__(**kwargs)
        if layout not in (None, "NCW", "NCHW"):
            raise ValueError(f"layout {layout!r} is not supported; use NCW/NCHW")
        self._channels, self._groups, self._op = channels, groups, op_name
        self._kwargs = {"kernel": _tuple(kernel_size, dims), "stride": _tuple(strides, dims),
                        "pad": _tuple(padding, dims), "dilate": _tuple(dilation, dims),
                        "num_filter": channels, "num_group": groups, "no_bias": not use_bias}
        if op_name == "Convolution":
            wshape = (channels, in_channels // groups if in_channels else 0)
        else:  # Deconvolution's weight is (in_channels, channels / groups, kh, kw)
            wshape = (in_channels, channels // groups)
        wshape += self._kwargs["kernel"]
        with self.name_scope():
            self.weight = self.params.get("weight", shape=wshape, init=weight_initializer,
                                          allow_deferred_init=True)
            self.bias = self.params.get("bias", shape=(channels,), init=bias_initializer,
                                        allow_deferred_init=True) if use_bias else None
        self.act = _activation(self, activation)

    def _alias(self):
        return "conv"

    def hybrid_forward(self, F, x, weight, bias=None):
        args = [x, weight] if bias is None else [x, weight, bias]
        out = getattr(F, self._op)(*args, **self._kwargs)
        return self.act(out) if self.act is not None else out


class Conv1D(_Conv):
    def __init__(self, channels, kernel_size, strides=1, padding=0, dilation=1, groups=1,
                 layout="NCW", activation=None, use_bias=True, weight_initializer=None,
                 bias_initializer="zeros", in_channels=0, **kwargs):
        super().__init__(1, channels, kernel_size, strides, padding, dilation, groups, layout,
                         in_channels, activation, use_bias, weight_initializer,
                         bias_initializer, **kwargs)


class Conv2D(_Conv):
    def __init__(self, channels, kernel_size, strides=(1, 1), padding=(0, 0),
                 dilation=(1, 1), groups=1, layout="NCHW", activation=None, use_bias=True,
                 weight_initializer=None, bias_initializer="zeros", in_channels=0, **kwargs):
        super().__init__(2, channels, kernel_size, strides, padding, dilation, groups, layout,
                         in_channels, activation, use_bias, weight_initializer,
                         bias_initializer, **kwargs)


class Conv2DTranspose(_Conv):
    """Transposed 2-D convolution over the Deconvolution op; ``output_padding`` is its
    ``adj``. Named ``conv0_`` like every MXNet conv layer."""

    def __init__(self, channels, kernel_size, strides=(1, 1), padding=(0, 0),
                 output_padding=(0, 0), dilation=(1, 1), groups=1, layout="NCHW",
                 activation=None, use_bias=True, weight_initializer=None,
                 bias_initializer="zeros", in_channels=0, **kwargs):
        super().__init__(2, channels, kernel_size, strides, padding, dilation, groups, layout,
                         in_channels, activation, use_bias, weight_initializer,
                         bias_initializer, op_name="Deconvolution", **kwargs)
        self._kwargs["adj"] = _tuple(output_padding, 2)


class _Pool(HybridBlock):
    def __init__(self, dims, pool_size, strides, padding, ceil_mode, global_pool, pool_type,
                 layout, count_include_pad=None, **kwargs):
        super().__init__(**kwargs)
        if layout not in (None, "NCW", "NCHW"):
            raise ValueError(f"layout {layout!r} is not supported; use NCW/NCHW")
        strides = pool_size if strides is None else strides
        self._kwargs = {"kernel": _tuple(pool_size, dims), "stride": _tuple(strides, dims),
                        "pad": _tuple(padding, dims), "pool_type": pool_type,
                        "global_pool": global_pool,
                        "pooling_convention": "full" if ceil_mode else "valid"}
        if count_include_pad is not None:
            self._kwargs["count_include_pad"] = count_include_pad

    def _alias(self):
        return "pool"

    def hybrid_forward(self, F, x):
        return F.Pooling(x, **self._kwargs)


class MaxPool1D(_Pool):
    def __init__(self, pool_size=2, strides=None, padding=0, layout="NCW", ceil_mode=False,
                 **kwargs):
        super().__init__(1, pool_size, strides, padding, ceil_mode, False, "max", layout,
                         **kwargs)


class MaxPool2D(_Pool):
    def __init__(self, pool_size=(2, 2), strides=None, padding=0, layout="NCHW",
                 ceil_mode=False, **kwargs):
        super().__init__(2, pool_size, strides, padding, ceil_mode, False, "max", layout,
                         **kwargs)


class AvgPool1D(_Pool):
    def __init__(self, pool_size=2, strides=None, padding=0, layout="NCW", ceil_mode=False,
                 count_include_pad=True, **kwargs):
        super().__init__(1, pool_size, strides, padding, ceil_mode, False, "avg", layout,
                         count_include_pad, **kwargs)


class AvgPool2D(_Pool):
    def __init__(self, pool_size=(2, 2), strides=None, padding=0, layout="NCHW",
                 ceil_mode=False, count_include_pad=True, **kwargs):
        super().__init__(2, pool_size, strides, padding, ceil_mode, False, "avg", layout,
                         count_include_pad, **kwargs)


class GlobalMaxPool2D(_Pool):
    def __init__(self, layout="NCHW", **kwargs):
        super().__init__(2, (1, 1), None, 0, False, True, "max", layout, **kwargs)


class GlobalAvgPool2D(_Pool):
    def __init__(self, layout="NCHW", **kwargs):
        super().__init__(2, (1, 1), None, 0, False, True, "avg", layout, **kwargs)
