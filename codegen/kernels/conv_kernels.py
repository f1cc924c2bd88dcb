"""Loop kernels of 2-D convolution: im2col and its adjoint col2im (one image's are the
prologue and tail of an ungrouped convolution's batched matmul, ``conv_gemm.py``), and
grouped convolution as direct loops.

A sliding window never needs a bounds test inside a loop: for each kernel tap ``k`` the
outputs whose tap lands inside the input form one static range ``[lo, hi)``, so taps are
visited in Python (row-major, which max pooling's "first maximum" rule relies on) and
only the in-range outputs are looped over.  Consecutive taps sharing a range share one
loop, so an unpadded window costs a single loop per axis.  Indices stay affine, which
keeps them provable by ``verify`` and unit-stride for the vectorizer when stride is 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from codegen import loop_ir as L


@dataclass(frozen=True)
class Axis:
    """One spatial axis of a sliding window (sizes in elements, all compile-time)."""

    size: int
    out: int
    kernel: int
    stride: int = 1
    pad: int = 0
    dilate: int = 1

    def valid_range(self, k: int) -> tuple[int, int]:
        """Outputs ``o`` whose tap ``k`` reads inside ``[0, size)``: ``[lo, hi)``."""
        offset = k * self.dilate - self.pad
        lo = max(0, -(offset // self.stride))  # ceil(-offset / stride)
        hi = min(self.out, (self.size - 1 - offset) // self.stride + 1)
        return lo, max(lo, hi)

    def tap_runs(self) -> list[tuple[int, int, int, int]]:
        """(first tap, tap count, lo, hi): consecutive taps sharing one non-empty range."""
        runs: list[list[int]] = []
        for k in range(self.kernel):
            lo, hi = self.valid_range(k)
            if lo == hi:
                continue
            if runs and runs[-1][0] + runs[-1][1] == k and runs[-1][2:] == [lo, hi]:
                runs[-1][1] += 1
            else:
                runs.append([k, 1, lo, hi])
        return [tuple(r) for r in runs]

    @property
    def covers(self) -> bool:
        """Every tap of every output reads inside the input (no padding is touched)."""
        return all(self.valid_range(k) == (0, self.out) for k in range(self.kernel))

    def position(self, o: L.Expr, k: L.Expr) -> L.Expr:
        return _add(_scale(o, self.stride) + _scale(k, self.dilate), -self.pad)


def _scale(e: L.Expr, factor: int) -> L.Expr:
    return e if factor == 1 else e * factor


def _add(e: L.Expr, const: int) -> L.Expr:
    return e if const == 0 else e + const


def _offset(var: L.Var, start: int) -> L.Expr:
    return var if start == 0 else var + start


TapBody = Callable[[L.Expr, L.Expr, L.Expr, L.Expr, L.Expr, L.Expr], L.Stmt]


def window_passes(rows: Axis, cols: Axis, inner: TapBody) -> L.Stmt:
    """For each tap (ki, kj) in row-major order, ``inner(ki, kj, oh, ow, h, w)`` over the
    outputs whose tap is inside the input."""
    ki_var, kj_var, oh_var, ow_var = L.Var("ki"), L.Var("kj"), L.Var("oh"), L.Var("ow")
    per_row = []
    for k0, k_count, lo, hi in rows.tap_runs():
        ki, oh = _offset(ki_var, k0), _offset(oh_var, lo)
        per_col = []
        for j0, j_count, wlo, whi in cols.tap_runs():
            kj, ow = _offset(kj_var, j0), _offset(ow_var, wlo)
            body = inner(ki, kj, oh, ow, rows.position(oh, ki), cols.position(ow, kj))
            body = L.For(oh_var, hi - lo, L.For(ow_var, whi - wlo, body))
            per_col.append(L.For(kj_var, j_count, body))
        if per_col:
            per_row.append(L.For(ki_var, k_count, L.block(*per_col)))
    return L.block(*per_row) if per_row else L.Block(())


def fill(buf: L.BufferParam, value: float) -> L.Stmt:
    i = L.Var("z")
    return L.For(i, buf.size, L.Store(buf, i, L.Const(value, buf.dtype)))


def _column_layout(shape, rows: Axis, cols: Axis, c0: int):
    """The one index map both kernels walk: per channel ``c``, image ``n`` and tap, the
    column-matrix index and the image index it stands for (shared, so col2im is the
    exact adjoint of im2col)."""
    n_img, n_chan, height, width = shape
    plane, ncols = rows.out * cols.out, n_img * rows.out * cols.out
    c, n = L.Var("c"), L.Var("n")

    def indices(ki, kj, oh, ow, h, w):
        row = (c * rows.kernel + ki) * cols.kernel + kj
        column = row * ncols + n * plane + oh * cols.out + ow
        image = ((n * n_chan + _offset(c, c0)) * height + h) * width + w
        return column, image

    return c, n, indices


def im2col_kernel(shape, rows: Axis, cols: Axis, c0: int, channels: int,
                  inp: L.BufferParam, out: L.BufferParam) -> L.Kernel:
    """``out[(c, ki, kj), (n, oh, ow)] = x[n, c0 + c, h, w]`` (0 where the tap is padding).

    The batch is folded into the columns so one matmul serves the whole batch.
    """
    c, n, indices = _column_layout(shape, rows, cols, c0)

    def copy(*tap):
        dst, src = indices(*tap)
        return L.Store(out, dst, L.Load(inp, src))

    body = L.For(n, shape[0], L.For(c, channels, window_passes(rows, cols, copy)))
    stmts = [body] if rows.covers and cols.covers else [fill(out, 0.0), body]
    return L.make_kernel([inp, out], L.block(*stmts))


def col2im_kernel(shape, rows: Axis, cols: Axis, inp: L.BufferParam,
                  out: L.BufferParam) -> L.Kernel:
    """The adjoint of im2col: ``out[n, c, h, w]`` sums every column entry that read it."""
    c, n, indices = _column_layout(shape, rows, cols, 0)

    def add(*tap):
        src, dst = indices(*tap)
        return L.Store(out, dst, L.Load(out, dst) + L.Load(inp, src))

    body = L.For(n, shape[0], L.For(c, shape[1], window_passes(rows, cols, add)))
    return L.make_kernel([inp, out], L.block(fill(out, 0.0), body))


def slice_kernel(start: int, inp: L.BufferParam, out: L.BufferParam) -> L.Kernel:
    """``out = inp[start : start + out.size]``: one group's block of weights."""
    i = L.Var("i")
    return L.make_kernel([inp, out], L.For(i, out.size, L.Store(out, i, L.Load(
        inp, _offset(i, start)))))


