"""Array ops: layout (transpose, expand_dims, squeeze, SwapAxis), joins and cuts (Concat,
SliceChannel, slice_axis), broadcasts, softmax/log_softmax, argmax/argmin, one_hot, Embedding.

Gradients are graphs of registered ops. Where a gradient needs shapes the rule cannot see
(GradContext has no shapes), a private ``_..._grad`` op takes the forward input as a
shape carrier, as ``reshape_like``/``_reduce_like`` do. Kernels that no LowerContext helper
covers are loop-IR nests built in ``lower`` (codegen is imported there only: the dependency
points codegen -> symgraph).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError, format_shape
from .params import param
from .registry import OpDef, ShapedLikeGrad, merge_shape, register, require_attr
from .tensor import float_to_index, norm_axes


def norm_axis(axis: int, ndim: int, what: str = "axis") -> int:
    """One axis in [-ndim, ndim) made non-negative, or a ShapeError naming it."""
    if not -ndim <= axis < ndim:
        raise ShapeError(f"{what} {axis} is out of range for {ndim} dimensions")
    return axis % ndim


def axis_view(shape, axis: int) -> tuple[int, int, int]:
    """(outer, n, inner): ``shape`` seen as three axes around ``axis`` (row-major)."""
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


# ---- kernels (loop IR; codegen imported lazily) ---------------------------------------------
def axis_copy(L, src, dst, outer: int, inner: int, span: tuple, src_off: int, dst_off: int):
    """Copy ``count`` slabs along an axis: ``span = (src_n, dst_n, count)``.

    Slabs are contiguous (``count * inner`` elements) in both buffers, so the inner loop
    is unit-stride and vectorizes.
    """
    src_n, dst_n, count = span
    o, j = L.Var("o"), L.Var("j")
    src_idx = o * (src_n * inner) + src_off * inner + j
    dst_idx = o * (dst_n * inner) + dst_off * inner + j
    body = L.Store(dst, dst_idx, L.Load(src, src_idx))
    return L.For(o, outer, L.For(j, count * inner, body))


def fill(L, buf, value: float):
    j = L.Var("j")
    return L.For(j, buf.size, L.Store(buf, j, L.Const(value, buf.dtype)))


def kernel_of(stmts):
    """A kernel builder for ``ctx.kernel`` from a function of (L, inputs, outputs)."""

    def build(inputs, outputs):
        from codegen import loop_ir as L

        body = stmts(L, inputs, outputs)
        return L.make_kernel(list(inputs) + list(outputs), body)

    return build


# ---- layout ---------------------------------------------------------------------------------
def transpose_axes(axes, ndim: int) -> tuple:
    if not axes:
        return tuple(reversed(range(ndim)))
    perm = tuple(norm_axis(a, ndim, "transpose axis") for a in axes)
    if sorted(perm) != list(range(ndim)):
        raise ShapeError(f"transpose axes {tuple(axes)} are not a permutation of {ndim} axes")
    return perm


@register
class Transpose(OpDef):
    """Permute axes (``axes=()`` reverses them); the gradient is the inverse permutation."""

    name = "transpose"
    params = (param("axes", "shape", ()),)

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        if data is None:
            return in_shapes, [None]
        return in_shapes, [tuple(data[a] for a in transpose_axes(p.axes, len(data)))]

    def infer_shape_backward(self, p, in_shapes, out_shapes):
        out = out_shapes[0]
        if in_shapes[0] is None and out is not None:
            perm = transpose_axes(p.axes, len(out))
            in_shapes[0] = tuple(out[perm.index(i)] for i in range(len(out)))
        return in_shapes

    def reference(self, p, inputs, ctx):
        data = inputs[0]
        return [np.ascontiguousarray(data.transpose(transpose_axes(p.axes, data.ndim)))]

    def gradient(self, p, g):
        if not p.axes:
            return [g.op("transpose", g.out_grads[0])]
        perm = [a % len(p.axes) for a in p.axes]
        inverse = tuple(perm.index(i) for i in range(len(perm)))
        return [g.op("transpose", g.out_grads[0], axes=inverse)]

    def lower(self, p, ctx):
        ctx.transpose(transpose_axes(p.axes, len(ctx.in_shapes[0])))


@register
class SwapAxis(OpDef):
    """Exchange two axes; its own inverse, so the gradient swaps the same axes back."""

    name = "SwapAxis"
    aliases = ("swapaxes",)
    hint = "swapaxis"
    params = (param("dim1", "int", 0), param("dim2", "int", 0))

    def perm(self, p, ndim):
        a, b = norm_axis(p.dim1, ndim, "dim1"), norm_axis(p.dim2, ndim, "dim2")
        order = list(range(ndim))
        order[a], order[b] = order[b], order[a]
        return tuple(order)

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        if data is None:
            return in_shapes, [None]
        return in_shapes, [tuple(data[a] for a in self.perm(p, len(data)))]

    def infer_shape_backward(self, p, in_shapes, out_shapes):
        out = out_shapes[0]
        if in_shapes[0] is None and out is not None:
            in_shapes[0] = tuple(out[a] for a in self.perm(p, len(out)))
        return in_shapes

    def reference(self, p, inputs, ctx):
        return [np.ascontiguousarray(inputs[0].transpose(self.perm(p, inputs[0].ndim)))]

    def gradient(self, p, g):
        return [g.op("SwapAxis", g.out_grads[0], dim1=p.dim1, dim2=p.dim2)]

    def lower(self, p, ctx):
        ctx.transpose(self.perm(p, len(ctx.in_shapes[0])))


class _ReshapeView(OpDef):
    """A pure view change: reshape_like gradient, aliased output buffer."""

    def out_shape(self, p, shape):
        raise NotImplementedError

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        return in_shapes, [None if data is None else self.out_shape(p, tuple(data))]

    def reference(self, p, inputs, ctx):
        return [inputs[0].reshape(self.out_shape(p, inputs[0].shape))]

    def gradient(self, p, g):
        return [g.op("reshape_like", g.out_grads[0], g.inputs[0])]

    def lower(self, p, ctx):
        ctx.alias()


@register
class ExpandDims(_ReshapeView):
    """Insert a size-1 axis at ``axis`` (in [-ndim-1, ndim])."""

    name = "expand_dims"
    params = (param("axis", "int"),)

    def out_shape(self, p, shape):
        axis = norm_axis(p.axis, len(shape) + 1, "expand_dims axis")
        return shape[:axis] + (1,) + shape[axis:]

    def infer_shape_backward(self, p, in_shapes, out_shapes):
        out = out_shapes[0]
        if in_shapes[0] is None and out is not None:
            axis = norm_axis(p.axis, len(out), "expand_dims axis")
            in_shapes[0] = out[:axis] + out[axis + 1:]
        return in_shapes


@register
class Squeeze(_ReshapeView):
    """Drop size-1 axes (all of them, or the listed ones, which must have size 1).

    Squeezing every axis away leaves shape (1,), as MXNet's legacy shapes cannot be ().
    """

    name = "squeeze"
    params = (param("axis", "shape?", None),)

    def out_shape(self, p, shape):
        if p.axis is None:
            axes = tuple(i for i, d in enumerate(shape) if d == 1)
        else:
            axes = norm_axes(p.axis, len(shape), "squeeze axis")
            for a in axes:
                if shape[a] != 1:
                    raise ShapeError(f"squeeze axis {a} of {format_shape(shape)} has size "
                                     f"{shape[a]}, expected 1")
        kept = tuple(d for i, d in enumerate(shape) if i not in axes)
        return kept or (1,)


# ---- Concat and its gradient --------------------------------------------------------------
def concat_shape(shapes, dim: int, names) -> tuple | None:
    """Output of concatenating ``shapes`` along ``dim``; all other dims must agree."""
    if any(s is None for s in shapes):
        return None
    first = shapes[0]
    axis = norm_axis(dim, len(first), "Concat dim")
    for name, shape in zip(names, shapes):
        same_rank = len(shape) == len(first)
        if not same_rank or any(a != b for i, (a, b) in enumerate(zip(shape, first))
                                if i != axis):
            raise ShapeError(f"input '{name}' has shape {format_shape(shape)}, expected "
                             f"{format_shape(first)} except along dim {dim}")
    total = sum(s[axis] for s in shapes)
    return first[:axis] + (total,) + first[axis + 1:]


def concat_stmts(shapes, out_shape, axis: int, to_out: bool):
    """Copy each part into (to_out) or out of a concatenation along ``axis``."""

    def stmts(L, inputs, outputs):
        whole = outputs[0] if to_out else inputs[0]
        parts = inputs if to_out else outputs
        outer, total, inner = axis_view(out_shape, axis)
        nests, offset = [], 0
        for part, shape in zip(parts, shapes):
            n = shape[axis]
            if to_out:
                nests.append(axis_copy(L, part, whole, outer, inner, (n, total, n), 0, offset))
            else:
                nests.append(axis_copy(L, whole, part, outer, inner, (total, n, n), offset, 0))
            offset += n
        return L.Block(tuple(nests))

    return stmts


@register
class Concat(OpDef):
    """Join inputs ``arg0..`` along ``dim``; the gradient cuts the head gradient back."""

    name = "Concat"
    aliases = ("concat",)
    hint = "concat"
    variadic = True
    params = (param("num_args", "int"), param("dim", "int", 1))

    def parse(self, attrs, node_name):
        parsed = super().parse(attrs, node_name)
        require_attr(self.name, node_name, parsed.num_args >= 1,
                     f"num_args must be >= 1, got {parsed.num_args}")
        return parsed

    def infer_shape(self, p, in_shapes):
        names = self.input_names(p)
        return in_shapes, [concat_shape(in_shapes, p.dim, names)]

    def reference(self, p, inputs, ctx):
        return [np.concatenate(inputs, axis=p.dim)]

    def gradient(self, p, g):
        parts = g.op_multi("_concat_grad", g.out_grads[0], *g.inputs,
                           num_args=len(g.inputs) + 1, dim=p.dim)
        return [part if need else None for part, need in zip(parts, g.needs)]

    def lower(self, p, ctx):
        axis = norm_axis(p.dim, len(ctx.out_shapes[0]))
        ctx.kernel(kernel_of(concat_stmts(ctx.in_shapes, ctx.out_shapes[0], axis, True)))


@register
class ConcatGrad(OpDef):
    """Inputs (dy, the forward parts); output k is dy's slab shaped like part k."""

    name = "_concat_grad"
    variadic = True
    differentiable = False
    params = (param("num_args", "int"), param("dim", "int", 1))

    def num_outputs(self, p):
        return p.num_args - 1

    def infer_shape(self, p, in_shapes):
        return in_shapes, list(in_shapes[1:])

    def reference(self, p, inputs, ctx):
        dy, parts = inputs[0], inputs[1:]
        cuts = np.cumsum([part.shape[p.dim] for part in parts])[:-1]
        return [np.ascontiguousarray(x) for x in np.split(dy, cuts, axis=p.dim)]

    def lower(self, p, ctx):
        shapes = ctx.in_shapes
        axis = norm_axis(p.dim, len(shapes[0]))
        ctx.kernel(kernel_of(concat_stmts(shapes[1:], shapes[0], axis, False)))


