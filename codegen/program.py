"""Programs: kernels called in order on one arena, one native entry point per phase.

The executor makes exactly one ctypes call per phase: ``void phase(i8* arena, i8** ext)``.
A kernel argument is either a byte offset into the arena (temporaries, outputs, scratch),
which the phase GEPs itself, or an :class:`Ext` index into the pointer table ``ext``:
buffers that live outside the arena (arguments, gradients, aux states), so that callers'
arrays can be shared and several executors can use one set of parameters.  The table's
entries are loaded once at the phase's entry.  Offsets, table indices and sizes are
validated here, before anything native runs; the executor checks each table entry.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import os
import re
from dataclasses import dataclass, field

from llvmlite import ir

from codegen import jit, partition, threadpool
from codegen import loop_ir as L
from codegen.emit.llvm_emit import (
    PART_SUFFIX,
    emit_kernel,
    emit_part,
    keeps_aliasing,
    never_inlined,
    wide_kind,
)
from codegen.kernels.matmul import MatmulKernel
from symgraph.errors import CompileError

_PHASE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Ext:
    """A kernel argument that is entry ``index`` of the phase's external pointer table."""

    index: int

    def __repr__(self) -> str:
        return f"ext{self.index}"

    __str__ = __repr__


@dataclass(frozen=True)
class ExternalBuffer:
    """What the caller must put in one entry of the pointer table: a C-contiguous array
    of ``size`` elements of ``dtype``, aligned to its element size, overlapping no
    other entry (kernels may be declared noalias)."""

    name: str  # e.g. "arg:fc1_weight", "grad:fc1_weight", "aux:bn_moving_mean"
    dtype: str
    size: int

    @property
    def nbytes(self) -> int:
        return self.size * L.itemsize(self.dtype)


@dataclass(frozen=True, eq=False)
class KernelCall:
    kernel: object
    args: tuple  # per kernel buffer parameter: arena byte offset (int) or Ext
    node_names: tuple = ()  # graph nodes this call computes (for pictures and dumps)


@dataclass(frozen=True, eq=False)
class Program:
    kernels: tuple
    arena_bytes: int
    phases: dict = field(default_factory=dict)  # phase name -> list[KernelCall]
    externals: tuple = ()  # ExternalBuffer per entry of the pointer table
    threads: int = 1  # chunks a splittable loop kernel call runs in (codegen/partition.py)


def validate(program: Program) -> None:
    """Every call's buffers lie inside the arena or its table entry, aligned to their
    element size."""
    if program.arena_bytes < 0:
        raise CompileError(f"negative arena size {program.arena_bytes}")
    for phase, calls in program.phases.items():
        if not _PHASE_RE.match(phase):
            raise CompileError(f"phase name {phase!r} is not an identifier")
        for n, call in enumerate(calls):
            _validate_call(phase, n, call, program)


def _validate_call(phase, n, call, program):
    params, arena_bytes = call.kernel.params, program.arena_bytes
    where = f"phase {phase!r} call {n} ({call.kernel.name})"
    if len(call.args) != len(params):
        raise CompileError(f"{where}: {len(call.args)} offsets for {len(params)} buffers")
    for p, off in zip(params, call.args):
        if isinstance(off, Ext):
            _validate_ext(where, p, off, program.externals)
            continue
        size = L.itemsize(p.dtype)
        if not isinstance(off, int) or off < 0 or off % size:
            raise CompileError(f"{where}: buffer {p.name} has bad offset {off!r}")
        if off + p.size * size > arena_bytes:
            raise CompileError(f"{where}: buffer {p.name} [{off}, {off + p.size * size}) "
                               f"exceeds arena of {arena_bytes} bytes")


def _validate_ext(where, param, ext, externals):
    if not 0 <= ext.index < len(externals):
        raise CompileError(f"{where}: buffer {param.name} is table entry {ext.index} of "
                           f"{len(externals)}")
    buf = externals[ext.index]
    if buf.dtype != param.dtype or param.size > buf.size:
        raise CompileError(f"{where}: buffer {param.name} ({param.size} {param.dtype}) does "
                           f"not fit table entry {buf.name} ({buf.size} {buf.dtype})")


