"""Softmax, argmax and transpose/copy kernels (row-structured loop nests)."""

from __future__ import annotations

import math

from codegen import loop_ir as L
from codegen.kernels.builders import affine, loop_vars, merge_dims, nest, strides
from codegen.kernels.softmax_rows import MAX_COLS, short_softmax_kernel
from symgraph.errors import CompileError


def softmax_kernel(rows: int, cols: int, inp: L.BufferParam, out: L.BufferParam,
                   log: bool = False):
    """Row-wise (log-)softmax; subtracting the row max keeps exp() from overflowing.

    Short rows get the register-resident emitter; long rows the loop-IR kernel below.
    """
    if cols <= MAX_COLS:
        return short_softmax_kernel(rows, cols, inp, out, log)
    return loop_softmax_kernel(rows, cols, inp, out, log)


def loop_softmax_kernel(rows: int, cols: int, inp: L.BufferParam, out: L.BufferParam,
                        log: bool = False) -> L.Kernel:
    """Three passes per row (max, sum of exp, store) whose inner loops vectorize."""
    dt = inp.dtype
    i, j1, j2, j3 = L.Var("i"), L.Var("j1"), L.Var("j2"), L.Var("j3")
    mx, s = L.Var("mx", dt), L.Var("s", dt)

    def x(j):
        return L.Load(inp, i * cols + j)

    if log:
        lse = L.Var("lse", dt)
        final = L.Let(lse, mx + L.Un("log", s),
                      L.For(j3, cols, L.Store(out, i * cols + j3, x(j3) - lse)))
    else:
        inv = L.Var("inv", dt)
        final = L.Let(inv, L.Const(1.0, dt) / s,
                      L.For(j3, cols, L.Store(out, i * cols + j3,
                                              L.Un("exp", x(j3) - mx) * inv)))
    body = L.Reduce(mx, "max", j1, cols, x(j1),
                    L.Reduce(s, "sum", j2, cols, L.Un("exp", x(j2) - mx), final))
    return L.make_kernel([inp, out], L.For(i, rows, body))


def argmax_kernel(in_shape, axis: int, inp: L.BufferParam, out: L.BufferParam,
                  op: str = "argmax") -> L.Kernel:
    """Index (as out.dtype, MXNet returns float indices) of the first max along ``axis``."""
    in_shape = tuple(int(d) for d in in_shape)
    axis %= len(in_shape)
    outer = math.prod(in_shape[:axis])
    n = in_shape[axis]
    inner = math.prod(in_shape[axis + 1:])
    o, k, r = L.Var("o"), L.Var("k"), L.Var("r")
    acc = L.Var("acc", L.INT)
    value = L.Load(inp, o * (n * inner) + k * inner + r)
    store = L.Store(out, o * inner + r, L.Cast(acc, out.dtype))
    body = L.Reduce(acc, op, k, n, value, store)
    return L.make_kernel([inp, out], L.For(o, outer, L.For(r, inner, body)))


def transpose_kernel(in_shape, axes, inp: L.BufferParam, out: L.BufferParam) -> L.Kernel:
    """``out = inp.transpose(axes)`` (identity axes = copy), row-major flat buffers."""
    in_shape = tuple(int(d) for d in in_shape)
    axes = tuple(range(len(in_shape))) if axes is None else tuple(a % len(in_shape)
                                                                    for a in axes)
    if sorted(axes) != list(range(len(in_shape))):
        raise CompileError(f"bad transpose axes {axes} for shape {in_shape}")
    out_shape = tuple(in_shape[a] for a in axes)
    in_st = strides(in_shape)
    src = tuple(in_st[a] for a in axes)
    shape, (src_m, dst_m) = merge_dims(out_shape, [src, strides(out_shape)])
    vars_ = loop_vars(len(shape))
    body = L.Store(out, affine(vars_, dst_m), L.Load(inp, affine(vars_, src_m)))
    return L.make_kernel([inp, out], nest(vars_, shape, body))


def copy_kernel(size: int, inp: L.BufferParam, out: L.BufferParam) -> L.Kernel:
    return transpose_kernel((size,), None, inp, out)
