"""LLVM IR text -> optimized object code -> callable addresses, through the disk cache.

Cold and warm paths both end in ``add_object_file`` on an MCJIT engine, so the path that
serves cache hits is exercised by every compile.  ``STATS`` counts optimizations, cache
hits and misses so tests can prove a warm start skipped LLVM's optimizer.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import llvmlite
import llvmlite.binding as llvm

from codegen import bundle, cache, split_compile
from symgraph.errors import CompileError

log = logging.getLogger("codegen.jit")
CODEGEN_VERSION = "symgraph-codegen-2"  # 2: phases take (arena, pointer table)
#: optimize: libraries built by LLVM (each counted once, however many modules it had)
STATS = {"optimize": 0, "cache_hit": 0, "cache_miss": 0, "build_ir": 0}


@dataclass(frozen=True)
class HostTarget:
    triple: str
    cpu: str
    features: str
    vector_bytes: int

    def lanes(self, dtype: str) -> int:
        """Vector width in elements: 16 f32 / 8 f64 on AVX-512, 8/4 on AVX2."""
        return self.vector_bytes // (4 if dtype == "float32" else 8)


@functools.lru_cache(maxsize=1)
def host() -> HostTarget:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    features = llvm.get_host_cpu_features().flatten()
    if "+avx512f" in features.split(","):
        width = 64
    elif "+avx2" in features.split(","):
        width = 32
    else:
        width = 16
    return HostTarget(llvm.get_process_triple(), llvm.get_host_cpu_name(), features, width)


@functools.lru_cache(maxsize=4)
def target_machine(opt: int = 3):
    """Shared machine for optimization and object emission (never given to an engine)."""
    return _new_target_machine(opt)


def _new_target_machine(opt: int):
    h = host()
    target = llvm.Target.from_triple(h.triple)
    return target.create_target_machine(cpu=h.cpu, features=h.features, opt=opt,
                                        reloc="default", codemodel="jitdefault")


class CompiledLibrary:
    """Owns the execution engine; function addresses are valid while this object lives."""

    def __init__(self, object_code: bytes, symbols: list[str]):
        # MCJIT takes ownership of its target machine, so each engine gets a fresh one.
        self._engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""),
                                                  _new_target_machine(3))
        self._object_code = object_code
        for part in bundle.unpack(object_code):
            self._engine.add_object_file(llvm.ObjectFileRef.from_data(part))
        self._engine.finalize_object()
        self.addresses = {}
        for name in symbols:
            addr = self._engine.get_function_address(name)
            if not addr:
                raise CompileError(f"symbol {name} missing from compiled object")
            self.addresses[name] = addr


@dataclass(frozen=True)
class Tuning:
    """LLVM's pipeline for one module: ``opt`` its speed level, ``unroll`` whether LLVM
    may unroll loops (not for code an emitter already unrolled, see program_units)."""

    opt: int = 3
    unroll: bool = True


def optimize(mod, opt: int = 3, unroll: bool = True) -> None:
    pto = llvm.create_pipeline_tuning_options(speed_level=opt)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_unrolling = unroll
    pb = llvm.create_pass_builder(target_machine(opt), pto)
    pb.getModulePassManager().run(mod, pb)


def key_parts(source: str, opt: int, kind: str = "llvm_ir") -> dict[str, str]:
    """Everything that changes the machine code: the source (LLVM IR, or a program
    description), LLVM and llvmlite versions, the host CPU, options and our codegen."""
    h = host()
    return {kind: source, "llvmlite": llvmlite.__version__,
            "llvm": ".".join(map(str, llvm.llvm_version_info)), "triple": h.triple,
            "cpu": h.cpu, "features": h.features, "opt": str(opt), "codegen": CODEGEN_VERSION,
            "codegen_sources": codegen_sources_digest()}


@functools.lru_cache(maxsize=1)
def codegen_sources_digest() -> str:
    """sha256 of this package's sources: a program description only names kernels, so the
    code that turns them into LLVM IR must be part of the key too."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Units:
    """IR as ``count`` modules compiled separately (possibly in parallel, see
    :mod:`codegen.split_compile`) and linked into one engine: ``text(i)`` builds module
    ``i``. Functions one module calls in another must have external linkage there."""

    count: int
    text: Callable[[int], str]
    tuning: Callable[[int], Tuning] = lambda i: Tuning()
    #: work every module needs, done once before any helper is forked
    prepare: Callable[[], object] = lambda: None


