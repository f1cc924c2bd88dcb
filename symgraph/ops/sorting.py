"""topk, sort and argsort along an axis (MXNet 1.x), forward only.

Equal values keep their index order (a stable sort), ascending or descending. Indices
are returned as floats of ``dtype`` (MXNet's default float32). ``axis=None`` sorts the
flattened input. No gradient: asking for one through these ops is an error.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError, format_shape
from .array_ops import FLOAT_DTYPES, axis_view, norm_axis
from .params import param
from .registry import OpDef, register, require_attr

RET_TYPES = ("value", "indices", "mask", "both")
INDEX_DTYPES = FLOAT_DTYPES + ("float16", "int32", "int64", "uint8")


def stable_order(x: np.ndarray, axis: int, ascend: bool) -> np.ndarray:
    """Indices sorting ``x`` along ``axis``; ties keep the lower index first."""
    return np.argsort(x if ascend else -x, axis=axis, kind="stable")


class _SortBase(OpDef):
    differentiable = False

    def geometry(self, p, shape):
        """(outer, n, inner, out shape of a k-long result, k, normalized axis or None)."""
        if p.axis is None:
            shape, axis = (math.prod(shape),), 0
        else:
            axis = norm_axis(p.axis, len(shape), f"{self.name} axis")
        outer, n, inner = axis_view(shape, axis)
        k = self.k(p, n, shape)
        return outer, n, inner, shape[:axis] + (k,) + shape[axis + 1:], k, axis

    def k(self, p, n, shape):
        return n

    def parse(self, attrs, node_name):
        parsed = super().parse(attrs, node_name)
        dtype = getattr(parsed, "dtype", "float32")
        require_attr(self.name, node_name, dtype in FLOAT_DTYPES,
                     f"dtype={dtype!r} for indices is not supported; use "
                     f"{' or '.join(FLOAT_DTYPES)}")
        return parsed

    def index_dtype(self, p):
        return p.dtype

    def sort_shape(self, p, shape):
        from codegen.kernels.sort_kernels import SortShape

        outer, n, inner, _, k, _ = self.geometry(p, shape)
        return SortShape(outer, n, inner, k, bool(p.is_ascend))

    def scratch(self, ctx, name, size, dtype):
        """A whole-row buffer for this node only (the memory plan reuses it afterwards)."""
        from codegen.loop_ir import BufferParam

        return ctx.temp(size, dtype), BufferParam(name, dtype, size)


@register
class TopK(_SortBase):
    """The k largest (``is_ascend``: smallest) entries along ``axis``: their values, their
    indices, both, or a 0/1 mask of data's shape. ``k < 1`` sorts the whole axis."""

    name = "topk"
    params = (param("axis", "int?", -1), param("k", "int", 1),
              param("ret_typ", "str", "indices", choices=RET_TYPES),
              param("is_ascend", "bool", False),
              param("dtype", "str", "float32", choices=INDEX_DTYPES))

    def num_outputs(self, p):
        """value and both have two outputs (MXNet hides value's indices), the others one."""
        return 2 if p.ret_typ in ("value", "both") else 1

    def num_visible_outputs(self, p):
        return 2 if p.ret_typ == "both" else 1

    def k(self, p, n, shape):
        if p.k > n:
            raise ShapeError(f"topk k={p.k} is larger than the {n} elements along the axis of "
                             f"input 'data' {format_shape(shape)}")
        return n if p.k < 1 else p.k

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        if data is None:
            return in_shapes, [None] * self.num_outputs(p)
        if p.ret_typ == "mask":
            return in_shapes, [tuple(data)]
        out = self.geometry(p, tuple(data))[3]
        return in_shapes, [out] * self.num_outputs(p)

    def infer_type(self, p, in_types):
        data = in_types[0]
        kinds = {"value": [data, self.index_dtype(p)], "indices": [self.index_dtype(p)],
                 "mask": [data],
                 "both": [data, self.index_dtype(p)]}
        return in_types, kinds[p.ret_typ]

    def reference(self, p, inputs, ctx):
        data = inputs[0]
        outer, n, inner, out_shape, k, _ = self.geometry(p, data.shape)
        rows = data.reshape(outer, n, inner)
        order = stable_order(rows, 1, p.is_ascend)
        if p.ret_typ == "mask":
            mask = np.zeros_like(rows)
            np.put_along_axis(mask, order[:, :k], 1.0, axis=1)
            return [mask.reshape(data.shape)]
        values = np.take_along_axis(rows, order[:, :k], axis=1).reshape(out_shape)
        indices = order[:, :k].astype(p.dtype).reshape(out_shape)
        return [indices] if p.ret_typ == "indices" else [values, indices]

    def lower(self, p, ctx):
        from codegen.kernels.sort_kernels import head_kernel, rank_kernel

        s = self.sort_shape(p, ctx.in_shapes[0])
        if p.ret_typ == "mask":
            ctx.emit(rank_kernel(s, ctx.in_buf(0), mask=ctx.out_buf(0)))
            return
        wants = ("indices",) if p.ret_typ == "indices" else ("values", "indices")
        full = s.outer * s.n * s.inner
        buffers, bindings, heads = {}, {}, []
        for index, what in enumerate(wants):
            out = ctx.out_buf(index)
            if s.k == s.n:
                buffers[what] = out
                continue
            key, tmp = self.scratch(ctx, f"tmp{index}", full, out.dtype)
            buffers[what], bindings[tmp.name] = tmp, key
            heads.append((tmp, out, key))
        ctx.emit(rank_kernel(s, ctx.in_buf(0), **buffers), bindings)
        for tmp, out, key in heads:
            ctx.emit(head_kernel(s, tmp, out), {tmp.name: key})


@register
class Sort(_SortBase):
    """Values sorted along ``axis`` (ascending by default)."""

    name = "sort"
    params = (param("axis", "int?", -1), param("is_ascend", "bool", True))

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        return in_shapes, [None if data is None else self.geometry(p, tuple(data))[3]]

    def reference(self, p, inputs, ctx):
        data = inputs[0]
        outer, n, inner, out_shape, _, _ = self.geometry(p, data.shape)
        rows = data.reshape(outer, n, inner)
        order = stable_order(rows, 1, p.is_ascend)
        return [np.take_along_axis(rows, order, axis=1).reshape(out_shape)]

    def lower(self, p, ctx):
        from codegen.kernels.sort_kernels import rank_kernel

        ctx.emit(rank_kernel(self.sort_shape(p, ctx.in_shapes[0]), ctx.in_buf(0),
                             values=ctx.out_buf(0)))


@register
class Argsort(_SortBase):
    """Indices that sort ``data`` along ``axis``, as floats of ``dtype``."""

    name = "argsort"
    params = (param("axis", "int?", -1), param("is_ascend", "bool", True),
              param("dtype", "str", "float32", choices=INDEX_DTYPES))

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        return in_shapes, [None if data is None else self.geometry(p, tuple(data))[3]]

    def infer_type(self, p, in_types):
        return in_types, [self.index_dtype(p)]

    def reference(self, p, inputs, ctx):
        data = inputs[0]
        outer, n, inner, out_shape, _, _ = self.geometry(p, data.shape)
        order = stable_order(data.reshape(outer, n, inner), 1, p.is_ascend)
        return [order.astype(p.dtype).reshape(out_shape)]

    def lower(self, p, ctx):
        from codegen.kernels.sort_kernels import rank_kernel

        ctx.emit(rank_kernel(self.sort_shape(p, ctx.in_shapes[0]), ctx.in_buf(0),
                             indices=ctx.out_buf(0)))
