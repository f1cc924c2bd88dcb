"""FullyConnected and the fused loss heads (SoftmaxOutput, regression outputs, MakeLoss)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import OpAttributeError, ShapeError, format_shape
from .params import param
from .registry import OpDef, merge_shape, register


def _prod(dims) -> int:
    return int(math.prod(dims))


@register
class FullyConnected(OpDef):
    """y = x @ W.T + b, with x flattened to 2-D unless ``flatten=False``."""

    params = (param("num_hidden", "int"), param("no_bias", "bool", False),
              param("flatten", "bool", True))
    arguments = ("data", "weight", "bias")

    def input_names(self, p):
        return ["data", "weight"] if p.no_bias else ["data", "weight", "bias"]

    def parse(self, attrs, node_name):
        parsed = super().parse(attrs, node_name)
        if parsed.num_hidden < 1:
            raise OpAttributeError(f"FullyConnected node '{node_name}': num_hidden must be >= 1,"
                                   f" got {parsed.num_hidden}")
        return parsed

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        out = None
        if data is not None:
            k = _prod(data[1:]) if p.flatten else data[-1]
            in_shapes[1] = merge_shape("input 'weight'", in_shapes[1], (p.num_hidden, k))
            out = (data[0], p.num_hidden) if p.flatten else data[:-1] + (p.num_hidden,)
        elif in_shapes[1] is not None and in_shapes[1][0] != p.num_hidden:
            raise ShapeError(f"input 'weight' has shape {format_shape(in_shapes[1])}, expected "
                             f"({p.num_hidden}, ?) for num_hidden={p.num_hidden}")
        if not p.no_bias and in_shapes[2] != (p.num_hidden, 1):  # MXNet accepts (N, 1) too
            in_shapes[2] = merge_shape("input 'bias'", in_shapes[2], (p.num_hidden,))
        return in_shapes, [out]

    def infer_shape_backward(self, p, in_shapes, out_shapes):
        out = out_shapes[0]
        if in_shapes[0] is None and out is not None and p.flatten and in_shapes[1] is not None:
            if len(in_shapes[1]) == 2:
                in_shapes[0] = (out[0], in_shapes[1][1])
        return in_shapes

    def reference(self, p, inputs, ctx):
        data, weight = inputs[0], inputs[1]
        x = data.reshape(data.shape[0], -1) if p.flatten else data
        y = x @ weight.T
        if not p.no_bias:
            y = y + inputs[2].reshape(-1)
        return [y]

    def gradient(self, p, g):
        dy = g.out_grads[0]
        data, weight = g.inputs[0], g.inputs[1]
        grads = [None] * len(g.inputs)
        dy2 = dy if p.flatten else g.op("Reshape", dy, shape=(-1, 0), reverse=True)
        x2 = data
        if p.flatten:
            x2 = g.op("Flatten", data)
        else:
            x2 = g.op("Reshape", data, shape=(-1, 0), reverse=True)
        if g.needs[0]:
            dx = g.op("dot", dy2, weight)
            grads[0] = g.op("reshape_like", dx, data)
        if g.needs[1]:
            grads[1] = g.op("dot", dy2, x2, transpose_a=True)
        if not p.no_bias and g.needs[2]:
            db = g.op("sum", dy2, axis=0)
            grads[2] = g.op("reshape_like", db, g.inputs[2])
        return grads

    def lower(self, p, ctx):
        ctx.matmul(a=0, b=1, trans_b=True, bias=None if p.no_bias else 2,
                   flatten_a=p.flatten)


# ---- SoftmaxOutput -------------------------------------------------------------------------
SOFTMAX_PARAMS = (
    param("grad_scale", "float", 1.0), param("ignore_label", "float", -1.0),
    param("multi_output", "bool", False), param("use_ignore", "bool", False),
    param("preserve_shape", "bool", False),
    param("normalization", "str", "null", choices=("null", "batch", "valid")),
    param("out_grad", "bool", False), param("smooth_alpha", "float", 0.0),
)


def softmax_rows(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x - x.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def softmax_output_layout(p, shape):
    """(rows, classes, inner) view that SoftmaxOutput works on for a data shape."""
    if p.multi_output:
        return shape[0], shape[1], _prod(shape[2:])
    if p.preserve_shape:
        return _prod(shape[:-1]), shape[-1], 1
    return shape[0], _prod(shape[1:]), 1


def expected_label_shape(p, data):
    if p.multi_output:
        return (data[0],) + tuple(data[2:])
    return tuple(data[:-1])


@register
class SoftmaxOutput(OpDef):
    """Softmax forward; backward is (p - onehot(label)) * grad_scale / norm (MXNet)."""

    name = "SoftmaxOutput"
    aliases = ("Softmax",)
    hint = "softmaxoutput"
    params = SOFTMAX_PARAMS
    arguments = ("data", "label")
    label_inputs = ("label",)
    ignores_head_grad = True

    def infer_shape(self, p, in_shapes):
        data, label = in_shapes
        if data is None:
            return in_shapes, [None]
        if label is not None and tuple(label) == tuple(data):
            return in_shapes, [data]
        expected = expected_label_shape(p, data)
        if label is not None and tuple(label) != expected and not (
                p.multi_output and _prod(label) == _prod(expected)):
            raise ShapeError(
                f"input 'label' has shape {format_shape(label)}, expected {format_shape(expected)}"
                f": one class index per row of data {format_shape(data)} (a label of data's "
                "own shape is read as probabilities)")
        return [data, label if label is not None else expected], [data]

    def reference(self, p, inputs, ctx):
        data = inputs[0]
        rows, classes, inner = softmax_output_layout(p, data.shape)
        x = data.reshape(rows, classes, inner)
        return [softmax_rows(x, axis=1).reshape(data.shape)]

    def gradient(self, p, g):
        grad = None
        if g.needs[0]:
            grad = g.op("_softmax_output_grad", g.outputs[0], g.inputs[1],
                        **g.node.params.as_dict())
        return [grad, None]

    def lower(self, p, ctx):
        rows, classes, inner = softmax_output_layout(p, ctx.in_shapes[0])
        ctx.softmax(axis=1, view=(rows, classes, inner))


def softmax_output_grad(p, prob: np.ndarray, label: np.ndarray) -> np.ndarray:
    """MXNet's SoftmaxOutput backward, written out plainly (the oracle)."""
    if label.shape == prob.shape:
        return (prob - label) * p.grad_scale
    rows, classes, inner = softmax_output_layout(p, prob.shape)
    pr = prob.reshape(rows, classes, inner)
    # the class whose index is trunc(label); NaN, inf and out-of-range labels select none
    lab = np.trunc(label.reshape(rows, 1, inner).astype(np.float64))
    onehot = (lab == np.arange(classes).reshape(1, classes, 1)).astype(pr.dtype)
    valid = np.ones((rows, inner), dtype=bool)
    if p.use_ignore:
        valid = label.reshape(rows, inner) != p.ignore_label
    if p.smooth_alpha:
        onehot = onehot * (1 - p.smooth_alpha) + (1 - onehot) * p.smooth_alpha / (classes - 1)
    grad = (pr - onehot) * valid[:, None, :]
    return (grad * softmax_grad_scale(p, label, rows, inner)).reshape(prob.shape)