# ---- SliceChannel (split) -----------------------------------------------------------------
@register
class SliceChannel(OpDef):
    """Split along ``axis`` into ``num_outputs`` equal parts (``squeeze_axis`` drops the axis
    when each part has size 1). The gradient concatenates the parts' head gradients."""

    name = "SliceChannel"
    aliases = ("split",)
    hint = "slicechannel"
    params = (param("num_outputs", "int"), param("axis", "int", 1),
              param("squeeze_axis", "bool", False))

    def parse(self, attrs, node_name):
        parsed = super().parse(attrs, node_name)
        require_attr(self.name, node_name, parsed.num_outputs >= 1,
                     f"num_outputs must be >= 1, got {parsed.num_outputs}")
        return parsed

    def num_outputs(self, p):
        return p.num_outputs

    def output_names(self, p):
        return [f"output{i}" for i in range(p.num_outputs)]

    def part_shape(self, p, data):
        axis = norm_axis(p.axis, len(data), "SliceChannel axis")
        if data[axis] % p.num_outputs:
            raise ShapeError(f"input 'data' {format_shape(data)}: axis {axis} of size "
                             f"{data[axis]} does not split into {p.num_outputs} equal parts")
        size = data[axis] // p.num_outputs
        if p.squeeze_axis:
            if size != 1:
                raise ShapeError(f"squeeze_axis needs parts of size 1 along axis {axis}, got "
                                 f"{size} for input 'data' {format_shape(data)}")
            return data[:axis] + data[axis + 1:] or (1,)
        return data[:axis] + (size,) + data[axis + 1:]

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        part = None if data is None else self.part_shape(p, tuple(data))
        return in_shapes, [part] * p.num_outputs

    def reference(self, p, inputs, ctx):
        data = inputs[0]
        shape = self.part_shape(p, data.shape)
        return [np.ascontiguousarray(x).reshape(shape)
                for x in np.split(data, p.num_outputs, axis=p.axis)]

    def gradient(self, p, g):
        parts = []
        for dy, out in zip(g.out_grads, g.outputs):
            part = dy if dy is not None else g.op("zeros_like", out)
            if p.squeeze_axis:
                part = g.op("expand_dims", part, axis=p.axis)
            parts.append(part)
        return [g.op("Concat", *parts, num_args=len(parts), dim=p.axis)]

    def lower(self, p, ctx):
        data = ctx.in_shapes[0]
        axis = norm_axis(p.axis, len(data))
        size = data[axis] // p.num_outputs
        shapes = [data[:axis] + (size,) + data[axis + 1:]] * p.num_outputs
        ctx.kernel(kernel_of(concat_stmts(shapes, data, axis, False)))


