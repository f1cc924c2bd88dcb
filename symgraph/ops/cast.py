"""Cast (alias ``cast``): convert the element type. symgraph computes in float32 and
float64, so those are the targets; other MXNet dtypes are refused by name."""

from __future__ import annotations

from .params import param
from .registry import OpDef, register, require_attr

SUPPORTED = ("float32", "float64")
MXNET_DTYPES = ("float16", "float32", "float64", "uint8", "int8", "int32", "int64", "bool",
                "bfloat16")


def convert_kernel(ctx):
    """out = in converted to out's dtype (a rounding store; opaque to fusion on purpose, so
    a narrowing cast inside a fused float64 chain is never skipped)."""
    from codegen.kernels.builders import elementwise_kernel

    shape = ctx.in_shapes[0]
    ctx.emit(elementwise_kernel(shape, [(ctx.in_buf(0), shape)], lambda x: x,
                                [ctx.out_buf(0)]))


@register
class Cast(OpDef):
    name = "Cast"
    aliases = ("cast",)
    hint = "cast"
    params = (param("dtype", "str", choices=MXNET_DTYPES),)

    def parse(self, attrs, node_name):
        parsed = super().parse(attrs, node_name)
        require_attr(self.name, node_name, parsed.dtype in SUPPORTED,
                     f"dtype={parsed.dtype!r} is not supported; symgraph computes in "
                     f"{' and '.join(SUPPORTED)}")
        return parsed

    def infer_shape(self, p, in_shapes):
        return in_shapes, [in_shapes[0]]

    def infer_shape_backward(self, p, in_shapes, out_shapes):
        return [in_shapes[0] or out_shapes[0]]

    def infer_type(self, p, in_types):
        return in_types, [p.dtype]

    def reference(self, p, inputs, ctx):
        return [inputs[0].astype(p.dtype)]

    def gradient(self, p, g):
        return [g.op("_cast_like", g.out_grads[0], g.inputs[0])]

    def lower(self, p, ctx):
        convert_kernel(ctx)


@register
class CastLike(OpDef):
    """``data`` converted to the dtype of ``like`` (Cast's gradient: back to the input's
    type, which the gradient rule cannot name)."""

    name = "_cast_like"
    arguments = ("data", "like")
    differentiable = False

    def infer_shape(self, p, in_shapes):
        return in_shapes, [in_shapes[0]]

    def infer_type(self, p, in_types):
        return in_types, [in_types[1]]

    def reference(self, p, inputs, ctx):
        return [inputs[0].astype(inputs[1].dtype)]

    def lower(self, p, ctx):
        convert_kernel(ctx)
