"""A program compiled as one module per non-inlined kernel, serially or with a forked
helper: the same objects, symbols and numbers either way; the fallbacks."""

import os
import threading
import time

import numpy as np
import pytest

from codegen import bundle, cache, jit, split_compile
from codegen import loop_ir as L
from codegen.kernels.builders import elementwise_kernel, reduce_kernel
from codegen.objcheck import BadObject, check_object
from codegen.program import KernelCall, Program, compile_program, program_units, separate_forms

pytestmark = pytest.mark.jit
BIG, SMALL = 5003, 7  # BIG is over llvm_emit.INLINE_ELEMENTS: those kernels are noinline


def _program(threads=1):
    x, y, z = (L.BufferParam(n, "float32", BIG) for n in "xyz")
    s, t = L.BufferParam("s", "float32", 1), L.BufferParam("t", "float32", SMALL)
    k1 = elementwise_kernel((BIG,), [(x, (BIG,))], lambda v: v * 3 + 1, [y])
    k2 = elementwise_kernel((BIG,), [(x, (BIG,)), (y, (BIG,))], lambda a, b: a * b - a,
                            [z])
    k3 = reduce_kernel((BIG,), [0], "sum", z, s)
    u = L.BufferParam("u", "float32", SMALL)
    k4 = elementwise_kernel((SMALL,), [(t, (SMALL,))], lambda v: v * v, [u])  # inlinable
    off = [0, 4 * BIG, 8 * BIG, 12 * BIG, 12 * BIG + 4, 12 * BIG + 4 + 4 * SMALL]
    phases = {"forward": [KernelCall(k1, (off[0], off[1])),
                          KernelCall(k2, (off[0], off[1], off[2])),
                          KernelCall(k3, (off[2], off[3]))],
              "small": [KernelCall(k4, (off[4], off[5])), KernelCall(k1, (off[0], off[1]))]}
    return Program((k1, k2, k3, k4), off[5] + 4 * SMALL, phases, threads=threads)


def _run(compiled):
    arena = np.zeros(compiled.program.arena_bytes // 4, np.float32)
    arena[:BIG] = np.linspace(-2, 2, BIG, dtype=np.float32)
    arena[3 * BIG + 1: 3 * BIG + 1 + SMALL] = np.arange(SMALL, dtype=np.float32)
    compiled.run_array("forward", arena)
    compiled.run_array("small", arena)
    return arena


def _compile(tmp_path, monkeypatch, jobs, folder, threads=1):
    """(compiled program, its cache payload); checks that a helper built some modules
    when ``jobs`` > 1 and it was not a cache hit."""
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path / folder))
    monkeypatch.setenv(split_compile.ENV, str(jobs))
    helped = []
    real = split_compile.compile_units

    def spy(count, build, jobs=None):
        objects, theirs = real(count, lambda i: _slowly(build, i), jobs)
        helped.append(theirs)
        return objects, theirs

    monkeypatch.setattr(split_compile, "compile_units", spy)
    compiled = compile_program(_program(threads), "split")
    assert all((n > 0) == (jobs > 1) for n in helped)
    return compiled, cache.load(compiled.library.cache_key)


def _slowly(build, i):
    """A unit that takes a moment, so the helper surely gets some of four."""
    time.sleep(0.05)
    return build(i)


@pytest.mark.parametrize("threads", [1, 2])
def test_parallel_compile_gives_the_serial_bytes_and_numbers(tmp_path, monkeypatch, threads):
    serial, serial_obj = _compile(tmp_path, monkeypatch, 1, "serial", threads)
    parallel, parallel_obj = _compile(tmp_path, monkeypatch, 2, "parallel", threads)
    assert parallel_obj == serial_obj
    parts = bundle.unpack(serial_obj)
    units = program_units(_program(threads), "split")
    assert len(parts) == units.count == 5  # forward, small (inlines k4), k1, k2, k3
    defined = [check_object(p) for p in parts]
    assert b"forward" in defined[0] and b"small" in defined[1]
    forms = separate_forms(_program(threads))
    assert len(forms) == 3 and _program().kernels[3].name not in forms
    for i, (name, entries) in enumerate(forms.items()):  # a module each (MIN_MODULES)
        for form in entries:
            assert [(name + form).encode() in d for d in defined].count(True) == 1
            assert (name + form).encode() in defined[2 + i]
    out_serial, out_parallel = _run(serial), _run(parallel)
    np.testing.assert_array_equal(out_serial, out_parallel)
    x = np.linspace(-2, 2, BIG, dtype=np.float32)
    np.testing.assert_allclose(out_serial[BIG:2 * BIG], x * 3 + 1, rtol=1e-6)
    np.testing.assert_allclose(out_serial[2 * BIG:3 * BIG], x * (x * 3 + 1) - x,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out_serial[-SMALL:], np.arange(SMALL) ** 2)