# ---- grouped convolution as one kernel over the groups ----------------------------------------
@dataclass(frozen=True)
class GroupedConv:
    """Shapes of a grouped 2-D convolution; the groups are an outer loop of one kernel, so
    the kernel count does not grow with ``groups`` (depthwise: ``groups == channels``).
    A grouped Deconvolution is this convolution's data gradient, so its three kernels
    are these three with data and output swapped (``symgraph.ops.deconv``)."""

    shape: tuple  # data (N, C, H, W)
    rows: Axis
    cols: Axis
    groups: int
    filters: int

    @property
    def fg(self) -> int:
        return self.filters // self.groups

    @property
    def cg(self) -> int:
        return self.shape[1] // self.groups

    def loops(self, body: L.Stmt, per_filter: L.Stmt | None = None) -> L.Stmt:
        """``for n, g, fi: [per_filter;] for c: body`` (filter ``g*fg + fi``, channel
        ``g*cg + c``)."""
        inner = L.For(L.Var("c"), self.cg, body)
        if per_filter is not None:
            inner = L.block(per_filter, inner)
        return L.For(L.Var("n"), self.shape[0], L.For(L.Var("g"), self.groups, L.For(
            L.Var("fi"), self.fg, inner)))

    def indices(self, ki, kj, oh, ow, h, w):
        """(data, weight, output) flat indices of one tap of filter ``g*fg + fi``."""
        n, g, fi, c = L.Var("n"), L.Var("g"), L.Var("fi"), L.Var("c")
        _, chans, height, width = self.shape
        f, ch = g * self.fg + fi, g * self.cg + c
        data = ((n * chans + ch) * height + h) * width + w
        weight = ((f * self.cg + c) * self.rows.kernel + ki) * self.cols.kernel + kj
        out = ((n * self.filters + f) * self.rows.out + oh) * self.cols.out + ow
        return data, weight, out