# ---- slice_axis -------------------------------------------------------------------------------
def slice_bounds(p, shape) -> tuple[int, int, int]:
    """(axis, begin, end) made non-negative; an empty or out-of-range slice is an error."""
    axis = norm_axis(p.axis, len(shape), "slice_axis axis")
    n = shape[axis]
    begin = p.begin + n if p.begin < 0 else p.begin
    end = n if p.end is None else (p.end + n if p.end < 0 else p.end)
    if not 0 <= begin < end <= n:
        raise ShapeError(f"slice_axis begin={p.begin}, end={p.end} is empty or out of range "
                         f"for axis {axis} of size {n} (input 'data' {format_shape(shape)})")
    return axis, begin, end


SLICE_PARAMS = (param("axis", "int"), param("begin", "int"), param("end", "int?", None))


@register
class SliceAxis(OpDef):
    """``data`` restricted to ``[begin, end)`` along ``axis`` (negative = from the end)."""

    name = "slice_axis"
    params = SLICE_PARAMS

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        if data is None:
            return in_shapes, [None]
        axis, begin, end = slice_bounds(p, data)
        return in_shapes, [data[:axis] + (end - begin,) + data[axis + 1:]]

    def reference(self, p, inputs, ctx):
        data = inputs[0]
        axis, begin, end = slice_bounds(p, data.shape)
        return [np.ascontiguousarray(np.take(data, range(begin, end), axis=axis))]

    def gradient(self, p, g):
        return [g.op("_slice_axis_grad", g.out_grads[0], g.inputs[0], axis=p.axis,
                     begin=p.begin, end=p.end)]

    def lower(self, p, ctx):
        data = ctx.in_shapes[0]
        axis, begin, end = slice_bounds(p, data)
        outer, n, inner = axis_view(data, axis)
        count = end - begin

        def stmts(L, inputs, outputs):
            span = (n, count, count)
            return axis_copy(L, inputs[0], outputs[0], outer, inner, span, begin, 0)

        ctx.kernel(kernel_of(stmts))