PHASE_TYPE = ir.FunctionType(ir.VoidType(), [ir.PointerType(), ir.PointerType()])


def build_module(program: Program, name_hint: str, separate=None,
                 kernels=None, phases=None) -> ir.Module:
    """The phases, and every kernel they call except those ``separate`` names (kernel name
    -> forms, see :func:`separate_forms`), which are only declared: they are compiled in
    modules of their own (:func:`build_kernel_module`); ``phases``: only these."""
    module = _new_module()
    kernels = kernels or _adjusted_kernels(program)
    separate = separate or {}
    for phase, calls in program.phases.items():
        if phases is not None and phase not in phases:
            continue
        fn = ir.Function(module, PHASE_TYPE, name=phase)
        fn.attributes.add("nounwind")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        table = _load_table(b, fn.args[1], calls)
        for call in calls:
            ptrs = [table[off.index] if isinstance(off, Ext) else
                    b.gep(fn.args[0], [ir.Constant(ir.IntType(64), off)], inbounds=True,
                          source_etype=ir.IntType(8))
                    for off in call.args]
            kernel = kernels[call.kernel.name]
            forms = separate.get(kernel.name, ())
            chunks = call_chunks(call, program.threads)
            if chunks > 1:  # only the entries a call uses are emitted (each once)
                _parallel_call(b, module, kernel, ptrs, chunks, PART_SUFFIX in forms)
            elif "" in forms:
                b.call(_declare(module, kernel, ""), ptrs)
            else:
                b.call(_emit_any(module, kernel), ptrs)
        b.ret_void()
    return module


def _new_module() -> ir.Module:
    module = ir.Module(name="symgraph")  # name_hint must not change the cache key
    module.triple = jit.host().triple
    return module


def _adjusted_kernels(program) -> dict:
    """Kernels by name, declared ``noalias`` where every call's buffers are disjoint."""
    kernels = {}
    disjoint = _disjoint_kernels(program)
    for k in _all_kernels(program):
        if k.name in disjoint and getattr(k, "noalias", True) is False \
                and dataclasses.is_dataclass(k) and not keeps_aliasing(k):
            k = dataclasses.replace(k, noalias=True)
        kernels[k.name] = k
    return kernels


def separate_forms(program: Program) -> dict:
    """Kernel name -> the entries (``""``: the kernel, ``"_part"``: its chunk entry)
    compiled in a module of their own: every entry that is never inlined (all but kernels
    on small buffers, see ``llvm_emit.declare_kernel``), so splitting the program into
    modules changes no phase's code but the call's target.  In first-call order."""
    forms: dict = {}
    for calls in program.phases.values():
        for call in calls:
            kernel = call.kernel
            if call_chunks(call, program.threads) > 1:
                forms.setdefault(kernel.name, set()).add(PART_SUFFIX)
            elif never_inlined(kernel.params):
                forms.setdefault(kernel.name, set()).add("")
    return {name: sorted(f) for name, f in forms.items()}


def build_kernel_module(entries) -> ir.Module:
    """A module defining, for each ``(kernel, forms)`` of ``entries`` (kernels as
    :func:`_adjusted_kernels` gives them), the entries ``forms`` with external linkage
    (the phase modules declare them)."""
    module = _new_module()
    for kernel, forms in entries:
        for form in forms:
            fn = emit_part(module, kernel, jit.host().lanes) if form else \
                _emit_any(module, kernel)
            fn.linkage = ""
    return module


#: separately compiled kernels per module: each module costs LLVM ~3 ms to set up and the
#: warm start ~0.15 ms to check and link, while two cores need only a few dozen modules
#: to share the work evenly; a class of few kernels still gets up to MIN_MODULES modules
#: (the MNIST MLP's six matmuls are nearly all of its work)
KERNELS_PER_MODULE = 8
MIN_MODULES = 4