def grouped_conv_kernel(conv: GroupedConv, x: L.BufferParam, w: L.BufferParam,
                        bias: L.BufferParam | None, y: L.BufferParam) -> L.Kernel:
    """``y[n, f] = bias[f] + sum_{c, ki, kj} w[f, c, ki, kj] x[n, g(f)*cg + c, shifted]``,
    accumulated tap by tap into the output plane (unit-stride over ``ow``)."""
    g, fi, p = L.Var("g"), L.Var("fi"), L.Var("p")
    plane = conv.rows.out * conv.cols.out
    f = g * conv.fg + fi
    start = L.Load(bias, f) if bias is not None else L.Const(0.0, y.dtype)
    init = L.For(p, plane, L.Store(y, (L.Var("n") * conv.filters + f) * plane + p, start))

    def tap(*where):
        data, weight, out = conv.indices(*where)
        return L.Store(y, out, L.Load(y, out) + L.Load(w, weight) * L.Load(x, data))

    params = [x, w] + ([bias] if bias is not None else []) + [y]
    return L.make_kernel(params, conv.loops(window_passes(conv.rows, conv.cols, tap), init))


def grouped_conv_data_grad_kernel(conv: GroupedConv, dy: L.BufferParam, w: L.BufferParam,
                                  dx: L.BufferParam, accumulate: bool = False) -> L.Kernel:
    """The adjoint in the data: every output tap adds ``w * dy`` back where it read.
    ``accumulate`` adds onto ``dx`` as it is (a grouped Deconvolution, which is this
    kernel, adds onto its bias) instead of starting from zeros."""
    def tap(*where):
        data, weight, out = conv.indices(*where)
        return L.Store(dx, data, L.Load(dx, data) + L.Load(w, weight) * L.Load(dy, out))

    body = conv.loops(window_passes(conv.rows, conv.cols, tap))
    return L.make_kernel([dy, w, dx], body if accumulate else L.block(fill(dx, 0.0), body))


def grouped_conv_weight_grad_kernel(conv: GroupedConv, dy: L.BufferParam, x: L.BufferParam,
                                    dw: L.BufferParam) -> L.Kernel:
    """``dw[f, c, ki, kj] = sum_{n, oh, ow} dy[n, f, oh, ow] x[n, ch, shifted]``: per tap, a
    vectorized sum along ``ow`` added once per output row."""
    acc, ow = L.Var("acc", dw.dtype), L.Var("ow")
    ki_var, kj_var, oh_var = L.Var("ki"), L.Var("kj"), L.Var("oh")
    per_row = []
    for k0, k_count, lo, hi in conv.rows.tap_runs():
        ki, oh = _offset(ki_var, k0), _offset(oh_var, lo)
        per_col = []
        for j0, j_count, wlo, whi in conv.cols.tap_runs():
            kj, ow_e = _offset(kj_var, j0), _offset(ow, wlo)
            data, weight, out = conv.indices(ki, kj, oh, ow_e, conv.rows.position(oh, ki),
                                             conv.cols.position(ow_e, kj))
            add = L.Store(dw, weight, L.Load(dw, weight) + acc)
            row = L.Reduce(acc, "sum", ow, whi - wlo, L.Load(dy, out) * L.Load(x, data), add)
            per_col.append(L.For(kj_var, j_count, L.For(oh_var, hi - lo, row)))
        if per_col:
            per_row.append(L.For(ki_var, k_count, L.block(*per_col)))
    taps = L.block(*per_row) if per_row else L.Block(())
    return L.make_kernel([dy, x, dw], L.block(fill(dw, 0.0), conv.loops(taps)))
