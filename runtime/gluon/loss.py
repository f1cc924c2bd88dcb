"""Gluon losses: one value per sample (the mean over every axis but ``batch_axis``).

Each is a HybridBlock of registered ops, so it is traced into the same graph as the network
and differentiated with it.
"""

from __future__ import annotations

import numpy as np

from runtime.gluon.block import HybridBlock
from runtime.ndarray.ndarray import NDArray


def _weighted(F, loss, weight=None, sample_weight=None):
    if sample_weight is not None:
        loss = F.broadcast_mul(loss, sample_weight) if sample_weight.shape != loss.shape \
            else loss * sample_weight
    if weight is not None:
        loss = loss * weight
    return loss


_FLOAT_NAMES = frozenset(("float16", "float32", "float64"))


def _dtype_name(x) -> str:
    """The dtype's name without numpy's (slow, Python-level) ``dtype.name`` on NDArrays."""
    name = getattr(x, "_dtype", None)
    return name if isinstance(name, str) else np.dtype(x.dtype).name


def _reshape_like(F, label, pred):
    return label if label.shape == pred.shape else label.reshape(pred.shape)


class Loss(HybridBlock):
    """Base class: ``weight`` scales the loss, ``batch_axis`` is kept by the final mean."""

    def __init__(self, weight, batch_axis, **kwargs):
        super().__init__(**kwargs)
        self._weight, self._batch_axis = weight, batch_axis

    def _mean(self, F, loss):
        return F.mean(loss, axis=self._batch_axis, exclude=True)

    def __repr__(self):
        return f"{type(self).__name__}(batch_axis={self._batch_axis}, w={self._weight})"


class SoftmaxCrossEntropyLoss(Loss):
    """``-sum(label * log_softmax(pred))``; sparse labels are class indices."""

    def __init__(self, axis=-1, sparse_label=True, from_logits=False, weight=None,
                 batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._axis, self._sparse, self._from_logits = axis, sparse_label, from_logits

    def __call__(self, pred, label, *args, **kwargs):
        if (self._sparse and isinstance(label, NDArray) and label._data is not None
                and _dtype_name(label) not in _FLOAT_NAMES):
            # class indices as floats before the call (the compiled one_hot reads floats),
            # so the block's recorded nodes do not hold this batch's converted labels
            label = NDArray(label._data.astype(_dtype_name(pred)), label._ctx)
        return super().__call__(pred, label, *args, **kwargs)

    def hybrid_forward(self, F, pred, label, sample_weight=None):
        axis = self._axis % len(pred.shape)
        if not self._from_logits:
            pred = F.log_softmax(pred, axis=axis)
        if self._sparse:
            if axis != len(pred.shape) - 1:
                raise ValueError("SoftmaxCrossEntropyLoss: sparse labels need axis=-1 here")
            dtype = _dtype_name(pred)
            if _dtype_name(label) not in _FLOAT_NAMES:
                # class indices: the compiled one_hot reads floats (labels need no gradient)
                label = label.astype(dtype)
            if label.shape != pred.shape[:-1]:
                label = label.reshape(pred.shape[:-1])
            label = F.one_hot(label, depth=pred.shape[-1], dtype=dtype)
        else:
            label = _reshape_like(F, label, pred)
        loss = -F.sum(pred * label, axis=axis, keepdims=True)
        return self._mean(F, _weighted(F, loss, self._weight, sample_weight))


SoftmaxCELoss = SoftmaxCrossEntropyLoss


class L2Loss(Loss):
    """``weight/2 * (pred - label)^2``."""

    def __init__(self, weight=1.0, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)

    def hybrid_forward(self, F, pred, label, sample_weight=None):
        loss = F.square(_reshape_like(F, label, pred) - pred)
        return self._mean(F, _weighted(F, loss, self._weight / 2, sample_weight))


class L1Loss(Loss):
    def __init__(self, weight=None, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)

    def hybrid_forward(self, F, pred, label, sample_weight=None):
        loss = F.abs(_reshape_like(F, label, pred) - pred)
        return self._mean(F, _weighted(F, loss, self._weight, sample_weight))


class SigmoidBinaryCrossEntropyLoss(Loss):
    """Binary cross-entropy on logits (stable form) or on probabilities."""

    def __init__(self, from_sigmoid=False, weight=None, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._from_sigmoid = from_sigmoid

    def hybrid_forward(self, F, pred, label, sample_weight=None, pos_weight=None):
        label = _reshape_like(F, label, pred)
        if not self._from_sigmoid:
            loss = F.relu(pred) - pred * label + F.Activation(-F.abs(pred),
                                                              act_type="softrelu")
        else:
            eps = 1e-12
            loss = -(F.log(pred + eps) * label + F.log(1.0 - pred + eps) * (1.0 - label))
        return self._mean(F, _weighted(F, loss, self._weight, sample_weight))


SigmoidBCELoss = SigmoidBinaryCrossEntropyLoss


class HuberLoss(Loss):
    """``|d| - rho/2`` where ``|d| > rho``, else ``d^2 / (2 rho)``."""

    def __init__(self, rho=1, weight=None, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._rho = rho

    def hybrid_forward(self, F, pred, label, sample_weight=None):
        dist = F.abs(_reshape_like(F, label, pred) - pred)
        big = dist > self._rho
        loss = big * (dist - 0.5 * self._rho) + (1.0 - big) * (F.square(dist) *
                                                              (0.5 / self._rho))
        return self._mean(F, _weighted(F, loss, self._weight, sample_weight))


class KLDivLoss(Loss):
    """``label * (log(label) - log_pred)``; ``from_logits=False`` applies log_softmax."""

    def __init__(self, from_logits=True, axis=-1, weight=None, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._from_logits, self._axis = from_logits, axis

    def hybrid_forward(self, F, pred, label, sample_weight=None):
        if not self._from_logits:
            pred = F.log_softmax(pred, axis=self._axis)
        loss = label * (F.log(label + 1e-12) - pred)
        return self._mean(F, _weighted(F, loss, self._weight, sample_weight))
