"""Loop kernels of 2-D pooling (NCHW): max/avg/sum forward and their gradients.

They reuse convolution's tap-major window walk (``conv_kernels.window_passes``), so a
window is never tested for bounds per element: padding cells are simply not visited,
which is exactly MXNet's "padding never wins the max / never receives gradient".
Averages are scaled in a separate pass whose loops are split where the divisor changes
(only near the borders), so the divisor is a compile-time constant in every loop.
"""

from __future__ import annotations

import numpy as np

from codegen import loop_ir as L
from codegen.kernels import pool_grad_rows
from codegen.kernels.conv_kernels import Axis, fill, window_passes


def _runs(values) -> list[tuple[int, int, int]]:
    """(start, length, value) for each run of equal consecutive values."""
    runs: list[list[int]] = []
    for i, v in enumerate(values):
        if runs and runs[-1][2] == v:
            runs[-1][1] += 1
        else:
            runs.append([i, 1, v])
    return [tuple(r) for r in runs]


def _index(plane_var, plane, row, width, col):
    return plane_var * plane + row * width + col


def _scale_pass(planes: int, rows: Axis, cols: Axis, counts, src, dst) -> L.Stmt:
    """``dst[nc, oh, ow] = src[nc, oh, ow] / (count_h[oh] * count_w[ow])``."""
    i, a, b = L.Var("s_nc"), L.Var("s_oh"), L.Var("s_ow")
    plane = rows.out * cols.out
    loops = []
    for h0, h_len, ch in _runs(counts[0]):
        for w0, w_len, cw in _runs(counts[1]):
            idx = _index(i, plane, a + h0, cols.out, b + w0)
            scale = L.Const(1.0 / max(ch * cw, 1), dst.dtype)
            store = L.Store(dst, idx, L.Load(src, idx) * scale)
            loops.append(L.For(a, h_len, L.For(b, w_len, store)))
    return L.For(i, planes, L.block(*loops))


def pool_forward_kernel(planes: int, rows: Axis, cols: Axis, kind: str, counts,
                        inp: L.BufferParam, out: L.BufferParam) -> L.Kernel:
    """max (empty windows give the dtype's lowest value, as MXNet), sum, or avg with the
    per-axis window ``counts`` as divisors; ``planes`` = N*C."""
    i = L.Var("nc")
    in_plane, out_plane = rows.size * cols.size, rows.out * cols.out

    def accumulate(ki, kj, oh, ow, h, w):
        dst = _index(i, out_plane, oh, cols.out, ow)
        x, cur = L.Load(inp, _index(i, in_plane, h, cols.size, w)), L.Load(out, dst)
        return L.Store(out, dst, L.Bin("max", cur, x) if kind == "max" else cur + x)

    if _inside(rows, cols):
        return L.make_kernel([inp, out], _inside_forward(planes, rows, cols, kind, inp, out))
    init = float(np.finfo(out.dtype).min) if kind == "max" else 0.0
    stmts = [fill(out, init), L.For(i, planes, window_passes(rows, cols, accumulate))]
    if kind == "avg":
        stmts.append(_scale_pass(planes, rows, cols, counts, out, out))
    return L.make_kernel([inp, out], L.block(*stmts))


def pool_max_grad_kernel(planes: int, rows: Axis, cols: Axis, dy: L.BufferParam,
                         x: L.BufferParam, y: L.BufferParam, rem: L.BufferParam,
                         dx: L.BufferParam) -> L.Kernel:
    """Each output's gradient goes to the first (row-major) cell of its window equal to
    the max: ``rem`` holds what is still unrouted, zeroed at the first hit."""
    i, t = L.Var("nc"), L.Var("t")
    in_plane, out_plane = rows.size * cols.size, rows.out * cols.out
    zero = L.Const(0.0, dx.dtype)

    def route(ki, kj, oh, ow, h, w):
        src = _index(i, in_plane, h, cols.size, w)
        dst = _index(i, out_plane, oh, cols.out, ow)
        hit = L.Cmp("eq", L.Load(x, src), L.Load(y, dst))
        pending = L.Load(rem, dst)
        return L.block(L.Store(dx, src, L.Load(dx, src) + L.Select(hit, pending, zero)),
                       L.Store(rem, dst, L.Select(hit, zero, pending)))

    if _inside(rows, cols) and _tiled(rows, cols):
        if pool_grad_rows.fits(rows, cols, dx.dtype):
            return pool_grad_rows.max_pool_grad_rows(planes, rows, cols, dy, x, y, dx)
        return L.make_kernel([dy, x, y, dx], _tiled_max_grad(planes, rows, cols, dy, x, y, dx))
    stmts = [L.For(t, rem.size, L.Store(rem, t, L.Load(dy, t))), fill(dx, 0.0),
             L.For(i, planes, window_passes(rows, cols, route))]
    return L.make_kernel([dy, x, y, rem, dx], L.block(*stmts))