@register
class SliceAxisGrad(ShapedLikeGrad):
    """Inputs (dy, data): zeros of data's shape with dy written into the sliced range."""

    name = "_slice_axis_grad"
    params = SLICE_PARAMS

    def reference(self, p, inputs, ctx):
        dy, data = inputs
        axis, begin, end = slice_bounds(p, data.shape)
        out = np.zeros_like(data, dtype=dy.dtype)
        index = [slice(None)] * data.ndim
        index[axis] = slice(begin, end)
        out[tuple(index)] = dy
        return [out]

    def lower(self, p, ctx):
        data = ctx.in_shapes[1]
        axis, begin, end = slice_bounds(p, data)
        outer, n, inner = axis_view(data, axis)
        count = end - begin

        def stmts(L, inputs, outputs):
            out = outputs[0]
            copy = axis_copy(L, inputs[0], out, outer, inner, (count, n, count), 0, begin)
            return L.Block((fill(L, out, 0.0), copy))

        ctx.kernel(kernel_of(stmts))


# ---- broadcasts ---------------------------------------------------------------------------------
def broadcast_check(data, target, what: str) -> tuple:
    """``data`` broadcast to ``target`` (same rank; a 0 in target keeps data's dim)."""
    same_rank = len(target) == len(data)
    if same_rank:
        target = tuple(d if t == 0 else t for d, t in zip(data, target))
    if not same_rank or any(d not in (1, t) for d, t in zip(data, target)):
        raise ShapeError(f"{what}: input 'data' {format_shape(data)} cannot be broadcast to "
                         f"{format_shape(target)} (same rank; only size-1 axes grow)")
    return tuple(target)


