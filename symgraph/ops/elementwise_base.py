"""Elementwise ops are defined by a formula and its derivatives; everything else derives.

A subclass of :class:`ElementwiseOp` gives ``formula(m, p, *xs)`` and
``derivatives(m, p, xs, y, dy)`` (one expression per input, already multiplied by ``dy``)
in the scalar-math protocol. From those two come the shape rule (equal shapes, or numpy
broadcasting), the numpy reference, the gradient (one ``_elemwise_grad`` node per needed
input, itself elementwise so it fuses) and the lowering (one fusable loop nest).
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError, format_shape
from .params import param
from .registry import OpDef, get_op, merge_shape, register
from .scalar import evaluate


def broadcast_shapes(names, shapes):
    """numpy's broadcasting rule with MXNet's message on failure."""
    if any(s is None for s in shapes):
        return None
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        listed = ", ".join(f"{n}={format_shape(s)}" for n, s in zip(names, shapes))
        raise ShapeError(f"operands could not be broadcast together: {listed}") from None


class ElementwiseOp(OpDef):
    """Base of every elementwise op (unary, binary, scalar, broadcast)."""

    is_elementwise = True
    broadcast = False
    grad_uses_output = True

    def formula(self, m, p, *xs):
        raise NotImplementedError

    def derivatives(self, m, p, xs, y, dy):
        raise NotImplementedError

    # -- shapes ---------------------------------------------------------------------------
    def infer_shape(self, p, in_shapes):
        names = self.input_names(p)
        if self.broadcast:
            return in_shapes, [broadcast_shapes(names, in_shapes)]
        shape = None
        for name, given in zip(names, in_shapes):
            shape = merge_shape(f"input '{name}'", given, shape)
        return [shape] * len(in_shapes), [shape]

    def infer_shape_backward(self, p, in_shapes, out_shapes):
        if self.broadcast or out_shapes[0] is None:
            return in_shapes
        return [out_shapes[0] if s is None else s for s in in_shapes]

    # -- semantics ------------------------------------------------------------------------
    def reference(self, p, inputs, ctx):
        dtype = np.result_type(*inputs) if inputs else np.float32
        return [evaluate(lambda m, *xs: self.formula(m, p, *xs), dtype, *inputs)]

    def gradient(self, p, g):
        dy = g.out_grads[0]
        if dy is None:
            return [None] * len(g.inputs)
        y = g.outputs[0]
        grads = []
        for index, (entry, need) in enumerate(zip(g.inputs, g.needs)):
            if not need:
                grads.append(None)
                continue
            attrs = dict(g.node.attrs)
            attrs = {k: v for k, v in attrs.items() if not k.startswith("__")}
            grad = g.op("_elemwise_grad", dy, *g.inputs, y, fwd_op=self.name, wrt=index,
                        num_args=len(g.inputs) + 2, **attrs)
            if self.broadcast:
                grad = g.op("_reduce_like", grad, entry)
            grads.append(grad)
        return grads

    def lower(self, p, ctx):
        ctx.elementwise(lambda m, *xs: self.formula(m, p, *xs))


@register
class ElemwiseGrad(ElementwiseOp):
    """``d(out)/d(input wrt) * dy`` of an elementwise op, as its own fusable node.

    Inputs: dy, the forward inputs, the forward output. Attributes: ``fwd_op``, ``wrt`` and
    the forward op's own attributes (``scalar``, ``act_type``...).
    """

    name = "_elemwise_grad"
    variadic = True
    broadcast = True
    differentiable = False
    params = (param("num_args", "int"), param("fwd_op", "str"), param("wrt", "int"))

    def parse(self, attrs, node_name):
        own = {k: v for k, v in attrs.items() if k in ("num_args", "fwd_op", "wrt")}
        base = super().parse(own, node_name)
        fwd = get_op(base.fwd_op)
        rest = {k: v for k, v in attrs.items() if k not in own}
        fwd_params = fwd.parse(rest, node_name)
        values = base.values + (("fwd_params", fwd_params),)
        return type(base)(values)

    def formula(self, m, p, dy, *rest):
        fwd = get_op(p.fwd_op)
        xs, y = rest[:-1], rest[-1]
        return fwd.derivatives(m, p.fwd_params, xs, y, dy)[p.wrt]

