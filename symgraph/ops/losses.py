"""Loss ops that use the head gradient like any other op: smooth_l1 (elementwise) and
softmax_cross_entropy (composite: log_softmax, pick, sum)."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError, format_shape
from .array_ops import softmax_ref
from .composite import CompositeOp
from .elementwise import UnaryOp
from .indexing import index_dtype_rule, safe_index_ref
from .params import param
from .registry import merge_shape, register


@register
class SmoothL1(UnaryOp):
    """Huber-like loss with ``sigma = scalar``: ``0.5 (sigma x)^2`` where
    ``|x| < 1 / sigma^2``, else ``|x| - 0.5 / sigma^2``; derivative ``sigma^2 x`` or
    ``sign(x)``."""

    name = "smooth_l1"
    params = (param("scalar", "float", 1.0),)

    def f(self, m, p, x):
        s2 = p.scalar * p.scalar
        inside = m.abs(x) < m.const(1.0 / s2)
        return m.select(inside, x * x * m.const(0.5 * s2), m.abs(x) - m.const(0.5 / s2))

    def d(self, m, p, x, y):
        s2 = p.scalar * p.scalar
        return m.select(m.abs(x) < m.const(1.0 / s2), x * m.const(s2), m.sign(x))


@register
class SoftmaxCrossEntropy(CompositeOp):
    """``-sum_i log softmax(data_i)[label_i]`` over the batch: shape (1,). data is
    (batch, classes), label (batch,) of class indices (clipped into range)."""

    name = "softmax_cross_entropy"
    arguments = ("data", "label")

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        if data is None:
            return in_shapes, [(1,)]
        if len(data) != 2:
            raise ShapeError(f"input 'data' {format_shape(data)} must be 2-D (batch, classes)")
        in_shapes[1] = merge_shape("input 'label'", in_shapes[1], (data[0],))
        return in_shapes, [(1,)]

    def infer_type(self, p, in_types):
        return index_dtype_rule(in_types, 0, 1)

    def reference(self, p, inputs, ctx):
        data, label = inputs
        logp = softmax_ref(data.astype(np.float64), -1, None, log=True)
        rows = safe_index_ref(label, data.shape[1], "clip")
        picked = logp[np.arange(data.shape[0]), rows]
        return [np.asarray([-picked.sum()], dtype=data.dtype)]

    def decompose(self, p, b):
        data, label = b.inputs
        logp = b.op("log_softmax", data, axis=-1)
        return [b.op("negative", b.op("sum", b.op("pick", logp, label, axis=-1)))]
