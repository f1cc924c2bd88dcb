"""Programs: kernels called in order on one arena, one native entry point per phase.

The executor makes exactly one ctypes call per phase, so every argument is a byte offset
into the arena and the phase function GEPs the pointers itself.  Offsets and sizes are
validated here, before anything native runs.
"""

from __future__ import annotations

import ctypes
import os
import re
from dataclasses import dataclass, field

from llvmlite import ir

from codegen import jit
from codegen import loop_ir as L
from codegen.llvm_emit import emit_kernel
from symgraph.errors import CompileError

_PHASE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, eq=False)
class KernelCall:
    kernel: object
    args: tuple  # byte offset into the arena, one per kernel buffer parameter
    node_names: tuple = ()  # graph nodes this call computes (for pictures and dumps)


@dataclass(frozen=True, eq=False)
class Program:
    kernels: tuple
    arena_bytes: int
    phases: dict = field(default_factory=dict)  # phase name -> list[KernelCall]


def validate(program: Program) -> None:
    """Every call's buffers lie inside the arena and are aligned to their element size."""
    if program.arena_bytes < 0:
        raise CompileError(f"negative arena size {program.arena_bytes}")
    for phase, calls in program.phases.items():
        if not _PHASE_RE.match(phase):
            raise CompileError(f"phase name {phase!r} is not an identifier")
        for n, call in enumerate(calls):
            _validate_call(phase, n, call, program.arena_bytes)


def _validate_call(phase, n, call, arena_bytes):
    params = call.kernel.params
    where = f"phase {phase!r} call {n} ({call.kernel.name})"
    if len(call.args) != len(params):
        raise CompileError(f"{where}: {len(call.args)} offsets for {len(params)} buffers")
    for p, off in zip(params, call.args):
        size = L.itemsize(p.dtype)
        if not isinstance(off, int) or off < 0 or off % size:
            raise CompileError(f"{where}: buffer {p.name} has bad offset {off!r}")
        if off + p.size * size > arena_bytes:
            raise CompileError(f"{where}: buffer {p.name} [{off}, {off + p.size * size}) "
                               f"exceeds arena of {arena_bytes} bytes")


def build_module(program: Program, name_hint: str) -> ir.Module:
    module = ir.Module(name="symgraph")  # name_hint must not change the cache key
    module.triple = jit.host().triple
    functions = {}
    for k in _all_kernels(program):
        functions[k.name] = _emit_any(module, k)
    for phase, calls in program.phases.items():
        fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ir.PointerType()]), name=phase)
        fn.attributes.add("nounwind")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        for call in calls:
            ptrs = [b.gep(fn.args[0], [ir.Constant(ir.IntType(64), off)], inbounds=True,
                          source_etype=ir.IntType(8))
                    for off in call.args]
            b.call(functions[call.kernel.name], ptrs)
        b.ret_void()
    return module


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
        proto = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
        self._fns = {p: proto(library.addresses[p]) for p in program.phases}

    @property
    def phases(self):
        return tuple(self._fns)

    def run(self, phase: str, arena_address: int) -> None:
        """Run one phase on the arena at ``arena_address`` (caller guarantees its size)."""
        fn = self._fns.get(phase)
        if fn is None or not arena_address:
            raise CompileError(f"unknown phase {phase!r} or null arena "
                               f"(phases: {sorted(self._fns)})")
        fn(arena_address)

    def run_array(self, phase: str, arena) -> None:
        """Like run, but checks that the numpy byte array is large enough."""
        if arena.nbytes < self.program.arena_bytes or not arena.flags.c_contiguous:
            raise CompileError(f"arena of {arena.nbytes} bytes, need "
                               f"{self.program.arena_bytes} contiguous")
        self.run(phase, arena.ctypes.data)

    def function(self, phase: str):
        """The raw ctypes function (for callers that loop over a phase themselves)."""
        return self._fns[phase]


def compile_program(program: Program, name_hint: str = "program") -> CompiledProgram:
    """Compile, or load from the disk cache keyed by the program's own description.

    Building and printing the LLVM module costs far more than everything before it (the
    matmul emitters alone write thousands of instructions), so the cache key is the loop IR
    and emitter descriptions of every kernel plus the call lists: a warm start never
    builds LLVM IR. The key also covers the codegen sources (``jit.key_parts``), so a
    changed emitter cannot reuse stale machine code.
    """
    validate(program)
    dumps = {}
    if os.environ.get("SYMGRAPH_DUMP"):
        dumps["loopir.txt"] = "\n".join(k.dump() for k in _all_kernels(program))
    library = jit.compile_ir(lambda: str(build_module(program, name_hint)),
                             list(program.phases), name_hint, extra_dumps=dumps,
                             description=describe(program))
    return CompiledProgram(program, library)


def describe(program: Program) -> str:
    """Everything the generated code depends on, as text: kernels, then calls per phase."""
    lines = [f"{k.dump()} fastmath={getattr(k, 'fastmath', False)}"
             for k in _all_kernels(program)]
    for phase, calls in program.phases.items():
        lines.append(f"phase {phase}")
        lines += [f"  {c.kernel.name} {c.args}" for c in calls]
    return "\n".join(lines)
