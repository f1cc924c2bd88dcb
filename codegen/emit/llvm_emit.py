"""Loop IR -> llvmlite functions with explicit SIMD.

Every kernel becomes ``void k_<hash>(ptr, ...)``; addresses are GEPs on the typed
parameters (no inttoptr).  Loop counters are phis; Reduce accumulators are allocas that
mem2reg/SROA promote.  Innermost loops accepted by :mod:`codegen.emit.vectorize` are emitted
as ``<W x T>`` code plus a scalar remainder; float sums along such a loop use a vector
accumulator and a shuffle-tree horizontal add.  Fast-math flags are off unless the kernel
asks (``Kernel.fastmath``): the only reassociation we do is that explicit vector sum.
"""

from __future__ import annotations

import math

from llvmlite import ir

from codegen import loop_ir as L
from codegen.emit import vecmath, vectorize
from codegen.emit.emit_values import ValueEmitter, ir_type
from codegen.partition import top_loops
from symgraph.errors import CompileError

I64 = ir.IntType(64)
PTR = ir.PointerType()


#: kernels whose every buffer is at most this many elements may be inlined into phases
INLINE_ELEMENTS = 4096


def declare_kernel(module: ir.Module, params, name: str, noalias: bool,
                   part: bool = False) -> ir.Function:
    """``noinline``: a kernel over a large tensor costs far more than its call, while
    inlining every kernel into each phase that calls it (training forward, backward,
    forward_backward, predict...) made LLVM optimize and emit the same loops up to four
    times (MobileNet v1's cold compile: 21 -> 14 CPU s without it).  Kernels on small
    buffers (the letter MLP's) stay inlinable: there the call is a visible share of the
    work, and their copies are cheap to compile."""
    extra = [I64, I64] if part else []  # chunk t of T (see codegen/partition.py)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR] * len(params) + extra),
                     name=name + PART_SUFFIX if part else name)
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    if part or never_inlined(params):
        fn.attributes.add("noinline")
    for arg, p in zip(fn.args, params):
        arg.name = p.name
        if noalias:
            arg.add_attribute("noalias")
    return fn


def never_inlined(params) -> bool:
    """Whether a kernel with these buffers is ``noinline`` (see :func:`declare_kernel`)."""
    return max((int(p.size) for p in params), default=0) > INLINE_ELEMENTS


PART_SUFFIX = "_part"


def emit_part(module: ir.Module, kernel, lanes) -> ir.Function:
    """The chunk entry ``<name>_part(buffers..., t, T)`` of a kernel that
    :mod:`codegen.partition` split: loop kernels run chunk t of their top-level loops,
    emitted kernels (matmul) their share of rows."""
    name = kernel.name + PART_SUFFIX
    if name in module.globals:
        return module.globals[name]
    if not isinstance(kernel, L.Kernel):
        return kernel.emit(module, lanes, part=True)
    fn = declare_kernel(module, kernel.params, kernel.name, kernel.noalias, part=True)
    if wide_kind(kernel) == "moves":
        fn.attributes.add("optsize")
    emitter = KernelEmitter(fn, kernel, lanes)
    emitter.split_loops(fn.args[-2], fn.args[-1], top_loops(kernel.body))
    emitter.run()
    return fn


class EmittedKernel:
    """Shared behaviour of kernels written straight to LLVM IR by an emitter (matmul,
    short-row softmax...): frozen dataclasses with ``name``, ``params``, ``dtype``,
    ``noalias`` and ``canonical()``, whose ``emitter()`` gives the KernelEmitter class."""

    @classmethod
    def named(cls, *fields, **named_fields):
        """The kernel with its content-hash name: equal specs share one compiled function."""
        proto = cls("", *fields, **named_fields)
        return cls(L.content_name(proto.canonical()), *fields, **named_fields)

    def dump(self) -> str:
        return f"{self.name}: {self.canonical()}"

    def emit(self, module, lanes, part: bool = False):
        name = self.name + PART_SUFFIX if part else self.name
        if name in module.globals:
            return module.globals[name]
        fn = declare_kernel(module, self.params, self.name, self.noalias, part=part)
        emitter = self.emitter()(fn, self, lanes(self.dtype))
        if part:
            emitter.part = (fn.args[-2], fn.args[-1])
        emitter.run()
        return fn