class _BroadcastTo(OpDef):
    """Shared rules: reference via numpy, gradient sums back with ``_reduce_like``."""

    def target(self, p, data):
        raise NotImplementedError

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        return in_shapes, [None if data is None else self.target(p, tuple(data))]

    def reference(self, p, inputs, ctx):
        data = inputs[0]
        return [np.broadcast_to(data, self.target(p, data.shape)).copy()]

    def gradient(self, p, g):
        return [g.op("_reduce_like", g.out_grads[0], g.inputs[0])]

    def lower(self, p, ctx):
        ctx.elementwise(lambda m, x: x + 0.0)


@register
class BroadcastTo(_BroadcastTo):
    """Broadcast size-1 axes to ``shape`` (0 keeps the input's dim)."""

    name = "broadcast_to"
    params = (param("shape", "shape"),)

    def target(self, p, data):
        return broadcast_check(data, p.shape, f"broadcast_to shape={p.shape}")


@register
class BroadcastAxis(_BroadcastTo):
    """Broadcast the size-1 ``axis`` (one or more) to ``size`` (one per axis)."""

    name = "broadcast_axis"
    aliases = ("broadcast_axes",)
    params = (param("axis", "shape", ()), param("size", "shape", ()))

    def target(self, p, data):
        what = f"broadcast_axis axis={p.axis} size={p.size}"
        if len(p.axis) != len(p.size):
            raise ShapeError(f"{what}: axis and size must have the same length")
        target = list(data)
        for axis, size in zip(p.axis, p.size):
            target[norm_axis(axis, len(data), "broadcast_axis axis")] = size
        return broadcast_check(data, tuple(target), what)


# ---- softmax / log_softmax ------------------------------------------------------------------
SOFTMAX_PARAMS = (param("axis", "int", -1), param("temperature", "float?", None),
                  param("dtype", "str?", None), param("use_length", "bool?", False))


def softmax_ref(x: np.ndarray, axis: int, temperature, log: bool) -> np.ndarray:
    z = x / temperature if temperature else x
    shifted = z - z.max(axis=axis, keepdims=True)
    if log:
        return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


class _Softmax(OpDef):
    log = False
    params = SOFTMAX_PARAMS

    def parse(self, attrs, node_name):
        parsed = super().parse(attrs, node_name)
        require_attr(self.name, node_name, not parsed.use_length,
                     "use_length=True is not supported")
        return parsed

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        if data is not None:
            norm_axis(p.axis, len(data), f"{self.name} axis")
        return in_shapes, [data]

    def infer_shape_backward(self, p, in_shapes, out_shapes):
        return [out_shapes[0] if in_shapes[0] is None else in_shapes[0]]

    def reference(self, p, inputs, ctx):
        return [softmax_ref(inputs[0], p.axis, p.temperature, self.log).astype(inputs[0].dtype)]

    def scale(self, p, g, grad):
        if p.temperature and p.temperature != 1.0:
            return g.op("_div_scalar", grad, scalar=p.temperature)
        return grad

    def lower(self, p, ctx):
        ctx.softmax(axis=p.axis, log=self.log, temperature=p.temperature)