def compile_ir(ir_text, symbols: list[str], name_hint: str = "program", opt: int = 3,
               extra_dumps: dict[str, str] | None = None,
               description: str | None = None) -> CompiledLibrary:
    """Compile (or fetch from cache) LLVM IR and resolve ``symbols``.

    ``ir_text`` is the IR, a function returning it, or :class:`Units`; with
    ``description`` (a complete text of what the IR is built from) the cache key uses the
    description and the IR is only built on a miss or when ``SYMGRAPH_DUMP`` asks for it.
    """
    if isinstance(ir_text, Units) and description is None:
        raise CompileError("IR in units needs a description for its cache key")
    parts = key_parts(ir_text, opt) if description is None else \
        key_parts(description, opt, kind="program")
    key = cache.cache_key(parts)
    obj = cache.load(key, symbols)
    hit = obj is not None
    dumps = dict(extra_dumps or {})
    if obj is None:
        STATS["cache_miss"] += 1
        obj, more = _build_library(ir_text, opt, name_hint)
        dumps.update(more)
        cache.store(key, obj)
    else:
        STATS["cache_hit"] += 1
        log.debug("cache hit %s for %s", key[:16], name_hint)
        if os.environ.get("SYMGRAPH_DUMP"):
            dumps["ll"] = _texts(ir_text)
    _dump(name_hint, key, dumps)
    try:
        library = CompiledLibrary(obj, symbols)
        library.cache_key = key  # what a stored compile result names (result_cache)
        return library
    except (RuntimeError, CompileError) as exc:
        if not hit:  # freshly built: a real failure
            raise
        log.warning("cached object for %s does not link (%s): rebuilding", name_hint, exc)
        cache.entry_path(key).unlink(missing_ok=True)
        return compile_ir(ir_text, symbols, name_hint, opt, extra_dumps, description)


def _texts(source) -> str:
    """The IR text of ``source`` (modules of Units one after the other)."""
    if isinstance(source, Units):
        STATS["build_ir"] += 1
        return "\n".join(source.text(i) for i in range(source.count))
    if callable(source):
        STATS["build_ir"] += 1
        return source()
    return source


def _build_library(source, opt: int, name_hint: str):
    """(payload, dumps) of freshly built code: one object, or a bundle of one per unit."""
    STATS["optimize"] += 1
    if not isinstance(source, Units):
        text = _texts(source)
        obj, more = _build_object(text, Tuning(opt), name_hint)
        return obj, {"ll": text, **more}
    STATS["build_ir"] += 1
    source.prepare()
    if os.environ.get("SYMGRAPH_DUMP"):  # serial: every unit's stages into one file each
        texts = [source.text(i) for i in range(source.count)]
        built = [_build_object(text, source.tuning(i), name_hint)
                 for i, text in enumerate(texts)]
        dumps = {"ll": "\n".join(texts)}
        for ext in built[0][1]:
            dumps[ext] = "\n".join(more[ext] for _, more in built)
        return bundle.pack([obj for obj, _ in built]), dumps
    objects, _ = split_compile.compile_units(
        source.count, lambda i: _build_object(source.text(i), source.tuning(i), name_hint)[0])
    return bundle.pack(objects), {}


def load_library(key: str, symbols: list[str]) -> CompiledLibrary | None:
    """The cached object of ``key`` linked, or None when it is missing, refused or does
    not link (the entry is then removed): how a stored compile result gets its code."""
    obj = cache.load(key, symbols)
    if obj is None:
        return None
    try:
        library = CompiledLibrary(obj, symbols)
    except (RuntimeError, CompileError) as exc:
        log.warning("cached object %s does not link (%s): rebuilding", key[:16], exc)
        cache.entry_path(key).unlink(missing_ok=True)
        return None
    STATS["cache_hit"] += 1
    library.cache_key = key
    return library


def _build_object(ir_text: str, tuning: Tuning, name_hint: str):
    try:
        mod = llvm.parse_assembly(ir_text)
        mod.verify()
    except RuntimeError as exc:
        raise CompileError(f"invalid LLVM IR for {name_hint}: {exc}") from exc
    optimize(mod, tuning.opt, tuning.unroll)
    tm = target_machine(tuning.opt)
    more = {}
    if os.environ.get("SYMGRAPH_DUMP"):
        more = {"opt.ll": str(mod), "s": tm.emit_assembly(mod)}
    return tm.emit_object(mod), more


def _dump(name_hint: str, key: str, dumps: dict[str, str]) -> None:
    target = os.environ.get("SYMGRAPH_DUMP")
    if not target:
        return
    directory = Path(target)
    directory.mkdir(parents=True, exist_ok=True)
    for ext, text in dumps.items():
        (directory / f"{name_hint}-{key[:12]}.{ext}").write_text(text)