#: loop nests from which a kernel that only moves data is optimized for size.
#: Sliding-window copies (im2col, its adjoint col2im) are one loop nest per run of edge
#: taps, up to 55 for a padded 7x7 stride-2 window; at full speed LLVM unrolls and
#: re-vectorizes every one of them (ResNet-50's seven largest took 17 of its 27 s of LLVM
#: time, 894 IR lines -> 10,668) for loops bound by memory: ``optsize`` made them 11x
#: cheaper to compile and 1.1 ms slower per ResNet-50 step of 800 ms.  Kernels that
#: compute (depthwise convolution is as many loop nests, but multiplies) keep full speed.
OPTSIZE_LOOPS = 12


def emit_kernel(module: ir.Module, kernel: L.Kernel, lanes) -> ir.Function:
    """Define ``kernel`` in ``module``; ``lanes(dtype)`` gives the vector width."""
    if kernel.name in module.globals:
        return module.globals[kernel.name]
    fn = declare_kernel(module, kernel.params, kernel.name, kernel.noalias)
    if wide_kind(kernel) == "moves":
        fn.attributes.add("optsize")
    KernelEmitter(fn, kernel, lanes).run()
    return fn


def count_loops(s) -> int:
    """For and Reduce statements in a kernel body."""
    if isinstance(s, L.Block):
        return sum(count_loops(t) for t in s.stmts)
    if isinstance(s, (L.For, L.Reduce)):
        return 1 + count_loops(s.body)
    if isinstance(s, L.Let):
        return count_loops(s.body)
    return 0


def wide_kind(kernel) -> str | None:
    """For a loop kernel of OPTSIZE_LOOPS nests or more: "moves" if it only moves data
    (compiled ``optsize``), "computes" otherwise; None for every other kernel."""
    if not isinstance(kernel, L.Kernel) or count_loops(kernel.body) < OPTSIZE_LOOPS:
        return None
    return "moves" if moves_data(kernel.body) else "computes"


def keeps_aliasing(kernel) -> bool:
    """Kernels left may-alias even where the program proves their buffers disjoint: loop
    kernels of many nests that compute (depthwise convolution), whose every nest LLVM
    re-vectorizes once it knows the buffers apart (MobileNet v1's cold compile 14.5 ->
    23 CPU s with them noalias)."""
    return wide_kind(kernel) == "computes"


_MOVE_OPS = ("add", "max", "min")


def moves_data(s) -> bool:
    """Every store writes a constant, a load, or one add/max/min of those (copies,
    scatter-adds, max-pool windows): no reductions and no other arithmetic."""
    if isinstance(s, L.Block):
        return all(moves_data(t) for t in s.stmts)
    if isinstance(s, L.For):
        return moves_data(s.body)
    if isinstance(s, L.Store):
        v = s.value
        if isinstance(v, L.Bin) and v.op in _MOVE_OPS:
            return _leaf(v.a) and _leaf(v.b)
        return _leaf(v)
    return False


def _leaf(e) -> bool:
    return isinstance(e, (L.Load, L.Const))