def program_units(program: Program, name_hint: str) -> jit.Units:
    """One module per phase (with the kernels it may inline), then the separately
    compiled kernels in groups of about :data:`KERNELS_PER_MODULE` (at least
    :data:`MIN_MODULES` groups where there are that many kernels) that share a
    :func:`kernel_tuning` (round robin in first-call order, so neighbours, often of one
    size, spread): what :mod:`codegen.split_compile` can build in parallel.  Phases get
    a module each because together they are the largest unit by far (ResNet-50's 2,266
    calls and the small kernels inlined into them: 0.9 MB of IR).  The kernels'
    aliasing analysis waits for a build (a cache hit needs none), which runs it before
    forking helpers."""
    phases = [[p] for p in program.phases] or [[]]  # no phases: one empty module
    separate = separate_forms(program)
    groups = _kernel_groups(program, separate)

    @functools.cache
    def kernels() -> dict:
        return _adjusted_kernels(program)

    def text(i: int) -> str:
        if i < len(phases):
            return str(build_module(program, name_hint, separate, kernels(), phases[i]))
        _, names = groups[i - len(phases)]
        return str(build_kernel_module([(kernels()[n], separate[n]) for n in names]))

    def tuning(i: int) -> jit.Tuning:
        return jit.Tuning() if i < len(phases) else groups[i - len(phases)][0]

    return jit.Units(len(phases) + len(groups), text, tuning, prepare=kernels)


