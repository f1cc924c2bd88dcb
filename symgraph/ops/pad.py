"""Pad (alias ``pad``): constant, edge or reflect padding of the spatial axes of 4-D/5-D
data (MXNet 1.x: ``pad_width`` has two entries per axis, the batch and channel ones 0).

Every output position reads one source position per axis: itself shifted (constant),
clamped to the edge (edge), or mirrored about the edge without repeating it (reflect,
numpy's 'reflect'). The gradient sums the head gradient back through that same map.
"""

from __future__ import annotations

import numpy as np

from ..errors import OpAttributeError, ShapeError, format_shape
from .array_ops import fill, kernel_of
from .params import param
from .registry import OpDef, ShapedLikeGrad, register

PAD_MODES = ("constant", "edge", "reflect")


def source_ref(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """Source index of every output position along one axis (-1: constant padding)."""
    t = np.arange(-before, n + after)
    if mode == "edge":
        return np.clip(t, 0, n - 1)
    if mode == "reflect":
        a = np.abs(t)
        return (n - 1) - np.abs((n - 1) - a)
    return np.where((t >= 0) & (t < n), t, -1)


def source_ir(L, o, n: int, before: int, mode: str):
    """``source_ref`` as a loop-IR index, clamped so its range is provably in [0, n)."""
    zero, top = L.Const(0, L.INT), L.Const(n - 1, L.INT)
    t = o - before if before else o
    if mode == "reflect":
        a = L.Bin("max", t, zero - t)
        t = top - L.Bin("max", top - a, a - top)
    return L.Bin("min", L.Bin("max", t, zero), top)


class _PadBase(OpDef):
    params = (param("mode", "str", "constant", choices=PAD_MODES), param("pad_width", "shape"),
              param("constant_value", "float", 0.0))

    def pairs(self, p, shape) -> list[tuple[int, int]]:
        ndim = len(shape)
        if ndim not in (4, 5):
            raise ShapeError(f"input 'data' {format_shape(shape)} must be 4-D or 5-D")
        width = p.pad_width
        if len(width) != 2 * ndim:
            raise ShapeError(f"pad_width={width} must have {2 * ndim} entries (two per axis) "
                             f"for input 'data' {format_shape(shape)}")
        pairs = [(width[2 * k], width[2 * k + 1]) for k in range(ndim)]
        if any(pairs[0] + pairs[1]):
            raise ShapeError(f"pad_width={width}: the batch and channel axes cannot be padded "
                             "(their four entries must be 0)")
        if p.mode == "reflect":
            for axis, ((b, a), n) in enumerate(zip(pairs, shape)):
                if max(b, a) >= n:
                    raise ShapeError(f"reflect padding {(b, a)} of axis {axis} needs fewer "
                                     f"than its size {n} (input 'data' {format_shape(shape)})")
        return pairs

    def parse(self, attrs, node_name):
        parsed = super().parse(attrs, node_name)
        if any(w < 0 for w in parsed.pad_width):
            raise OpAttributeError(f"{self.name} node '{node_name}': pad_width="
                                   f"{parsed.pad_width} has a negative entry")
        return parsed


def padded(shape, pairs) -> tuple:
    return tuple(n + b + a for n, (b, a) in zip(shape, pairs))


def pad_stmts(shape, pairs, mode: str, value: float, forward: bool):
    """Forward: out (padded) from data. Backward: data-shaped sum of dy through the map."""
    big = padded(shape, pairs)

    def stmts(L, inputs, outputs):
        from codegen.kernels.builders import affine, loop_vars, nest, strides

        src, dst = inputs[0], outputs[0]
        if mode == "constant":
            vars_, big_strides = loop_vars(len(shape)), strides(big)
            corner = sum(b * st for (b, _), st in zip(pairs, big_strides))
            inner = affine(vars_, big_strides, corner)
            plain = affine(vars_, strides(shape))
            if not forward:
                return nest(vars_, shape, L.Store(dst, plain, L.Load(src, inner)))
            copy = nest(vars_, shape, L.Store(dst, inner, L.Load(src, plain)))
            return L.Block((fill(L, dst, value), copy))
        vars_ = loop_vars(len(big))
        mapped = L.Const(0, L.INT)
        for o, n, (b, _), st in zip(vars_, shape, pairs, strides(shape)):
            mapped = mapped + source_ir(L, o, n, b, mode) * st
        dense = affine(vars_, strides(big))
        if forward:
            return nest(vars_, big, L.Store(dst, dense, L.Load(src, mapped)))
        add = L.Store(dst, mapped, L.Load(dst, mapped) + L.Load(src, dense))
        return L.Block((fill(L, dst, 0.0), nest(vars_, big, add)))

    return stmts


@register
class Pad(_PadBase):
    name = "Pad"
    aliases = ("pad",)
    hint = "pad"

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        return in_shapes, [None if data is None else padded(data, self.pairs(p, data))]

    def reference(self, p, inputs, ctx):
        data = inputs[0]
        pairs = self.pairs(p, data.shape)
        if p.mode == "constant":
            return [np.pad(data, pairs, mode="constant", constant_values=p.constant_value)]
        return [np.pad(data, pairs, mode=p.mode)]

    def gradient(self, p, g):
        return [g.op("_pad_grad", g.out_grads[0], g.inputs[0], mode=p.mode,
                     pad_width=p.pad_width, constant_value=p.constant_value)]

    def lower(self, p, ctx):
        shape = ctx.in_shapes[0]
        pairs = self.pairs(p, shape)
        ctx.kernel(kernel_of(pad_stmts(shape, pairs, p.mode, p.constant_value, True)))


@register
class PadGrad(ShapedLikeGrad, _PadBase):
    """Inputs (dy, data): dy summed back onto the positions each padded entry read."""

    name = "_pad_grad"

    def reference(self, p, inputs, ctx):
        dy, data = inputs
        pairs = self.pairs(p, data.shape)
        maps = [source_ref(n, b, a, p.mode) for n, (b, a) in zip(data.shape, pairs)]
        grids = np.meshgrid(*maps, indexing="ij")
        keep = np.all([g >= 0 for g in grids], axis=0)
        out = np.zeros(data.shape, dtype=dy.dtype)
        np.add.at(out, tuple(g[keep] for g in grids), dy[keep])
        return [out]

    def lower(self, p, ctx):
        shape = ctx.in_shapes[1]
        pairs = self.pairs(p, shape)

        def stmts(L, inputs, outputs):
            return pad_stmts(shape, pairs, p.mode, 0.0, False)(L, inputs[:1], outputs)

        ctx.kernel(kernel_of(stmts))