def softmax_grad_scale(p, label, rows, inner) -> float:
    valid_count = max(1, int(np.sum(label.reshape(-1) != p.ignore_label)))
    if p.multi_output:
        if p.normalization == "valid":
            return p.grad_scale / valid_count
        norm = rows if p.normalization == "batch" else 1
        return p.grad_scale / inner / norm
    if p.normalization == "batch":
        return p.grad_scale / (rows * inner)
    if p.normalization == "valid":
        return p.grad_scale / valid_count
    return p.grad_scale


@register
class SoftmaxOutputGrad(OpDef):
    """Gradient node of SoftmaxOutput: inputs (softmax output, label)."""

    name = "_softmax_output_grad"
    params = SOFTMAX_PARAMS
    arguments = ("prob", "label")
    differentiable = False

    def infer_shape(self, p, in_shapes):
        return in_shapes, [in_shapes[0]]

    def reference(self, p, inputs, ctx):
        return [softmax_output_grad(p, inputs[0], inputs[1])]

    def lower(self, p, ctx):
        prob, label = ctx.in_shapes
        if tuple(label) == tuple(prob):
            ctx.elementwise(lambda m, pr, lab: (pr - lab) * p.grad_scale)
            return
        rows, classes, inner = softmax_output_layout(p, prob)
        ctx.softmax_output_grad(p, rows, classes, inner)


