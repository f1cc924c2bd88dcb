"""Register-blocked matmul with a fused epilogue, no BLAS.

``C[M,N] = epilogue(op(A) @ op(B) [+ bias] [+ C])``.  The micro-kernel keeps an MR x NV
tile of ``<W x T>`` accumulators in registers and does one broadcast of A and NV vector
loads of B per k, feeding ``llvm.fma``.  Column edges use masked loads/stores, row edges
a smaller MR, so any M, N, K works.  op(B) transposed is first packed into a contiguous
K x N panel: the micro-kernel then always streams unit-stride rows of B.  The panel is
the kernel's last buffer parameter, ``scratch_pack`` (see :func:`pack_elements`), which
the memory plan places in the executor's arena like any temporary: generated code keeps
no mutable global state, so executors of one library may run in parallel threads.
Shapes are compile-time constants.

For A @ B^T with few columns (N=10 of 16 lanes) and a longer K, :func:`dot_pays` picks a
dot-product kernel instead: every lane of every FMA does useful work along K, and a
row's N sums are reduced together into one row vector of C (see ``dot_rows``).  When M
fills vectors better than N does (N=26 of 32 lanes, M=32), :func:`matmul_path` picks the
lane-tile kernel: W rows of C at a time with one row per lane (see ``lane_tiles``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

from llvmlite import ir

from codegen import jit, partition, threadpool
from codegen import loop_ir as L
from codegen.emit import vecmath
from codegen.emit.emit_values import ir_type
from codegen.emit.llvm_emit import EmittedKernel, KernelEmitter, emit_kernel
from codegen.emit.scalar_ir import IRMath
from codegen.kernels import softmax_rows
from symgraph.errors import CompileError

I32, I64 = ir.IntType(32), ir.IntType(64)
# tile rows per count of column vectors, per vector register file: mr * nv accumulators,
# nv B vectors and the A broadcast fit (AVX-512 has 32 registers, AVX2 and SSE 16; a tile
# that does not fit spills its accumulators to the stack on every k: 4x slower, measured)
ROWS_BY_REGS = {32: {1: 12, 2: 12, 3: 8, 4: 6}, 16: {1: 8, 2: 6, 3: 4, 4: 2}}
TILE_VECTORS_BY_REGS = {32: 4, 16: 2}  # column vectors of the rows path's tile
DOT_REDUCE_COST = 12  # the per-row lane_sums tree and store, in FMA-equivalents (measured)
DOT_REGS = 29  # N accumulators + 1 A vector + 1 B vector <= 30 of 32 decides the path
LANE_REGS = 28  # N accumulators + the A^T vector + one broadcast B value <= 30 of 32
TRANSPOSE_COST = 8  # FMA-equivalents per lane of a W x W in-register transpose (measured)
SUM_VECTORS = 4  # independent accumulator vectors of the A column sums (add latency 3-4)
SOFTMAX_VECTORS = 4  # most column vectors a softmax epilogue's tile spans (one row)


def vector_regs(w: int) -> int:
    """Vector registers of the host whose vectors hold ``w`` float32 lanes."""
    return 32 if w >= 16 else 16


def tile_rows(nv: int, w: int) -> int:
    """Rows of a register tile of ``nv`` column vectors on W lanes."""
    return ROWS_BY_REGS[vector_regs(w)][nv]


def tile_vectors(w: int) -> int:
    """Column vectors of the rows path's register tile on W lanes."""
    return TILE_VECTORS_BY_REGS[vector_regs(w)]


@dataclass(frozen=True, eq=False)
class MatmulKernel(EmittedKernel):
    """A matmul kernel; params are a, b, [bias], extras..., c (build with matmul_kernel)."""

    name: str
    M: int
    N: int
    K: int
    trans_a: bool
    trans_b: bool
    dtype: str
    bias: str  # "none", "col" (one per column n) or "row" (one per row m)
    accumulate: bool
    epilogue: L.Expr | None  # over Var("acc") and Var("e<k>") of dtype
    n_extra: int
    params: tuple
    noalias: bool = False
    fastmath: bool = False
    a_sums: str = "none"  # "write" / "add": asum[m] (+)= sum_k op(A)[m, k]
    softmax: bool = False  # c holds the row softmax of op(A) @ op(B) [+ bias]
    pack: int = 0  # elements of the scratch_pack panel parameter (0: none)
    chunks: int = 1  # row chunks on the thread pool (codegen/partition.py)
    k_block: int = 0  # k per block on the row path (0: one pass; see k_block_size)
    batch: int = 1  # products in one call: item n reads a + n*a_step, b + n*b_step, ...
    steps: tuple = (0, 0, 0)  # (a, b, c) elements between items; c 0: C sums every item
    prologue: object = None  # loop kernel (src, dst) making each item's op(B) from b's item
    tail: object = None  # loop kernel (src, dst) moving each item's product into c's item
    by_items: bool = False  # chunks take whole items (else tiles of every item's C)
    groups: int = 1  # summed items as this many partial sums, group g's at c + g*M*N

    @property
    def sums_items(self) -> bool:
        """The items of a batch all add into one C (a convolution's weight gradient)."""
        return self.batch > 1 and self.steps[2] == 0

    @property
    def adds_into_c(self) -> bool:
        return self.accumulate or self.sums_items

    def canonical(self) -> str:
        epi = self.epilogue.dump() if self.epilogue is not None else "acc"
        sums = "" if self.a_sums == "none" else f" asum={self.a_sums}"
        sums += " softmax" if self.softmax else ""
        sums += f" pack={self.pack}" if self.pack else ""
        sums += f" chunks={self.chunks}" if self.chunks > 1 else ""
        sums += f" kc={self.k_block}" if self.k_block else ""
        sums += f" batch={self.batch} steps={self.steps}" if self.batch > 1 else ""
        sums += f" prologue={self.prologue.name}" if self.prologue is not None else ""
        sums += f" tail={self.tail.name}" if self.tail is not None else ""
        sums += " by_items" if self.by_items else ""
        sums += f" groups={self.groups}" if self.groups > 1 else ""
        return (f"matmul M={self.M} N={self.N} K={self.K} ta={self.trans_a} tb={self.trans_b} "
                f"{self.dtype} bias={self.bias} acc={self.accumulate} extra={self.n_extra} "
                f"epilogue={epi} noalias={self.noalias}{sums}")

    def emitter(self):
        return MatmulEmitter


