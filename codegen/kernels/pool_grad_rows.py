"""Max pooling's gradient for tiled windows two columns wide (stride == kernel, kw == 2,
every input cell in one window: LeNet's 2x2/2), written as vectors.

The loop kernel (``pool_kernels._tiled_max_grad``) stores every cell at stride 2 along a
row, which no vectorizer takes: scalar code, one of LeNet's largest kernels.  Here W
outputs of a row are one vector: each window row's 2W inputs are two vector loads split
into even and odd columns by shuffles, compared with the outputs' maxima (first maximum
in row-major window order wins, as in the loop kernel, so the bytes are the same), and
the two selected gradient vectors are interleaved back into two stores.  Row ends are
masked.  Chunks take whole planes.
"""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from codegen import loop_ir as L
from codegen import partition, threadpool
from codegen.emit import vecmath
from codegen.emit.emit_values import ir_type
from codegen.emit.llvm_emit import EmittedKernel, KernelEmitter

I64 = ir.IntType(64)


@dataclass(frozen=True, eq=False)
class MaxPoolGradRows(EmittedKernel):
    """params dy (planes, OH, OW), x (planes, OH*kh, 2*OW), y like dy, dx like x."""

    name: str
    planes: int
    kh: int
    oh: int
    ow: int
    dtype: str
    params: tuple
    noalias: bool = False
    fastmath: bool = False
    chunks: int = 1

    def canonical(self) -> str:
        return (f"maxpool_grad_rows planes={self.planes} kh={self.kh} oh={self.oh} "
                f"ow={self.ow} {self.dtype} chunks={self.chunks}")

    def emitter(self):
        return _Emitter


def fits(rows, cols, dtype) -> bool:
    """Tiled windows two columns wide that cover the input exactly."""
    return (dtype in L.FLOAT_DTYPES and cols.kernel == 2 and cols.stride == 2
            and rows.stride == rows.kernel and rows.dilate == 1 and cols.dilate == 1
            and rows.pad == 0 and cols.pad == 0 and rows.out * rows.kernel == rows.size
            and cols.out * 2 == cols.size)


def max_pool_grad_rows(planes: int, rows, cols, dy: L.BufferParam, x: L.BufferParam,
                       y: L.BufferParam, dx: L.BufferParam) -> MaxPoolGradRows:
    work = planes * rows.size * cols.size
    threads = threadpool.compile_threads()
    chunks = threads if threads > 1 and planes >= 2 * threads and \
        work >= partition.MIN_LOOP_WORK else 1
    return MaxPoolGradRows.named(planes, rows.kernel, rows.out, cols.out, dx.dtype,
                                 (dy, x, y, dx), chunks=chunks)


class _Emitter(KernelEmitter):
    def __init__(self, fn, kernel: MaxPoolGradRows, w: int):
        super().__init__(fn, kernel, lambda dt: w)
        self.k, self.w = kernel, w
        self.ty = ir_type(kernel.dtype)
        self.vty = ir.VectorType(self.ty, w)
        dy, x, y, dx = (p.name for p in kernel.params)
        self.names = {"dy": dy, "x": x, "y": y, "dx": dx}

    def run(self):
        k = self.k
        if self.part is None:
            self.loop(0, k.planes, 1, self.plane)
        else:
            lo, hi = self.chunk_bounds(k.planes)
            self.loop_dyn(lo, hi, 1, self.plane)
        self.b.ret_void()
        self.alloca_builder.branch(self.start)

    def plane(self, nc):
        k, w = self.k, self.w
        full = k.ow // w * w

        def row(oh):
            self.loop(0, full, w, lambda ow0: self.group(nc, oh, ow0, w))
            if full < k.ow:
                self.group(nc, oh, _i(full), k.ow - full)

        self.loop(0, k.oh, 1, row)

    def group(self, nc, oh, ow0, valid):
        """``valid`` outputs of row ``oh`` from column ``ow0``: their window cells."""
        k, b, w = self.k, self.b, self.w
        out = b.add(b.mul(b.add(b.mul(nc, _i(k.oh)), oh), _i(k.ow)), ow0)
        top = self.vload("y", out, self.mask(valid))
        grad = self.vload("dy", out, self.mask(valid))
        zero = ir.Constant(self.vty, None)
        width = 2 * k.ow
        earlier = None
        masks = (self.mask(2 * valid), self.mask(2 * valid - w))
        for ki in range(k.kh):
            line = b.add(b.mul(b.add(b.mul(b.add(b.mul(nc, _i(k.oh)), oh), _i(k.kh)),
                                     _i(ki)), _i(width)), b.mul(ow0, _i(2)))
            halves = [self.vload("x", b.add(line, _i(h * w)), masks[h]) if 2 * valid > h * w
                      else zero for h in range(2)]
            picked = []
            for kj in range(2):
                cells = b.shuffle_vector(halves[0], halves[1], _lanes(range(kj, 2 * w, 2)))
                hit = b.fcmp_ordered("==", cells, top)
                first = hit if earlier is None else b.and_(hit, b.not_(earlier))
                earlier = hit if earlier is None else b.or_(earlier, hit)
                picked.append(b.select(first, grad, zero))
            for h in range(2):
                if 2 * valid <= h * w:
                    continue
                order = [j // 2 + (j % 2) * w for j in range(h * w, (h + 1) * w)]
                mixed = b.shuffle_vector(picked[0], picked[1], _lanes(order))
                self.vstore(mixed, "dx", b.add(line, _i(h * w)), masks[h])

    def mask(self, valid):
        if valid >= self.w:
            return None
        return ir.Constant(ir.VectorType(ir.IntType(1), self.w),
                           [int(t < valid) for t in range(self.w)])

    def _ptr(self, param, idx):
        return self.b.gep(self.ptrs[self.names[param]], [idx], inbounds=True,
                          source_etype=self.ty)

    def vload(self, param, idx, mask):
        p, align = self._ptr(param, idx), L.itemsize(self.k.dtype)
        if mask is None:
            return self.b.load(p, typ=self.vty, align=align)
        return vecmath.masked_load(self.b, self.vty, p, mask, ir.Constant(self.vty, None),
                                   align)

    def vstore(self, value, param, idx, mask):
        p, align = self._ptr(param, idx), L.itemsize(self.k.dtype)
        if mask is None:
            self.b.store(value, p, align=align)
        else:
            vecmath.masked_store(self.b, value, p, mask, align)


def _i(v):
    return ir.Constant(I64, v)


def _lanes(idx):
    return ir.Constant(ir.VectorType(ir.IntType(32), len(list(idx))), list(idx))