@register
class Softmax(_Softmax):
    """exp((x - max)/T) / sum along ``axis``; dx = y * (dy - sum(dy * y)) / T."""

    name = "softmax"

    def gradient(self, p, g):
        dy, y = g.out_grads[0], g.outputs[0]
        dot = g.op("sum", g.op("elemwise_mul", dy, y), axis=(p.axis,), keepdims=True)
        grad = g.op("elemwise_mul", g.op("broadcast_sub", dy, dot), y)
        return [self.scale(p, g, grad)]


@register
class LogSoftmax(_Softmax):
    """(x/T) - logsumexp(x/T) along ``axis``; dx = (dy - exp(y) * sum(dy)) / T."""

    name = "log_softmax"
    log = True

    def gradient(self, p, g):
        dy, y = g.out_grads[0], g.outputs[0]
        total = g.op("sum", dy, axis=(p.axis,), keepdims=True)
        grad = g.op("broadcast_sub", dy, g.op("broadcast_mul", g.op("exp", y), total))
        return [self.scale(p, g, grad)]


# ---- argmax / argmin ---------------------------------------------------------------------------
class _ArgExtremum(OpDef):
    """Index of the first extremum as a float (MXNet); axis=None searches the flattened
    input and gives shape (1,). No gradient flows (MXNet's zero-gradient rule)."""

    params = (param("axis", "int?", None), param("keepdims", "bool", False))

    def out_shape(self, p, shape):
        if p.axis is None:
            return (1,) * len(shape) if p.keepdims else (1,)
        axis = norm_axis(p.axis, len(shape), f"{self.name} axis")
        if p.keepdims:
            return shape[:axis] + (1,) + shape[axis + 1:]
        return shape[:axis] + shape[axis + 1:] or (1,)

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        return in_shapes, [None if data is None else self.out_shape(p, tuple(data))]

    def reference(self, p, inputs, ctx):
        data = inputs[0]
        find = np.argmax if self.name == "argmax" else np.argmin
        index = find(data.reshape(-1)) if p.axis is None else find(data, axis=p.axis)
        return [np.asarray(index, dtype=data.dtype).reshape(self.out_shape(p, data.shape))]

    def gradient(self, p, g):
        return [None]

    def lower(self, p, ctx):
        axis = None if p.axis is None else norm_axis(p.axis, len(ctx.in_shapes[0]))
        ctx.argmax(axis, op=self.name)


@register
class Argmax(_ArgExtremum):
    name = "argmax"


@register
class Argmin(_ArgExtremum):
    name = "argmin"


# ---- one_hot -------------------------------------------------------------------------------------
FLOAT_DTYPES = ("float32", "float64")


@register
class OneHot(OpDef):
    """``indices.shape + (depth,)``: on_value at int(index), off_value elsewhere (an index
    outside [0, depth) gives a row of off_value). Indices get no gradient."""

    name = "one_hot"
    arguments = ("indices",)
    params = (param("depth", "int"), param("on_value", "float", 1.0),
              param("off_value", "float", 0.0), param("dtype", "str", "float32",
                                                      choices=FLOAT_DTYPES))

    def infer_shape(self, p, in_shapes):
        indices = in_shapes[0]
        return in_shapes, [None if indices is None else tuple(indices) + (p.depth,)]

    def infer_type(self, p, in_types):
        return in_types, [p.dtype]

    def reference(self, p, inputs, ctx):
        index = float_to_index(inputs[0])[..., None]
        hit = index == np.arange(p.depth)
        return [np.where(hit, p.on_value, p.off_value).astype(p.dtype)]

    def gradient(self, p, g):
        return [None]

    def lower(self, p, ctx):
        n, depth = math.prod(ctx.in_shapes[0]), p.depth

        def stmts(L, inputs, outputs):
            out, i, d = outputs[0], L.Var("i"), L.Var("d")
            hit = L.Cmp("eq", L.Cast(L.Load(inputs[0], i), L.INT), d)
            on, off = L.Const(p.on_value, out.dtype), L.Const(p.off_value, out.dtype)
            store = L.Store(out, i * depth + d, L.Select(hit, on, off))
            return L.For(i, n, L.For(d, depth, store))

        ctx.kernel(kernel_of(stmts))