def pool_sum_grad_kernel(planes: int, rows: Axis, cols: Axis, counts, dy: L.BufferParam,
                         scaled: L.BufferParam | None, dx: L.BufferParam) -> L.Kernel:
    """Every in-input cell of a window receives the output's gradient (divided by the
    window count for avg, when ``scaled`` is the scratch buffer for dy/count)."""
    i = L.Var("nc")
    in_plane, out_plane = rows.size * cols.size, rows.out * cols.out
    grad = dy if scaled is None else scaled

    def spread(ki, kj, oh, ow, h, w):
        src = _index(i, in_plane, h, cols.size, w)
        dst = _index(i, out_plane, oh, cols.out, ow)
        return L.Store(dx, src, L.Load(dx, src) + L.Load(grad, dst))

    stmts = [fill(dx, 0.0), L.For(i, planes, window_passes(rows, cols, spread))]
    if scaled is not None:
        stmts.insert(0, _scale_pass(planes, rows, cols, counts, dy, scaled))
    params = [dy] + ([scaled] if scaled is not None else []) + [dx]
    return L.make_kernel(params, L.block(*stmts))


# ---- windows wholly inside the input (no padding touched): one pass, no read-modify-write
MAX_UNROLLED_TAPS = 16


def _inside(rows: Axis, cols: Axis) -> bool:
    """Every window lies in the input and is small enough to unroll into one expression."""
    return rows.covers and cols.covers and rows.kernel * cols.kernel <= MAX_UNROLLED_TAPS


def _tiled(rows: Axis, cols: Axis) -> bool:
    """Windows do not overlap (stride == kernel, no dilation): each cell has one owner."""
    return all(a.stride == a.kernel and a.dilate == 1 for a in (rows, cols))


def _taps(rows: Axis, cols: Axis, oh: L.Expr, ow: L.Expr):
    """Input (h, w) of every tap of output (oh, ow), row-major."""
    return [(rows.position(oh, L.Const(ki, L.INT)), cols.position(ow, L.Const(kj, L.INT)))
            for ki in range(rows.kernel) for kj in range(cols.kernel)]


def _inside_forward(planes, rows, cols, kind, inp, out) -> L.Stmt:
    i, oh, ow = L.Var("nc"), L.Var("oh"), L.Var("ow")
    in_plane = rows.size * cols.size
    values = [L.Load(inp, _index(i, in_plane, h, cols.size, w))
              for h, w in _taps(rows, cols, oh, ow)]
    total = values[0]
    for v in values[1:]:
        total = L.Bin("max", total, v) if kind == "max" else total + v
    if kind == "avg":
        total = total * L.Const(1.0 / len(values), out.dtype)
    dst = _index(i, rows.out * cols.out, oh, cols.out, ow)
    return L.For(i, planes, L.For(oh, rows.out, L.For(ow, cols.out, L.Store(out, dst, total))))


def _tiled_max_grad(planes, rows, cols, dy, x, y, dx) -> L.Stmt:
    """Non-overlapping windows: each cell gets dy if it is the window's first maximum."""
    i, oh, ow = L.Var("nc"), L.Var("oh"), L.Var("ow")
    in_plane, out_plane = rows.size * cols.size, rows.out * cols.out
    dst = _index(i, out_plane, oh, cols.out, ow)
    top, grad = L.Load(y, dst), L.Load(dy, dst)
    zero = L.Const(0.0, dx.dtype)
    stores, earlier = [], None
    for h, w in _taps(rows, cols, oh, ow):
        src = _index(i, in_plane, h, cols.size, w)
        hit = L.Cmp("eq", L.Load(x, src), top)
        first = hit if earlier is None else L.Bin("and", hit, L.Un("not", earlier))
        stores.append(L.Store(dx, src, L.Select(first, grad, zero)))
        earlier = hit if earlier is None else L.Bin("or", earlier, hit)
    loops = L.For(i, planes, L.For(oh, rows.out, L.For(ow, cols.out, L.block(*stores))))
    covered = rows.out * rows.kernel == rows.size and cols.out * cols.kernel == cols.size
    return loops if covered else L.block(fill(dx, 0.0), loops)