class KernelEmitter(ValueEmitter):
    def __init__(self, fn, kernel, lanes):
        entry = fn.append_basic_block("allocas")
        self.start = fn.append_basic_block("start")
        super().__init__(ir.IRBuilder(self.start), kernel.fastmath)
        self.fn, self.kernel, self.lanes = fn, kernel, lanes
        self.ptrs = {p.name: a for p, a in zip(kernel.params, fn.args)}
        self.alloca_builder = ir.IRBuilder(entry)
        self.part = None  # (chunk t, chunk count T) as i64 values in a chunk entry
        self.split = ()  # the loops chunk t divides (loop kernels)

    def split_loops(self, t, count, loops):
        self.part, self.split = (t, count), tuple(id(s) for s in loops)

    def chunk_bounds(self, total: int):
        """[lo, hi) of chunk t of T over ``total`` units: t*total//T, (t+1)*total//T."""
        b, (t, count) = self.b, self.part
        lo = b.udiv(b.mul(t, ir.Constant(I64, total)), count)
        hi = b.udiv(b.mul(b.add(t, ir.Constant(I64, 1)), ir.Constant(I64, total)), count)
        return lo, hi

    def loop_dyn(self, start, end, step: int, body):
        """``for i in range(start, end, step)`` with run-time bounds (i64 values); the
        last iteration starts below ``end`` (callers keep whole steps inside it)."""
        b = self.b
        pre = b.block
        head = self.fn.append_basic_block("dloop")
        inner = self.fn.append_basic_block("dbody")
        after = self.fn.append_basic_block("dafter")
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(I64)
        i.add_incoming(start, pre)
        b.cbranch(b.icmp_signed("<", i, end), inner, after)
        b.position_at_end(inner)
        body(i)
        i.add_incoming(b.add(i, ir.Constant(I64, step)), b.block)
        b.branch(head)
        b.position_at_end(after)

    def run(self):
        """Allocas live in their own entry block so mem2reg sees them all up front."""
        self.stmt(self.kernel.body, {})
        self.b.ret_void()
        self.alloca_builder.branch(self.start)

    def pointer(self, buffer, index_value):
        return self.b.gep(self.ptrs[buffer.name], [index_value], inbounds=True,
                          source_etype=ir_type(buffer.dtype))

    def stmt(self, s, env):
        if isinstance(s, L.Block):
            for t in s.stmts:
                self.stmt(t, env)
        elif isinstance(s, L.Store):
            self.store(s, env)
        elif isinstance(s, L.Let):
            self.stmt(s.body, {**env, s.var.name: self.expr(s.value, env)})
        elif isinstance(s, L.For):
            self.for_(s, env)
        elif isinstance(s, L.Reduce):
            self.reduce(s, env)
        else:
            raise CompileError(f"{self.kernel.name}: cannot emit {type(s).__name__}")

    def store(self, s, env):
        ptr = self.pointer(s.buffer, self.index(s.index, env))
        value, is_vec = self.expr(s.value, env)
        if self.width and not is_vec:
            value = self.splat(value)
        self.b.store(value, ptr, align=L.itemsize(s.buffer.dtype))

    def loop(self, start, end, step, body):
        """Counted loop ``for i in range(start, end, step)`` with a phi counter."""
        if start >= end:
            return
        b = self.b
        pre = b.block
        head = self.fn.append_basic_block("loop")
        after = self.fn.append_basic_block("after")
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(I64)
        i.add_incoming(ir.Constant(I64, start), pre)
        body(i)
        nxt = b.add(i, ir.Constant(I64, step))
        i.add_incoming(nxt, b.block)
        b.cbranch(b.icmp_signed("<", nxt, ir.Constant(I64, end)), head, after)
        b.position_at_end(after)

    def for_(self, s, env):
        if id(s) in self.split:
            return self.chunk_for(s, env)
        name = s.var.name
        w = self._vector_width(s)
        main = s.extent - s.extent % w if w else 0
        if w:
            self.loop(0, main, w, lambda i: self.vector_body(s.body, env, name, w, i))
        self.loop(main, s.extent, 1, lambda i: self.stmt(s.body, {**env, name: (i, False)}))

    def chunk_for(self, s, env):
        """This chunk's iterations of a split loop: whole vectors, then the rest."""
        b, name, w = self.b, s.var.name, self._vector_width(s)
        lo, hi = self.chunk_bounds(s.extent)
        start = lo
        if w:
            whole = b.mul(b.udiv(b.sub(hi, lo), ir.Constant(I64, w)), ir.Constant(I64, w))
            start = b.add(lo, whole)
            self.loop_dyn(lo, start, w, lambda i: self.vector_body(s.body, env, name, w, i))
        self.loop_dyn(start, hi, 1, lambda i: self.stmt(s.body, {**env, name: (i, False)}))

    def _vector_width(self, s):
        dtypes = {p.dtype for p in self.kernel.params} & set(L.FLOAT_DTYPES)
        if self.width or not s.vectorize or not dtypes:
            return 0
        w = min(self.lanes(dt) for dt in dtypes)
        if s.extent < w or not vectorize.body_vectorizable(s.body, s.var.name):
            return 0
        return w

    def vector_body(self, body, env, name, w, i):
        self.width, self.vec_var = w, name
        try:
            self.stmt(body, {**env, name: (i, False)})
        finally:
            self.width, self.vec_var = 0, None

    def alloca(self, ty, init):
        slot = self.alloca_builder.alloca(ty)
        self.b.store(init, slot)
        return slot

    def reduce(self, s, env):
        dt = s.value.dtype
        ty = ir_type(dt)
        if s.op.startswith("arg"):
            return self.stmt(s.body, {**env, s.acc.name: (self.arg_reduce(s, env), False)})
        w = self.lanes(dt)
        vec_ok = s.extent >= w and vectorize.value_vectorizable(s.value, s.loop_var.name)
        main = s.extent - s.extent % w if vec_ok else 0
        slot = self.alloca(ty, ir.Constant(ty, _identity(s.op)))
        if main:
            vty = ir.VectorType(ty, w)
            vslot = self.alloca(vty, ir.Constant(vty, [_identity(s.op)] * w))
            self.loop(0, main, w, lambda i: self._vec_step(s, env, vslot, i, w))
            self.b.store(self.horizontal(s.op, self.b.load(vslot)), slot)
        self.loop(main, s.extent, 1, lambda i: self._scalar_step(s, env, slot, i))
        self.stmt(s.body, {**env, s.acc.name: (self.b.load(slot), False)})

    def _vec_step(self, s, env, vslot, i, w):
        self.width, self.vec_var = w, s.loop_var.name
        try:
            v, is_vec = self.expr(s.value, {**env, s.loop_var.name: (i, False)})
            v = v if is_vec else self.splat(v)
            self.b.store(self.combine(s.op, self.b.load(vslot), v), vslot)
        finally:
            self.width, self.vec_var = 0, None

    def _scalar_step(self, s, env, slot, i):
        v, _ = self.expr(s.value, {**env, s.loop_var.name: (i, False)})
        self.b.store(self.combine(s.op, self.b.load(slot), v), slot)

    def combine(self, op, acc, v):
        if op == "sum":
            return self.b.fadd(acc, v)
        name = "maximum" if op == "max" else "minimum"
        return self.b.call(vecmath.intrinsic(self.b.module, name, acc.type, [acc.type] * 2),
                           [acc, v])

    def horizontal(self, op, v):
        """Shuffle-tree reduction of a vector to a scalar."""
        n = v.type.count
        while n > 1:
            n //= 2
            lo = self.b.shuffle_vector(v, v, _mask(range(n)))
            hi = self.b.shuffle_vector(v, v, _mask(range(n, 2 * n)))
            v = self.combine(op, lo, hi)
        return self.b.extract_element(v, ir.Constant(ir.IntType(32), 0))

    def arg_reduce(self, s, env):
        """First index of the max (argmax) or min (argmin); NaN wins like numpy."""
        ty = ir_type(s.value.dtype)
        worst = -math.inf if s.op == "argmax" else math.inf
        best = self.alloca(ty, ir.Constant(ty, worst))
        idx = self.alloca(I64, ir.Constant(I64, 0))

        def step(i):
            v, _ = self.expr(s.value, {**env, s.loop_var.name: (i, False)})
            cur = self.b.load(best)
            better = self.b.fcmp_ordered(">" if s.op == "argmax" else "<", v, cur)
            v_nan = self.b.fcmp_unordered("uno", v, v)
            cur_ok = self.b.fcmp_ordered("ord", cur, cur)
            take = self.b.or_(better, self.b.and_(v_nan, cur_ok))
            self.b.store(self.b.select(take, v, cur), best)
            self.b.store(self.b.select(take, i, self.b.load(idx)), idx)

        self.loop(0, s.extent, 1, step)
        return self.b.load(idx)


def _identity(op):
    return {"sum": 0.0, "max": -math.inf, "min": math.inf}[op]


def _mask(idx):
    idx = list(idx)
    return ir.Constant(ir.VectorType(ir.IntType(32), len(idx)), idx)