# ---- Embedding -----------------------------------------------------------------------------------
@register
class Embedding(OpDef):
    """Row lookup ``weight[int(data)]`` (indices clipped into [0, input_dim)); the gradient
    scatter-adds dy into weight rows, and the indices get none."""

    name = "Embedding"
    hint = "embedding"
    arguments = ("data", "weight")
    params = (param("input_dim", "int"), param("output_dim", "int"),
              param("dtype", "str", "float32", choices=FLOAT_DTYPES),
              param("sparse_grad", "bool", False))

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        in_shapes[1] = merge_shape("input 'weight'", in_shapes[1], (p.input_dim, p.output_dim))
        return in_shapes, [None if data is None else tuple(data) + (p.output_dim,)]

    def infer_type(self, p, in_types):
        dtype = in_types[1] or p.dtype
        return [in_types[0] or dtype, dtype], [dtype]

    def reference(self, p, inputs, ctx):
        data, weight = inputs
        rows = np.clip(float_to_index(data), 0, p.input_dim - 1)
        return [weight[rows]]

    def gradient(self, p, g):
        if not g.needs[1]:
            return [None, None]
        grad = g.op("_embedding_grad", g.out_grads[0], g.inputs[0], g.inputs[1],
                    input_dim=p.input_dim, output_dim=p.output_dim)
        return [None, grad]

    def lower(self, p, ctx):
        n, dim, top = math.prod(ctx.in_shapes[0]), p.output_dim, p.input_dim - 1

        def stmts(L, inputs, outputs):
            data, weight = inputs
            i, d, row = L.Var("i"), L.Var("d"), L.Var("row")
            clipped = L.Bin("min", L.Bin("max", L.Cast(L.Load(data, i), L.INT),
                                         L.Const(0, L.INT)), L.Const(top, L.INT))
            copy = L.Store(outputs[0], i * dim + d, L.Load(weight, row * dim + d))
            return L.For(i, n, L.Let(row, clipped, L.For(d, dim, copy)))

        ctx.kernel(kernel_of(stmts))


@register
class EmbeddingGrad(ShapedLikeGrad):
    """Inputs (dy, data, weight): zeros of weight's shape plus dy rows added at the indices."""

    name = "_embedding_grad"
    arguments = ("dy", "data", "weight")
    shaped_like = "weight"
    params = (param("input_dim", "int"), param("output_dim", "int"))

    def infer_type(self, p, in_types):
        """dy, weight and the result share one dtype; the indices keep their own."""
        dtype = in_types[2] or in_types[0]
        return [dtype, in_types[1] or dtype, dtype], [dtype]

    def reference(self, p, inputs, ctx):
        dy, data, weight = inputs
        rows = np.clip(float_to_index(data), 0, p.input_dim - 1).reshape(-1)
        out = np.zeros_like(weight)
        np.add.at(out, rows, dy.reshape(-1, p.output_dim))
        return [out]

    def lower(self, p, ctx):
        n, dim, top = math.prod(ctx.in_shapes[1]), p.output_dim, p.input_dim - 1

        def stmts(L, inputs, outputs):
            dy, data, _ = inputs
            out = outputs[0]
            i, d, row = L.Var("i"), L.Var("d"), L.Var("row")
            clipped = L.Bin("min", L.Bin("max", L.Cast(L.Load(data, i), L.INT),
                                         L.Const(0, L.INT)), L.Const(top, L.INT))
            at = row * dim + d
            add = L.Store(out, at, L.Load(out, at) + L.Load(dy, i * dim + d))
            scatter = L.For(i, n, L.Let(row, clipped, L.For(d, dim, add)), vectorize=False)
            return L.Block((fill(L, out, 0.0), scatter))

        ctx.kernel(kernel_of(stmts))