def _kernel_groups(program, separate) -> list:
    """``(tuning, kernel names)`` per kernel module."""
    by_name = {k.name: k for k in _all_kernels(program)}
    classes: dict = {}
    for name in separate:
        classes.setdefault(kernel_tuning(by_name[name]), []).append(name)
    groups = []  # matmul modules first: the largest go early, so the last to end are small
    for tuning, names in sorted(classes.items(), key=lambda c: c[0].unroll):
        count = max(-(-len(names) // KERNELS_PER_MODULE), min(len(names), MIN_MODULES))
        groups += [(tuning, names[g::count]) for g in range(count)]
    return groups


def kernel_tuning(kernel) -> jit.Tuning:
    """LLVM's pipeline for a kernel's own module (each call of a training step timed
    alone, best of 30 or 200, variants side by side in one process):

    * matmul emitters write their register tiles unrolled already; LLVM unrolling them
      again made them slower (MobileNet v1's matmul calls 58.5 -> 52.1 ms without it,
      LeNet's 62.9 -> 59.2 ms, the MNIST MLP's 1.51 -> 1.24 ms) and cost a fifth of their
      compile time;
    * loop kernels of many nests that compute (depthwise convolutions and their
      gradients: one nest per run of edge taps) at speed level 2: level 3 fully unrolls
      every nest's tap loops (5x the code), which made MobileNet's 8.1 ms of them no
      faster than level 2's 7.6 ms and cost 2.5x the LLVM time (6.4 of its 15 s);
    * other loop kernels keep level 3: at level 2 LeNet's max pooling was 12x slower
      (no loop unswitching), and without unrolling loop kernels lost 35 %.
    """
    if isinstance(kernel, MatmulKernel):
        return jit.Tuning(unroll=False)
    if wide_kind(kernel) == "computes":
        return jit.Tuning(opt=2)
    return jit.Tuning()


def _declare(module, kernel, form: str) -> ir.Function:
    """The declaration of an entry defined in another module."""
    name = kernel.name + form
    if name in module.globals:
        return module.globals[name]
    extra = [ir.IntType(64)] * 2 if form else []
    fnty = ir.FunctionType(ir.VoidType(), [ir.PointerType()] * len(kernel.params) + extra)
    fn = ir.Function(module, fnty, name=name)
    fn.attributes.add("nounwind")
    return fn


def call_chunks(call, threads: int) -> int:
    """How many chunks of the thread pool run this call (1: the caller alone)."""
    chunks = getattr(call.kernel, "chunks", None)
    if chunks is not None:
        return chunks
    return partition.loop_chunks(call.kernel, threads, _aliases(call))


def _aliases(call) -> dict:
    """Per buffer of a call, the other buffers whose memory overlaps it (UNALIGNED for
    one that overlaps without sharing its start: no chunk rule covers that)."""
    spans = {}
    for p, off in zip(call.kernel.params, call.args):
        key = ("ext", off.index) if isinstance(off, Ext) else ("arena", off)
        size = p.size * L.itemsize(p.dtype)
        spans[p.name] = (key, size)
    out: dict = {}
    for a, (ka, sa) in spans.items():
        for c, (kc, sc) in spans.items():
            if a != c and _overlap(ka, sa, kc, sc):
                out.setdefault(a, []).append(c if ka == kc else partition.UNALIGNED)
    return out


def _overlap(ka, sa, kc, sc) -> bool:
    if ka[0] != kc[0]:
        return False  # table entries never overlap the arena or each other
    if ka[0] == "ext":
        return ka == kc
    return ka[1] < kc[1] + sc and kc[1] < ka[1] + sa


TASK_TYPE = ir.FunctionType(ir.VoidType(), [ir.PointerType(), ir.IntType(64), ir.IntType(64)])


def _parallel_call(b, module, kernel, ptrs, chunks, elsewhere=False) -> None:
    """Hand the call to the pool: its buffer pointers in a stack array, a task that
    unpacks them into the kernel's chunk entry, ``symgraph_parallel(task, ctx, chunks)``."""
    ctx = b.alloca(ir.PointerType(), size=len(ptrs))
    for i, ptr in enumerate(ptrs):
        slot = b.gep(ctx, [ir.Constant(ir.IntType(64), i)], inbounds=True,
                     source_etype=ir.PointerType())
        b.store(ptr, slot)
    entry = module.globals.get(threadpool.ENTRY) or ir.Function(
        module, ir.FunctionType(ir.VoidType(), [ir.PointerType(), ir.PointerType(),
                                                ir.IntType(64)]), name=threadpool.ENTRY)
    b.call(entry, [_task(module, kernel, elsewhere), ctx,
                   ir.Constant(ir.IntType(64), chunks)])


def _task(module, kernel, elsewhere):
    name = f"{kernel.name}_task"
    if name in module.globals:
        return module.globals[name]
    part = _declare(module, kernel, PART_SUFFIX) if elsewhere else \
        emit_part(module, kernel, jit.host().lanes)
    fn = ir.Function(module, TASK_TYPE, name=name)
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    ctx, t, count = fn.args
    ptrs = [b.load(b.gep(ctx, [ir.Constant(ir.IntType(64), i)], inbounds=True,
                         source_etype=ir.PointerType()), typ=ir.PointerType(), align=8)
            for i in range(len(kernel.params))]
    b.call(part, ptrs + [t, count])
    b.ret_void()
    return fn


def _disjoint_kernels(program) -> set:
    """Names of the kernels whose buffers are pairwise disjoint at every call, which may
    then be declared ``noalias``: what LLVM knew when kernels were inlined into the phase
    (constant offsets into one arena), and kept now that they are not.  Table entries never
    overlap each other or the arena (the executor refuses overlapping arrays)."""
    ok: dict = {}
    for calls in program.phases.values():
        for call in calls:
            name = call.kernel.name
            if ok.get(name, True):
                ok[name] = _call_disjoint(call)
    return {name for name, fine in ok.items() if fine}


def _call_disjoint(call) -> bool:
    exts = [a.index for a in call.args if isinstance(a, Ext)]
    if len(set(exts)) != len(exts):
        return False
    spans = sorted((off, off + p.size * L.itemsize(p.dtype))
                   for p, off in zip(call.kernel.params, call.args) if not isinstance(off, Ext))
    return all(hi <= lo for (_, hi), (lo, _) in zip(spans, spans[1:]))


def _load_table(b, ext, calls) -> dict:
    """The pointer-table entries the phase uses, each loaded once before any call (the
    table does not change while a phase runs)."""
    used = sorted({off.index for call in calls for off in call.args if isinstance(off, Ext)})
    out = {}
    for index in used:
        slot = b.gep(ext, [ir.Constant(ir.IntType(64), index)], inbounds=True,
                     source_etype=ir.PointerType())
        out[index] = b.load(slot, typ=ir.PointerType(), align=8)
    return out


def _all_kernels(program):
    seen = {}
    for k in list(program.kernels) + [c.kernel for cs in program.phases.values() for c in cs]:
        seen.setdefault(k.name, k)
    return list(seen.values())


def _emit_any(module, kernel):
    lanes = jit.host().lanes
    if isinstance(kernel, L.Kernel):
        return emit_kernel(module, kernel, lanes)
    emit = getattr(kernel, "emit", None)
    if emit is None:
        raise CompileError(f"unknown kernel kind {type(kernel).__name__}")
    return emit(module, lanes)


class CompiledProgram:
    """Phase entry points; holds the CompiledLibrary so the code outlives every call."""

    def __init__(self, program: Program, library: jit.CompiledLibrary):
        self.program = program
        self.library = library
        proto = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
        self._fns = {p: proto(library.addresses[p]) for p in program.phases}

    @property
    def phases(self):
        return tuple(self._fns)

    def run(self, phase: str, arena_address: int, table_address: int = 0) -> None:
        """Run one phase on the arena at ``arena_address`` with the pointer table at
        ``table_address`` (caller guarantees their sizes and every table entry)."""
        fn = self._fns.get(phase)
        if fn is None or not arena_address or (self.program.externals and not table_address):
            raise CompileError(f"unknown phase {phase!r}, null arena or null pointer table "
                               f"(phases: {sorted(self._fns)})")
        fn(arena_address, table_address)

    def run_array(self, phase: str, arena, externals=()) -> None:
        """Like run, but checks the numpy byte array and the external arrays (one per
        ``program.externals`` entry) and builds the pointer table."""
        if arena.nbytes < self.program.arena_bytes or not arena.flags.c_contiguous:
            raise CompileError(f"arena of {arena.nbytes} bytes, need "
                               f"{self.program.arena_bytes} contiguous")
        table = pointer_table(self.program.externals, externals)
        self.run(phase, arena.ctypes.data, ctypes.addressof(table))

    def function(self, phase: str):
        """The raw ctypes function ``fn(arena_address, table_address)`` (for callers that
        loop over a phase themselves)."""
        return self._fns[phase]


def pointer_table(specs, arrays):
    """A ctypes array of the arrays' addresses, after checking each against its spec
    (the array objects must outlive every call that uses the table)."""
    arrays = list(arrays)
    if len(arrays) != len(specs):
        raise CompileError(f"{len(arrays)} external arrays for {len(specs)} table entries")
    for spec, arr in zip(specs, arrays):
        if (arr is None or arr.dtype.name != spec.dtype or arr.size != spec.size
                or not arr.flags.c_contiguous or not arr.flags.aligned):
            got = "nothing" if arr is None else f"{arr.size} {arr.dtype}"
            raise CompileError(f"external {spec.name}: need {spec.size} C-contiguous aligned "
                               f"{spec.dtype}, got {got}")
    table = (ctypes.c_void_p * max(len(arrays), 1))()
    for i, arr in enumerate(arrays):
        table[i] = arr.ctypes.data
    return table


def compile_program(program: Program, name_hint: str = "program") -> CompiledProgram:
    """Compile, or load from the disk cache keyed by the program's own description.

    Building and printing the LLVM module costs far more than everything before it (the
    matmul emitters alone write thousands of instructions), so the cache key is the loop IR
    and emitter descriptions of every kernel plus the call lists: a warm start never
    builds LLVM IR. The key also covers the codegen sources (``jit.key_parts``), so a
    changed emitter cannot reuse stale machine code.
    """
    validate(program)
    threadpool.ensure_loaded()  # phases may call symgraph_parallel
    dumps = {}
    if os.environ.get("SYMGRAPH_DUMP"):
        dumps["loopir.txt"] = "\n".join(k.dump() for k in _all_kernels(program))
    library = jit.compile_ir(program_units(program, name_hint),
                             list(program.phases), name_hint, extra_dumps=dumps,
                             description=describe(program))
    return CompiledProgram(program, library)


def describe(program: Program) -> str:
    """Everything the generated code depends on, as text: kernels, then calls per phase."""
    lines = [f"{k.dump()} fastmath={getattr(k, 'fastmath', False)}"
             for k in _all_kernels(program)]
    lines += [f"external {i} {e.name} {e.dtype} {e.size}"
              for i, e in enumerate(program.externals)]
    lines.append(f"threads {program.threads}")
    for phase, calls in program.phases.items():
        lines.append(f"phase {phase}")
        lines += [f"  {c.kernel.name} {c.args}" for c in calls]
    return "\n".join(lines)