def matmul_kernel(M, N, K, trans_a=False, trans_b=False, dtype="float32", bias="none",
                  accumulate=False, epilogue=None, n_extra=0, noalias=False,
                  a_sums="none", softmax=False, batch=1, steps=(0, 0, 0), prologue=None,
                  tail=None, groups=1) -> MatmulKernel:
    """``epilogue(m, acc, *extras)`` is a scalar-math formula; extras are (M, N) buffers.

    Buffers: a is (M,K) or (K,M) if trans_a; b is (K,N) or (N,K) if trans_b; bias has N
    ("col") or M ("row") elements; c is (M,N).  ``a_sums`` "write" or "add" appends a
    last buffer asum of M elements, ``asum[m] = (or +=) sum_k op(A)[m, k]``: with
    A = dY (batch x units, trans_a) that is a layer's bias gradient next to its weight
    gradient, from the same kernel and the A values just read.  Neither ``accumulate``
    nor the epilogue touch asum.

    ``softmax`` stores the softmax of each row of the result instead (the logits are
    never stored): the micro-kernel tile must span the whole row (see
    :func:`softmax_fits`), and it excludes ``accumulate`` and an epilogue.

    A kernel that packs a panel (see :func:`pack_elements`, for the host's vector width)
    ends with a ``scratch_pack`` buffer: callers bind it to a temporary of their own
    (``LowerContext.emit`` does so for every ``scratch*`` parameter).

    ``batch`` > 1 runs ``batch`` products in one call, item ``n`` on ``a + n*steps[0]``,
    ``b + n*steps[1]`` and ``c + n*steps[2]`` (bias and epilogue inputs step like c): a
    convolution's images, each small enough to stay in cache.  ``steps[2] == 0`` sums
    every item's product into C (no bias, epilogue or softmax then).

    ``prologue`` (a loop kernel with params (src, dst), dst of K*N elements) builds each
    item's op(B) from ``b``'s item (``src`` elements, ``steps[1]`` apart) in a
    ``scratch_item`` buffer of one item per chunk: a convolution's im2col block, which
    then never leaves the cache.  ``tail`` (src of M*N elements, dst of ``c``'s item)
    moves each product from that scratch into C (col2im).  Chunks of kernels whose items
    have their own C take whole items, so no chunk repeats another's prologue.

    ``groups`` > 1 (summed items only) splits the sum into that many partial sums over
    consecutive runs of items (group g: items g*batch//groups up to (g+1)*batch//groups),
    group g's into ``c + g*M*N``; chunks take whole groups, so a two-thread split makes
    each image's prologue once (tiles of one C make it in every chunk) and the bytes do
    not depend on the thread count. The caller adds the partial sums.
    """
    if min(M, N, K) < 1 or dtype not in L.FLOAT_DTYPES or bias not in ("none", "col", "row") \
            or a_sums not in ("none", "write", "add"):
        raise CompileError(f"bad matmul spec M={M} N={N} K={K} {dtype} bias={bias} "
                           f"a_sums={a_sums}")
    if softmax and (accumulate or epilogue is not None or n_extra):
        raise CompileError("matmul softmax epilogue excludes accumulate and epilogue")
    steps = tuple(int(s) for s in steps)
    if batch < 1 or len(steps) != 3 or min(steps) < 0 or (batch > 1 and steps[2] == 0 and (
            softmax or epilogue is not None or n_extra or bias != "none" or a_sums != "none")):
        raise CompileError(f"bad batched matmul: batch={batch} steps={steps} (summed items "
                           "take no bias, epilogue, softmax or row sums)")
    if batch == 1:
        steps = (0, 0, 0)
    if groups != 1 and not (batch > 1 and steps[2] == 0 and 1 < groups <= batch):
        raise CompileError(f"batched matmul: {groups} partial sums need summed items "
                           f"(C step 0) and at most batch={batch} groups")
    _check_item_kernels(M, N, K, prologue, tail, batch > 1 and steps[2] == 0, dtype,
                        accumulate or softmax or epilogue is not None or n_extra
                        or bias != "none" or a_sums != "none")

    def span(size, step):
        return size + step * (batch - 1)

    b_item = K * N if prologue is None else prologue.params[0].size
    c_item = (M * N if tail is None else tail.params[-1].size) * groups
    params = [L.BufferParam("a", dtype, span(M * K, steps[0])),
              L.BufferParam("b", dtype, span(b_item, steps[1]))]
    if bias != "none":
        params.append(L.BufferParam("bias", dtype, N if bias == "col" else M))
    params += [L.BufferParam(f"e{k}", dtype, span(M * N, steps[2])) for k in range(n_extra)]
    params.append(L.BufferParam("c", dtype, span(c_item, steps[2])))
    if a_sums != "none":
        params.append(L.BufferParam("asum", dtype, M))
    expr = None
    if epilogue is not None:
        extras = [L.Var(f"e{k}", dtype) for k in range(n_extra)]
        expr = L.as_expr(epilogue(IRMath(dtype), L.Var("acc", dtype), *extras), dtype=dtype)
        if expr.dtype != dtype:
            raise CompileError(f"matmul epilogue yields {expr.dtype}, expected {dtype}")
    fields = (M, N, K, trans_a, trans_b, dtype, bias, accumulate, expr, n_extra)
    chunks = partition.matmul_chunks(M, N, K * batch, threadpool.compile_threads())
    if tail is not None and (batch < chunks or trans_b):
        chunks = 1  # a tail empties a whole item: chunks take whole items (see by_items)
    chunks = min(chunks, groups) if groups > 1 else chunks
    item = dict(batch=batch, steps=steps, prologue=prologue, tail=tail, groups=groups)
    proto = MatmulKernel("", *fields, tuple(params), noalias, a_sums=a_sums, softmax=softmax,
                         chunks=chunks, **item)
    w = jit.host().lanes(dtype)
    pack = pack_elements(proto, w)
    item["by_items"] = batch > 1 and steps[2] != 0 and not pack
    if pack:
        own = matmul_path(proto, w) == "rows" and (groups > 1 or not split_columns(proto, w))
        panels = chunks if own else 1  # chunks that each need all of B^T pack their own
        params.append(L.BufferParam(PACK_PARAM, dtype, pack * panels))
    if prologue is not None or tail is not None:
        size = K * N if prologue is not None else M * N
        params.append(L.BufferParam(ITEM_PARAM, dtype, size * chunks))
    return MatmulKernel.named(*fields, tuple(params), noalias, a_sums=a_sums, softmax=softmax,
                              pack=pack, chunks=chunks, k_block=k_block_size(proto, w),
                              **item)