# ---- regression outputs ------------------------------------------------------------------
REGRESSION = {
    "LinearRegressionOutput": (lambda m, x: x + 0.0, lambda m, out, lab: out - lab),
    "LogisticRegressionOutput": (lambda m, x: m.sigmoid(x), lambda m, out, lab: out - lab),
    "MAERegressionOutput": (lambda m, x: x + 0.0,
                            lambda m, out, lab: m.select(out > lab, m.const(1.0),
                                                         m.const(-1.0))),
}


class _RegressionOutput(OpDef):
    params = (param("grad_scale", "float", 1.0),)
    arguments = ("data", "label")
    label_inputs = ("label",)
    ignores_head_grad = True

    def infer_shape(self, p, in_shapes):
        data, label = in_shapes
        if data is None:
            return in_shapes, [None]
        if label is None:
            label = (data[0],) if len(data) == 2 and data[1] == 1 else data
        elif label[0] != data[0] or _prod(label) != _prod(data):
            raise ShapeError(f"input 'label' has shape {format_shape(label)}, expected "
                             f"{format_shape(data)} (or the same batch and size)")
        return [data, label], [data]

    def reference(self, p, inputs, ctx):
        from .scalar import evaluate

        return [evaluate(REGRESSION[self.name][0], inputs[0].dtype, inputs[0])]

    def gradient(self, p, g):
        grad = None
        if g.needs[0]:
            grad = g.op("_regression_output_grad", g.outputs[0], g.inputs[1], kind=self.name,
                        grad_scale=p.grad_scale)
        return [grad, None]

    def lower(self, p, ctx):
        ctx.elementwise(REGRESSION[self.name][0], inputs=(0,))


@register
class LinearRegressionOutput(_RegressionOutput):
    name = "LinearRegressionOutput"


@register
class LogisticRegressionOutput(_RegressionOutput):
    name = "LogisticRegressionOutput"


@register
class MAERegressionOutput(_RegressionOutput):
    name = "MAERegressionOutput"


@register
class RegressionOutputGrad(OpDef):
    """(out - label) * grad_scale / m, m = outputs per sample (sign for MAE)."""

    name = "_regression_output_grad"
    params = (param("kind", "str", choices=tuple(REGRESSION)), param("grad_scale", "float", 1.0))
    arguments = ("out", "label")
    differentiable = False

    def infer_shape(self, p, in_shapes):
        return in_shapes, [in_shapes[0]]

    def _scale(self, p, out_shape):
        return p.grad_scale / (_prod(out_shape) / out_shape[0])

    def reference(self, p, inputs, ctx):
        from .scalar import evaluate

        out, label = inputs[0], inputs[1].reshape(inputs[0].shape)
        diff = evaluate(REGRESSION[p.kind][1], out.dtype, out, label)
        return [diff * self._scale(p, out.shape)]

    def lower(self, p, ctx):
        scale = self._scale(p, ctx.in_shapes[0])
        diff = REGRESSION[p.kind][1]
        ctx.elementwise(lambda m, out, lab: diff(m, out, lab) * scale, same_size=True)


# ---- MakeLoss ----------------------------------------------------------------------------
@register
class MakeLoss(OpDef):
    """Identity forward; the gradient is a constant scale (MXNet's legacy MakeLoss)."""

    name = "MakeLoss"
    hint = "makeloss"
    params = (param("grad_scale", "float", 1.0), param("valid_thresh", "float", 0.0),
              param("normalization", "str", "null", choices=("null", "batch", "valid")))
    ignores_head_grad = True

    def infer_shape(self, p, in_shapes):
        return in_shapes, [in_shapes[0]]

    def reference(self, p, inputs, ctx):
        return [inputs[0].copy()]

    def gradient(self, p, g):
        return [g.op("_make_loss_grad", g.inputs[0], **g.node.params.as_dict())]

    def lower(self, p, ctx):
        ctx.elementwise(lambda m, x: x + 0.0)


@register
class MakeLossGrad(OpDef):
    name = "_make_loss_grad"
    params = MakeLoss.params
    differentiable = False

    def infer_shape(self, p, in_shapes):
        return in_shapes, [in_shapes[0]]

    def reference(self, p, inputs, ctx):
        data = inputs[0]
        if p.normalization == "batch":
            scale = p.grad_scale / data.shape[0]
        elif p.normalization == "valid":
            scale = p.grad_scale / max(1, int(np.sum(data > p.valid_thresh)))
        else:
            scale = p.grad_scale
        return [np.full_like(data, scale)]

    def lower(self, p, ctx):
        ctx.make_loss_grad(p)