def test_kernels_are_grouped_by_tuning_round_robin(monkeypatch):
    from codegen import program as P

    monkeypatch.setattr(P, "KERNELS_PER_MODULE", 2)
    monkeypatch.setattr(P, "MIN_MODULES", 1)
    units = program_units(_program(), "g")
    assert units.count == 4  # two phases, k1 + k3, k2
    texts = [units.text(i) for i in range(units.count)]
    k1, k2, k3, _ = (k.name for k in _program().kernels)
    assert f'define void @"{k1}"' in texts[2] and f'define void @"{k3}"' in texts[2]
    assert f'define void @"{k2}"' in texts[3] and k1 not in texts[3]


def test_warm_start_links_the_bundle(tmp_path, monkeypatch):
    cold, _ = _compile(tmp_path, monkeypatch, 2, "c")
    before = jit.STATS["optimize"]
    warm, _ = _compile(tmp_path, monkeypatch, 2, "c")
    assert jit.STATS["optimize"] == before  # served from the cache
    np.testing.assert_array_equal(_run(cold), _run(warm))


def _slow_build(i):
    time.sleep(0.02)
    return f"unit {i}".encode() * (i + 1)


@pytest.mark.parametrize("jobs", [2, 3])
def test_helpers_share_the_work_in_order(jobs):
    objects, theirs = split_compile.compile_units(12, _slow_build, jobs=jobs)
    assert objects == [_slow_build(i) for i in range(12)]
    assert 0 < theirs < 12


def test_units_a_failed_helper_drops_are_built_by_the_parent():
    parent = os.getpid()

    def build(i):
        if os.getpid() != parent and i % 2:
            raise RuntimeError("helper fails on odd units")
        return _slow_build(i)

    objects, theirs = split_compile.compile_units(10, build, jobs=2)
    assert objects == [_slow_build(i) for i in range(10)]


def test_a_unit_that_fails_everywhere_raises_its_error():
    def build(i):
        if i == 3:
            raise ValueError("unit 3 is broken")
        return b"ok"

    with pytest.raises(ValueError, match="unit 3"):
        split_compile.compile_units(6, build, jobs=2)


def test_serial_when_another_thread_runs():
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not split_compile.fork_safe()
        objects, theirs = split_compile.compile_units(4, _slow_build, jobs=2)
    finally:
        stop.set()
        other.join()
    assert (objects, theirs) == ([_slow_build(i) for i in range(4)], 0)


def test_jobs_from_the_environment(monkeypatch):
    monkeypatch.setenv(split_compile.ENV, "3")
    assert split_compile.jobs_wanted() == 3
    monkeypatch.setenv(split_compile.ENV, "0")
    assert split_compile.jobs_wanted() == 1
    monkeypatch.setenv(split_compile.ENV, "many")
    assert split_compile.jobs_wanted() == 1
    monkeypatch.delenv(split_compile.ENV)
    assert 1 <= split_compile.jobs_wanted() <= len(os.sched_getaffinity(0))


def test_bundle_round_trip_and_damage():
    parts = [b"first object", b"second", b"third one"]
    packed = bundle.pack(parts)
    assert bundle.unpack(packed) == parts
    assert bundle.pack([b"alone"]) == b"alone" and bundle.unpack(b"alone") == [b"alone"]
    with pytest.raises(BadObject, match="parts of"):
        bundle.unpack(packed[:-1])
    with pytest.raises(BadObject, match="bundle of"):
        bundle.unpack(bundle.MAGIC + b"\xff\xff\xff\xff")


def test_damaged_bundle_entry_is_rebuilt(tmp_path, monkeypatch):
    compiled, _ = _compile(tmp_path, monkeypatch, 1, "d")
    entry = cache.entry_path(compiled.library.cache_key)
    data = entry.read_bytes()
    entry.write_bytes(data[:-100])
    before = jit.STATS["optimize"]
    again, obj = _compile(tmp_path, monkeypatch, 1, "d")
    assert jit.STATS["optimize"] == before + 1 and obj is not None
    np.testing.assert_array_equal(_run(compiled), _run(again))


def test_separate_matmul_is_not_unrolled_again_and_still_right():
    """A matmul over more than INLINE_ELEMENTS gets a module of its own, compiled without
    LLVM's unroller (its emitter unrolled the tiles); loop kernels keep the full one."""
    from cg_helpers import run_kernel

    from codegen.kernels.matmul import matmul_kernel

    M, N, K = 70, 83, 65
    k = matmul_kernel(M, N, K, trans_b=True, bias="col")
    loop = _program().kernels[0]
    offsets = tuple(range(0, 64 * len(k.params), 64))
    units = program_units(Program((k, loop), 1 << 20, {"run": [
        KernelCall(k, offsets), KernelCall(loop, (0, 4 * BIG))]}), "mm")
    assert units.count == 3  # the phase, the matmul, the loop kernel
    assert units.tuning(1) == jit.Tuning(opt=3, unroll=False)  # the matmul's module
    assert units.tuning(0) == units.tuning(2) == jit.Tuning()
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((M, K), np.float32), rng.standard_normal((N, K), np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    out = run_kernel(k, {"a": a, "b": b, "bias": bias, "c": np.zeros((M, N), np.float32)})
    np.testing.assert_allclose(out["c"], a @ b.T + bias, rtol=1e-4, atol=1e-4)