def _check_item_kernels(M, N, K, prologue, tail, summed, dtype, per_element) -> None:
    """A prologue makes one item's op(B); a tail takes one item's C (and then the product
    has no epilogue of its own and is not summed)."""
    if prologue is not None and tail is not None:
        raise CompileError("batched matmul: a prologue or a tail, not both")
    for kernel, size, what in ((prologue, K * N, "prologue"), (tail, M * N, "tail")):
        if kernel is None:
            continue
        ends = kernel.params[0 if what == "tail" else -1]
        if len(kernel.params) != 2 or ends.size != size or any(
                p.dtype != dtype for p in kernel.params):
            raise CompileError(f"batched matmul {what} {kernel.name}: needs params (src, dst) "
                               f"of {dtype} with {size} elements on the product's side")
    if tail is not None and (per_element or summed):
        raise CompileError("batched matmul tail: no epilogue, bias, row sums or summed items")


ITEM_PARAM = "scratch_item"


PACK_PARAM = "scratch_pack"


def pack_elements(mk: MatmulKernel, w: int) -> int:
    """Elements of the transposed panel the kernel packs on W lanes: B^T (K x N rounded
    up to W) on the row path, A^T (K x M rounded up) on the lane path, none otherwise."""
    if not mk.trans_b:
        return 0
    path = matmul_path(mk, w)
    if path == "dot":
        return 0
    rows = mk.M if path == "lanes" else mk.N
    return mk.K * (-(-rows // w) * w)


#: bytes of B one column tile streams over K above which K is blocked (L2-sized)
K_BLOCK_BYTES = 512 * 1024
K_BLOCK = 256  # k per block: kc x nr of float32 is 32 KB, within L1 + L2


def k_block_size(mk: MatmulKernel, w: int) -> int:
    """K per block on the row path, or 0 for one pass. Partial sums are kept in C, so
    blocking needs C free until the end: no accumulate into C, no extra epilogue inputs
    (which may share C's memory)."""
    nr = min(tile_vectors(w), -(-mk.N // w)) * w
    if matmul_path(mk, w) != "rows" or mk.adds_into_c or mk.n_extra or mk.softmax \
            or mk.K <= K_BLOCK or mk.batch > 1 \
            or mk.K * nr * L.itemsize(mk.dtype) <= K_BLOCK_BYTES:
        return 0
    return K_BLOCK


def split_columns(mk: MatmulKernel, w: int) -> bool:
    """Whether the chunks of a row-path matmul take column tiles of C rather than row
    tiles: with enough column tiles to share, a chunk then packs and streams only its
    columns of B (row chunks would each pack all of B^T) and few rows (a convolution's
    20 filters) cannot unbalance the chunks."""
    if mk.chunks <= 1 or mk.softmax or matmul_path(mk, w) != "rows":
        return False
    nr = min(tile_vectors(w), -(-mk.N // w)) * w
    return -(-mk.N // nr) >= 2 * mk.chunks


def softmax_fits(N, w):
    """Whether a row of N columns fits in one register tile (at most 4 vectors of W),
    so the softmax epilogue sees whole rows."""
    return -(-N // w) <= SOFTMAX_VECTORS


def dot_pays(M, N, K, trans_a, trans_b, w):
    """Whether C = A @ B^T takes the dot-product kernel: it needs K-contiguous A and B
    and a row's N accumulators in registers, and wins when few lanes of the broadcast
    kernel's last column vector would be useful (N=10 or 20 in 16 lanes) and K spans
    several vectors to amortize the reductions.  Costs are FMAs per row of C (the
    packing of B^T not counted); the dot kernel must win by 10%."""
    if trans_a or not trans_b or N > DOT_REGS - 2:
        return False
    dot = N * -(-K // w) + DOT_REDUCE_COST * -(-N // w)
    return dot < 0.9 * K * -(-N // w)


def dot_group(N: int, w: int) -> int:
    """Columns of C one pass over K of the dot kernel accumulates: all N with 32
    registers; W (one reduced vector of C) with 16, where N accumulators would spill."""
    return N if vector_regs(w) >= 32 else min(N, w)


def dot_tile_rows(N: int, w: int) -> int:
    """Rows of C one dot sub-tile holds: rows * (accumulators of one pass + 1 A vector)
    + 1 B vector within the host's vector registers (less 2)."""
    return max(1, (vector_regs(w) - 3) // (dot_group(N, w) + 1))


def matmul_path(mk: MatmulKernel, w: int) -> str:
    """Which kernel computes ``mk`` on W lanes: "lanes" (see ``lane_tiles``), "dot" (see
    ``dot_rows``) or "rows" (the broadcast micro-kernel).

    Costs are in FMA-equivalents: FMAs including wasted lanes, plus TRANSPOSE_COST per
    lane of each W x W tile a panel pack transposes (fitted to measured times).  The lane
    kernel needs N accumulators in registers and an epilogue with no (M, N) operand to
    read transposed.  With a softmax it always wins where it fills its lanes better: the
    softmax then runs on its column vectors with no transposes in (measured 2.5 vs 3.1 us
    for the dot kernel at 100 x 10 x 64).
    """
    mv, nv, kv = -(-mk.M // w), -(-mk.N // w), -(-mk.K // w)
    tile = TRANSPOSE_COST * w
    rows = mk.M * mk.K * nv + (nv * kv * tile if mk.trans_b else 0)
    lanes_fit = mk.trans_b and not mk.trans_a and mk.N <= LANE_REGS and not mk.adds_into_c \
        and not mk.n_extra and mk.a_sums == "none" and mv * mk.N < 0.9 * mk.M * nv
    dot = mk.M * (mk.N * kv + DOT_REDUCE_COST * nv) \
        if dot_pays(mk.M, mk.N, mk.K, mk.trans_a, mk.trans_b, w) else math.inf
    lanes = mv * mk.N * mk.K + mv * kv * tile if lanes_fit else math.inf
    if lanes_fit and (mk.softmax or lanes < 0.9 * min(rows, dot)):
        return "lanes"
    return "dot" if dot < math.inf else "rows"


class MatmulEmitter(KernelEmitter):
    def __init__(self, fn, mk: MatmulKernel, w: int):
        super().__init__(fn, mk, lambda dt: w)
        self.mk, self.w = mk, w
        self.ty = ir_type(mk.dtype)
        self.vty = ir.VectorType(self.ty, w)

    item = None  # the batch item (an i64 value) in a batched kernel

    def run(self):
        mk = self.mk
        if mk.batch == 1 and mk.prologue is None and mk.tail is None:
            self.product()
        else:
            self.items()
        self.b.ret_void()
        self.alloca_builder.branch(self.start)

    def items(self):
        """The product of every item (or this chunk's items), each on its operands'
        item; a prologue fills this chunk's ``scratch_item`` before the product reads it
        as B, a tail empties it into C after the product wrote it."""
        mk, b = self.mk, self.b
        base = dict(self.ptrs)
        step = {"a": mk.steps[0], "b": mk.steps[1], "c": mk.steps[2],
                **{f"e{k}": mk.steps[2] for k in range(mk.n_extra)}}
        scratch = base.get(ITEM_PARAM)
        if scratch is not None and self.part is not None:
            own = mk.K * mk.N if mk.prologue is not None else mk.M * mk.N
            scratch = self.gep(scratch, b.mul(self.part[0], _i(own)))
        module = self.fn.module
        prologue = None if mk.prologue is None else emit_kernel(module, mk.prologue, self.lanes)
        tail = None if mk.tail is None else emit_kernel(module, mk.tail, self.lanes)
        whole = (mk.by_items or mk.groups > 1) and self.part is not None
        bounds = self.chunk_bounds(mk.groups if mk.groups > 1 else mk.batch) if whole else None
        part = self.part
        if bounds is not None:
            self.part = None  # each item whole: its tiles are not split
            self.panel_chunk = part[0]  # but a packed panel is still this chunk's own

        def item(n, c=None):  # c: the partial sum a grouped item adds into
            self.item = n
            self.ptrs = {name: self.gep(ptr, b.mul(n, _i(step[name])))
                         if step.get(name) else ptr for name, ptr in base.items()}
            if c is not None:
                self.ptrs["c"] = c
            if prologue is not None:
                b.call(prologue, [self.ptrs["b"], scratch])
                self.ptrs["b"] = scratch
            out = self.ptrs["c"]
            if tail is not None:
                self.ptrs["c"] = scratch
            self.product()
            if tail is not None:
                b.call(tail, [scratch, out])

        if mk.groups > 1:
            self.grouped(base["c"], bounds, item)
        elif bounds is None:
            self.loop(0, mk.batch, 1, item)
        else:
            self.loop_dyn(bounds[0], bounds[1], 1, item)
        self.ptrs, self.part, self.panel_chunk = base, part, None

    item_first = None  # the first item of the current partial sum (an i64 value)
    panel_chunk = None  # the chunk whose packed panel a whole-items chunk uses

    def grouped(self, c, bounds, item):
        """Group g's items summed into ``c + g*M*N`` (this chunk's groups, or all)."""
        mk, b = self.mk, self.b

        def group(g):
            lo = b.udiv(b.mul(g, _i(mk.batch)), _i(mk.groups))
            hi = b.udiv(b.mul(b.add(g, _i(1)), _i(mk.batch)), _i(mk.groups))
            self.item_first = lo
            out = self.gep(c, b.mul(g, _i(mk.M * mk.N)))
            self.loop_dyn(lo, hi, 1, lambda n: item(n, out))

        if bounds is None:
            self.loop(0, mk.groups, 1, group)
        else:
            self.loop_dyn(bounds[0], bounds[1], 1, group)
        self.item_first = None

    def product(self):
        """One item's product (the whole kernel when it is not batched)."""
        mk = self.mk
        self.bptr, self.bstride = self.ptrs["b"], mk.N
        if mk.softmax and not softmax_fits(mk.N, self.w):
            raise CompileError(f"matmul softmax: a row of {mk.N} exceeds one tile")
        path = matmul_path(mk, self.w)
        if path == "lanes":
            self.lane_tiles()
        elif path == "dot":
            self.dot_rows()
        else:
            nv = -(-mk.N // self.w)  # a softmax tile spans the whole row
            nv = nv if mk.softmax else min(tile_vectors(self.w), nv)
            self.col_split = self.part is not None and split_columns(mk, self.w)
            if mk.trans_b:  # row chunks need all of B^T: each packs its own panel
                mode = "cols" if self.col_split else "own"
                self.bptr, self.bstride = self.pack("b", mk.N, mode, nv * self.w), \
                    -(-mk.N // self.w) * self.w
            self.blocks(nv * self.w, nv, min(tile_rows(nv, self.w), mk.M))
        if mk.a_sums != "none" and mk.trans_a:
            self.sum_a_columns()
        elif mk.a_sums != "none":
            self.sum_a_rows()

    col_split = False  # chunks take column tiles of C (rows path, see split_columns)

    def row_tiles(self, total: int, step: int, tile):
        """``tile(i0, rows)`` over [0, total) in tiles of ``step`` rows (the last one
        shorter): all of them, or in a chunk entry this chunk's share of the tiles."""
        full = total // step * step
        if self.part is None or self.col_split:
            self.loop(0, full, step, lambda i0: tile(i0, step))
            if full < total:
                tile(_i(full), total - full)
            return
        self.chunk_tiles(total, step, lambda i0: tile(i0, step),
                         lambda: tile(_i(full), total - full))

    def chunk_tiles(self, total: int, step: int, whole, edge):
        """This chunk's share of the tiles of ``step`` over [0, total): ``whole(start)``
        for each full tile, then ``edge()`` if the chunk holds the shorter last one."""
        b, count, full = self.b, -(-total // step), total // step
        lo, hi = self.chunk_bounds(count)
        upto = b.select(b.icmp_unsigned("<", hi, _i(full)), hi, _i(full))
        self.loop_dyn(b.mul(lo, _i(step)), b.mul(upto, _i(step)), step, whole)
        if full < count:
            last = b.and_(b.icmp_unsigned("==", hi, _i(count)), b.icmp_unsigned("<", lo, hi))
            with b.if_then(last):
                edge()

    def pack(self, param, rows, mode="rows", step=0):
        """Transpose ``param`` (rows x K) into a K x Rp panel (Rp = rows rounded up to W),
        tile by tile.

        A scalar copy strides its stores by Rp and misses cache on every element; W x W
        tiles transposed in registers read W rows sequentially and write each panel row
        as one full aligned vector (one cache line).  Pad columns are zeros, so the
        micro-kernel streams the panel without masks.
        """
        mk, w = self.mk, self.w
        stride = -(-rows // w) * w
        if mk.pack < mk.K * stride or PACK_PARAM not in self.ptrs:
            raise CompileError(f"{mk.name}: the packed panel needs {mk.K * stride} elements, "
                               f"the kernel has {mk.pack} (built for another vector width)")
        panel = self.ptrs[PACK_PARAM]
        chunk = self.part[0] if self.part is not None else self.panel_chunk
        if mode == "own" and chunk is not None:
            panel = self.gep(panel, self.b.mul(chunk, _i(mk.pack)))
        k_full = mk.K // w * w

        def row_block(j0, count):
            tile = partial(self.pack_tile, param, panel, stride, j0, count)
            self.loop(0, k_full, w, lambda k0: tile(k0, w))
            if k_full < mk.K:
                tile(_i(k_full), mk.K - k_full)

        def span(start, end):  # row blocks of [start, end), compile-time bounds
            full = start + (end - start) // w * w
            self.loop(start, full, w, lambda j0: row_block(j0, w))
            if full < end:
                row_block(_i(full), end - full)

        if mode == "cols":  # the columns of C this chunk computes, tile by tile
            blocks = step // w
            edge = rows // step * step
            self.chunk_tiles(rows, step, lambda j0: [row_block(self.b.add(j0, _i(v * w)), w)
                                                     for v in range(blocks)],
                             lambda: span(edge, rows))
        elif mode == "own":  # the whole panel, into this chunk's own copy
            span(0, rows)
        else:  # the rows of C this chunk computes are the rows of the panel it packs
            self.row_tiles(rows, w, row_block)
        return panel

    def pack_tile(self, param, panel, stride, j0, count, k0, cols):
        """count x cols block of ``param`` at (j0, k0) -> panel rows k0.. at column j0."""
        mk, b, w = self.mk, self.b, self.w
        mask, zero = self.mask(cols), ir.Constant(self.vty, None)
        first = b.add(b.mul(j0, _i(mk.K)), k0)
        vecs = [self.vload(self.ptrs[param], b.add(first, _i(r * mk.K)), mask) if r < count
                else zero for r in range(w)]
        for k, vec in enumerate(vecmath.transpose(b, vecs)[:cols]):
            dst = self.gep(panel, b.add(b.mul(b.add(k0, _i(k)), _i(stride)), j0))
            b.store(vec, dst, align=L.itemsize(mk.dtype))

    def lane_tiles(self):
        """C = A @ B^T, W rows of C at a time held transposed: accumulator n is column n
        of the block, one lane per row, fed by a packed A^T panel and broadcast B values.

        Each product is accumulated over K in the same order as the row tiles, so the
        results are bitwise the same; bias, formula and softmax work on the column
        vectors (the softmax needs no transposes in), and W x W transposes store rows.
        """
        mk, w = self.mk, self.w
        panel, stride = self.pack("a", mk.M), -(-mk.M // w) * w
        self.row_tiles(mk.M, w, lambda i0, rows: self.lane_tile(panel, stride, i0, rows))

    def lane_tile(self, panel, stride, i0, rows):
        mk, b, w = self.mk, self.b, self.w
        zero = ir.Constant(self.vty, None)
        accs = [self.alloca(self.vty, zero) for _ in range(mk.N)]
        for slot in accs:
            b.store(zero, slot)

        def step(k):
            src = self.gep(panel, b.add(b.mul(k, _i(stride)), i0))
            av = b.load(src, typ=self.vty, align=L.itemsize(mk.dtype))
            for n, slot in enumerate(accs):
                bn = b.load(self.gep(self.ptrs["b"], b.add(_i(n * mk.K), k)), typ=self.ty)
                b.store(self.call_intrinsic("fma", av, self.splat(bn, w), b.load(slot)), slot)

        self.loop(0, mk.K, 1, step)
        cols = [self.lane_bias(i0, n, b.load(slot), rows) for n, slot in enumerate(accs)]
        nvec = -(-mk.N // w)
        if mk.softmax:
            cols = softmax_rows.column_softmax(b, cols, nvec)
        elif mk.epilogue is not None:
            cols = [self.formula(col, {}) for col in cols]
        cols += [zero] * (nvec * w - mk.N)
        for v in range(nvec):
            for r, row in enumerate(vecmath.transpose(b, cols[v * w:(v + 1) * w])[:rows]):
                self.vstore(row, self.ptrs["c"], self.c_index(i0, _i(0), r, v),
                            self.mask(mk.N - v * w))

    def lane_bias(self, i0, n, col, rows):
        """Column n of a lane tile plus its bias (one value, or the block's row biases)."""
        mk, b = self.mk, self.b
        if mk.bias == "col":
            value = b.load(self.gep(self.ptrs["bias"], _i(n)), typ=self.ty)
            return b.fadd(col, self.splat(value, self.w))
        if mk.bias == "row":
            return b.fadd(col, self.vload(self.ptrs["bias"], i0, self.mask(rows)))
        return col

    def dot_rows(self):
        """C = A @ B^T with both K-contiguous: per row, N dot products vectorized over K,
        then reduced W at a time into the row's vectors of C."""
        mk = self.mk
        rows = min(dot_tile_rows(mk.N, self.w), mk.M)
        if mk.softmax:  # W whole rows per step: their softmax runs one row per lane
            rows = min(self.w, mk.M)
        self.row_tiles(mk.M, rows, self.dot_tile)

    def dot_tile(self, i0, rows):
        """``rows`` rows of C, in register-sized sub-tiles; with the softmax epilogue
        the rows' softmax comes last, on all of them at once."""
        mk, w = self.mk, self.w
        per = dot_tile_rows(mk.N, w)
        sums = []
        for r0 in range(0, rows, per):
            sums += self.dot_sums(self.b.add(i0, _i(r0)), min(per, rows - r0))
        masks = [self.mask(mk.N - v * w) for v in range(-(-mk.N // w))]
        if mk.softmax:
            self.softmax_rows(i0, sums, masks)
            return
        for r, row in enumerate(sums):
            for v, value in enumerate(row):
                self.finish(i0, _i(0), r, v, value, masks[v])

    def softmax_rows(self, i0, sums, masks):
        """Softmax epilogue of finished whole rows (their vectors in ``sums``): W at a
        time transposed, a few one by one."""
        if len(sums) >= softmax_rows.MIN_LANE_ROWS:
            self.lane_softmax(i0, sums, masks)
            return
        for r, row in enumerate(sums):
            self.finish_softmax(i0, _i(0), r, row, masks)

    def lane_softmax(self, i0, sums, masks):
        """Softmax of up to W finished rows transposed in registers (one row per lane,
        see ``softmax_rows.lane_softmax``): no per-row shuffle trees, and one vector exp
        per column for all the rows."""
        zero = ir.Constant(self.vty, None)
        rows = [[self.add_bias(i0, _i(0), r, v, x, masks[v]) for v, x in enumerate(row)]
                for r, row in enumerate(sums)]
        rows += [[zero] * len(masks)] * (self.w - len(rows))
        probs = softmax_rows.lane_softmax(self.b, rows, self.mk.N)
        for r in range(len(sums)):
            for v, value in enumerate(probs[r]):
                self.vstore(value, self.ptrs["c"], self.c_index(i0, _i(0), r, v), masks[v])

    def dot_sums(self, i0, rows):
        """Per row, its vectors of C (bias not added): N dot products over K, reduced;
        in passes over K of ``dot_group`` columns each (every sum the same)."""
        mk, b, w = self.mk, self.b, self.w
        zero = ir.Constant(self.vty, None)
        accs = [[self.alloca(self.vty, zero) for _ in range(mk.N)] for _ in range(rows)]
        group = dot_group(mk.N, w)

        def step(k0, mask, first):
            avs = [self.vload(self.ptrs["a"], b.add(b.mul(b.add(i0, _i(r)), _i(mk.K)), k0),
                              mask) for r in range(rows)]
            for n in range(first, min(mk.N, first + group)):
                bv = self.vload(self.ptrs["b"], b.add(_i(n * mk.K), k0), mask)
                for r, av in enumerate(avs):
                    acc = b.load(accs[r][n])
                    b.store(self.call_intrinsic("fma", av, bv, acc), accs[r][n])

        k_full = mk.K // w * w
        for first in range(0, mk.N, group):
            self.loop(0, k_full, w, lambda k0, first=first: step(k0, None, first))
            if k_full < mk.K:
                step(_i(k_full), self.mask(mk.K - k_full), first)
        return [[self.lane_sums([b.load(slot) for slot in accs[r][v * w:(v + 1) * w]])
                 for v in range(-(-mk.N // w))] for r in range(rows)]

    def lane_sums(self, vecs):
        """Vector whose lane j is the sum of the lanes of ``vecs[j]`` (up to W vectors):
        log2(W) rounds, each adding the two halves of every lane group of a pair of
        vectors and packing both pairs' results into one vector."""
        w = self.w
        vecs = list(vecs) + [None] * (w - len(vecs))
        size = w
        while size > 1:
            half = size // 2
            lo = [g + t for g in range(0, w, size) for t in range(half)]
            hi = [x + half for x in lo]
            nxt = []
            for x, y in zip(vecs[::2], vecs[1::2]):
                if x is None:
                    nxt.append(None)
                    continue
                y = ir.Constant(self.vty, None) if y is None else y
                pick = [self.b.shuffle_vector(x, y, _mask(lo + [w + i for i in lo])),
                        self.b.shuffle_vector(x, y, _mask(hi + [w + i for i in hi]))]
                nxt.append(self.b.fadd(*pick))
            vecs, size = nxt, half
        return vecs[0]

    def sum_a_columns(self):
        """asum for A stored K x M: rows of A added as vectors, SUM_VECTORS chains at a
        time.  One extra pass over A costs M*K/W loads and adds, 1/N of the FMAs, and
        reads A while it is still in cache."""
        self.row_tiles(self.mk.M, SUM_VECTORS * self.w, self.sum_column_group)

    def sum_column_group(self, m0, width):
        b, w, zero = self.b, self.w, ir.Constant(self.vty, None)
        nv = -(-width // w)
        masks = [self.mask(width - v * w) for v in range(nv)]
        accs = [self.alloca(self.vty, zero) for _ in range(nv)]  # zeroed here, per group

        def step(k):
            row = b.add(b.mul(k, _i(self.mk.M)), m0)
            for v, slot in enumerate(accs):
                a = self.vload(self.ptrs["a"], b.add(row, _i(v * w)), masks[v])
                b.store(b.fadd(b.load(slot), a), slot)

        self.loop(0, self.mk.K, 1, step)
        for v, slot in enumerate(accs):
            idx = b.add(m0, _i(v * w))
            total = b.load(slot)
            if self.mk.a_sums == "add":
                total = b.fadd(self.vload(self.ptrs["asum"], idx, masks[v]), total)
            self.vstore(total, self.ptrs["asum"], idx, masks[v])

    def sum_a_rows(self):
        """asum for A stored M x K: each contiguous row summed in vectors, then a
        shuffle-tree reduction of its one accumulator."""
        self.row_tiles(self.mk.M, 1, lambda m, _: self.sum_row(m))

    def sum_row(self, m):
        mk, b, w = self.mk, self.b, self.w
        zero = ir.Constant(self.vty, None)
        acc = self.alloca(self.vty, zero)
        base, full = b.mul(m, _i(mk.K)), mk.K // w * w

        def add(k0, mask):
            a = self.vload(self.ptrs["a"], b.add(base, k0), mask)
            b.store(b.fadd(b.load(acc), a), acc)

        self.loop(0, full, w, lambda k0: add(k0, None))
        if full < mk.K:
            add(_i(full), self.mask(mk.K - full))
        total = self.horizontal("sum", b.load(acc))
        dst = self.gep(self.ptrs["asum"], m)
        if mk.a_sums == "add":
            total = b.fadd(b.load(dst, typ=self.ty), total)
        b.store(total, dst)

    def gep(self, ptr, idx):
        return self.b.gep(ptr, [idx], inbounds=True, source_etype=self.ty)

    def softmax_blocks(self, nv):
        """The softmax epilogue's tiling: one column tile spans the row; blocks of W rows
        (register tiles of at most MR rows each) whose softmax runs one row per lane."""
        mk = self.mk
        rows = min(self.w, mk.M)
        self.row_tiles(mk.M, rows, lambda i0, count: self.softmax_block(i0, count, nv))

    def softmax_block(self, i0, rows, nv):
        parts = -(-rows // tile_rows(nv, self.w))
        per = -(-rows // parts)
        sums = []
        for r0 in range(0, rows, per):
            sums += self.tile_sums(self.b.add(i0, _i(r0)), _i(0), min(per, rows - r0), nv,
                                   self.mk.N)
        self.softmax_rows(i0, sums, [self.mask(self.mk.N - v * self.w) for v in range(nv)])

    def blocks(self, nr, nv, mr):
        """Full MR x NR tiles in loops; row and column edges as separate tiles."""
        mk = self.mk
        if mk.softmax:
            self.softmax_blocks(nv)
            return
        n_full = mk.N // nr * nr
        col_tiles = [(0, n_full, nv, mk.N - n_full and 0)]
        if n_full < mk.N:
            col_tiles.append((n_full, mk.N, -(-(mk.N - n_full) // self.w), mk.N - n_full))
        kc = mk.k_block
        if not kc:
            self.tile_nest(col_tiles, nr, mr, n_full)
            return
        # K blocks: each block's B rows (kc x nr) stay in L1 across every row tile; the
        # partial sums wait in C, so each element still accumulates k = 0, 1, ... in order
        last = (mk.K - 1) // kc * kc
        self.k_block = (0, kc, "first")
        self.tile_nest(col_tiles, nr, mr, n_full)
        if last > kc:
            def middle(kb):
                self.k_block = (kb, kc, "middle")
                self.tile_nest(col_tiles, nr, mr, n_full)
            self.loop(kc, last, kc, middle)
        self.k_block = (last, mk.K - last, "last")
        self.tile_nest(col_tiles, nr, mr, n_full)
        self.k_block = (0, None, "all")

    def tile_nest(self, col_tiles, nr, mr, n_full):
        """Every tile of C (or this chunk's), column tiles outermost."""
        mk = self.mk
        cols = []
        for start, end, tile_nv, _ in col_tiles:
            step = nr if end - start >= nr else end - start
            width = end - start if end - start < nr else nr

            def col(j0, tile_nv=tile_nv, width=width):
                self.row_tiles(mk.M, mr, lambda i0, rows: self.tile(i0, j0, rows, tile_nv,
                                                                     width))

            cols.append(col)
            if not self.col_split:
                self.loop(start, end, step, col)
        if self.col_split:  # this chunk's column tiles, each over every row
            self.chunk_tiles(mk.N, nr, cols[0], lambda: cols[-1](_i(n_full)))

    #: (first k, k count, stage) of the K block the tiles emitted now accumulate; stage
    #: "all" (no blocking), "first" / "middle" (partial sums stored raw in C) or "last"
    k_block = (0, None, "all")

    def tile(self, i0, j0, mr, nv, width):
        """Accumulate one mr x width tile over K (or this K block), then run the epilogue
        (or store the partial sums, which the next block continues from)."""
        masks = [self.mask(width - v * self.w) for v in range(nv)]
        stage = self.k_block[2]
        for r, row in enumerate(self.tile_sums(i0, j0, mr, nv, width)):
            for v, value in enumerate(row):
                if stage in ("first", "middle"):
                    self.vstore(value, self.ptrs["c"], self.c_index(i0, j0, r, v), masks[v])
                else:
                    self.finish(i0, j0, r, v, value, masks[v])

    def tile_sums(self, i0, j0, mr, nv, width):
        """The mr x nv accumulator vectors of one tile after all of K."""
        zero = ir.Constant(self.vty, None)
        accs = [[self.alloca(self.vty, zero) for _ in range(nv)] for _ in range(mr)]
        masks = [self.mask(width - v * self.w) for v in range(nv)]
        k0, count, stage = self.k_block
        for r, row in enumerate(accs):
            for v, slot in enumerate(row):
                start = zero if stage in ("all", "first") else \
                    self.vload(self.ptrs["c"], self.c_index(i0, j0, r, v), masks[v])
                self.b.store(start, slot)
        bmasks = [None] * nv if self.mk.trans_b else masks  # the panel is zero-padded

        def step(k):
            brow = self.b.add(self.b.mul(k, _i(self.bstride)), j0)
            bv = [self.vload(self.bptr, self.b.add(brow, _i(v * self.w)), bmasks[v])
                  for v in range(nv)]
            for r in range(mr):
                aptr = self.gep(self.ptrs["a"], self.a_index(i0, r, k))
                a = self.splat(self.b.load(aptr, typ=self.ty), self.w)
                for v in range(nv):
                    acc = self.b.load(accs[r][v])
                    self.b.store(self.call_intrinsic("fma", a, bv[v], acc), accs[r][v])

        if isinstance(k0, int):
            self.loop(k0, k0 + (self.mk.K if count is None else count), 1, step)
        else:
            self.loop_dyn(k0, self.b.add(k0, _i(count)), 1, step)
        return [[self.b.load(slot) for slot in row] for row in accs]

    def finish_softmax(self, i0, j0, r, accs, masks):
        """Softmax epilogue: the tile row is the whole row (j0 is 0), so its max, exps
        and sum come from registers and only the probabilities are stored."""
        xs = [self.add_bias(i0, j0, r, v, acc, masks[v]) for v, acc in enumerate(accs)]
        probs = softmax_rows.row_probabilities(self, xs, masks[-1])
        for v, value in enumerate(probs):
            self.vstore(value, self.ptrs["c"], self.c_index(i0, j0, r, v), masks[v])

    def a_index(self, i0, r, k):
        i = self.b.add(i0, _i(r))
        if self.mk.trans_a:
            return self.b.add(self.b.mul(k, _i(self.mk.M)), i)
        return self.b.add(self.b.mul(i, _i(self.mk.K)), k)

    def mask(self, valid):
        return None if valid >= self.w else ir.Constant(
            ir.VectorType(ir.IntType(1), self.w), [int(t < valid) for t in range(self.w)])

    def vload(self, ptr, idx, mask):
        p = self.gep(ptr, idx)
        align = L.itemsize(self.mk.dtype)
        if mask is None:
            return self.b.load(p, typ=self.vty, align=align)
        return vecmath.masked_load(self.b, self.vty, p, mask, ir.Constant(self.vty, None), align)

    def vstore(self, value, ptr, idx, mask):
        p = self.gep(ptr, idx)
        align = L.itemsize(self.mk.dtype)
        if mask is None:
            self.b.store(value, p, align=align)
        else:
            vecmath.masked_store(self.b, value, p, mask, align)

    def finish(self, i0, j0, r, v, acc, mask):
        """Epilogue: bias, accumulate into C, elementwise formula, (masked) store."""
        mk, b = self.mk, self.b
        cidx = self.c_index(i0, j0, r, v)
        acc = self.add_bias(i0, j0, r, v, acc, mask)
        if mk.accumulate:
            acc = b.fadd(acc, self.vload(self.ptrs["c"], cidx, mask))
        elif mk.sums_items:  # the first item writes C, the later ones add to it
            first = self.item_first if self.item_first is not None else _i(0)
            later = b.icmp_unsigned("!=", self.item, first)
            acc = b.fadd(acc, b.select(later, self.vload(self.ptrs["c"], cidx, mask),
                                       ir.Constant(self.vty, None)))
        if mk.epilogue is not None:
            acc = self.formula(acc, {f"e{k}": (self.vload(self.ptrs[f"e{k}"], cidx, mask), True)
                                     for k in range(mk.n_extra)})
        self.vstore(acc, self.ptrs["c"], cidx, mask)

    def formula(self, acc, extras):
        """The epilogue formula on one accumulator vector (``extras``: its e<k> values)."""
        self.width = self.w
        try:
            value, is_vec = self.expr(self.mk.epilogue, {"acc": (acc, True), **extras})
        finally:
            self.width = 0
        return value if is_vec else self.splat(value, self.w)

    def c_index(self, i0, j0, r, v):
        b = self.b
        return b.add(b.mul(b.add(i0, _i(r)), _i(self.mk.N)), b.add(j0, _i(v * self.w)))

    def add_bias(self, i0, j0, r, v, acc, mask):
        mk, b = self.mk, self.b
        if mk.bias == "col":
            return b.fadd(acc, self.vload(self.ptrs["bias"], b.add(j0, _i(v * self.w)), mask))
        if mk.bias == "row":
            bias = b.load(self.gep(self.ptrs["bias"], b.add(i0, _i(r))), typ=self.ty)
            return b.fadd(acc, self.splat(bias, self.w))
        return acc


def _i(v):
    return ir.Constant(I64, v)


def _mask(idx):
    return ir.Constant(ir.VectorType(I32, len(idx)), idx)
