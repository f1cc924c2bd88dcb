"""Programs with several phases on one arena, validation, dispatch, disk cache."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from codegen import cache, jit
from codegen import loop_ir as L
from codegen.kernels.builders import elementwise_kernel, reduce_kernel
from codegen.program import KernelCall, Program, compile_program, describe
from symgraph.errors import CompileError

pytestmark = pytest.mark.jit
N = 37
X, Y = L.BufferParam("x", "float32", N), L.BufferParam("y", "float32", N)
S, LR = L.BufferParam("s", "float32", 1), L.BufferParam("lr", "float32", 1)


def _program():
    double = elementwise_kernel((N,), [(X, (N,))], lambda x: x * 2, [Y])
    total = reduce_kernel((N,), [0], "sum", X, S)
    sgd = elementwise_kernel((N,), [(X, (N,)), (Y, (N,))], lambda x, g, lr: x - lr * g, [X],
                             scalars=[LR])
    off = {"x": 0, "y": 4 * N, "s": 8 * N, "lr": 8 * N + 4}
    phases = {
        "forward": [KernelCall(double, (off["x"], off["y"])),
                    KernelCall(total, (off["y"], off["s"]))],
        "update": [KernelCall(sgd, (off["x"], off["y"], off["lr"]))],  # x updated in place
        "empty": [],
    }
    return Program((double, total, sgd), 8 * N + 8, phases)


@pytest.fixture(scope="module")
def compiled():
    return compile_program(_program(), "phases")


def test_phases_share_one_arena(compiled):
    arena = np.zeros(2 * N + 2, np.float32)
    x0 = np.linspace(-1, 1, N, dtype=np.float32)
    arena[:N] = x0
    arena[2 * N + 1] = 0.1  # learning rate lives in the arena: no recompile to change it
    compiled.run_array("forward", arena)
    np.testing.assert_allclose(arena[N:2 * N], 2 * x0)
    np.testing.assert_allclose(arena[2 * N], (2 * x0).sum(), rtol=1e-5, atol=1e-5)
    compiled.run_array("update", arena)
    np.testing.assert_allclose(arena[:N], x0 - 0.1 * 2 * x0, rtol=1e-6)
    arena[2 * N + 1] = 1.0
    compiled.run_array("update", arena)
    np.testing.assert_allclose(arena[:N], 0.8 * x0 - 1.0 * 2 * x0, rtol=1e-5, atol=1e-7)


def test_run_validates_before_native_code(compiled):
    with pytest.raises(CompileError):
        compiled.run("nope", 1234)
    with pytest.raises(CompileError):
        compiled.run_array("forward", np.zeros(3, np.float32))


@pytest.mark.parametrize("bad", [
    lambda k: KernelCall(k, (0,)),
    lambda k: KernelCall(k, (2, 4 * N)),
    lambda k: KernelCall(k, (0, 8 * N)),
])
def test_program_validation(bad):
    k = elementwise_kernel((N,), [(X, (N,))], lambda x: x + 1, [Y])
    with pytest.raises(CompileError):
        compile_program(Program((k,), 8 * N, {"p": [bad(k)]}))


_CHILD = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {here!r})
    import numpy as np
    from codegen import jit, threadpool
    from test_cg_program import _program
    threadpool.ensure_loaded()  # the pool's own one-off module is not counted here
    jit.STATS.update(dict.fromkeys(jit.STATS, 0))
    from codegen.program import compile_program
    cp = compile_program(_program(), "child")
    arena = np.zeros(80, np.float32); arena[:37] = 1
    cp.run_array("forward", arena)
    print(json.dumps(dict(jit.STATS, s=float(arena[74]))))
""")


def _child(env):
    here = str(Path(__file__).parent)
    code = _CHILD.format(root=str(Path(here).parents[1]), here=here)
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_warm_start_in_subprocess_skips_optimization(tmp_path):
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(tmp_path))
    cold = _child(env)
    assert cold["optimize"] == 1 and cold["cache_miss"] == 1 and cold["s"] == 74.0
    assert cold["build_ir"] == 1
    warm = _child(env)
    assert warm["optimize"] == 0 and warm["cache_hit"] == 1 and warm["s"] == 74.0
    assert warm["build_ir"] == 0  # keyed by the program description: no LLVM IR built


def test_cache_key_covers_codegen_sources_and_program(monkeypatch):
    """A changed emitter (codegen source) or a changed call list must miss the cache."""
    base = cache.cache_key(jit.key_parts(describe(_program()), 3, kind="program"))
    monkeypatch.setattr(jit, "codegen_sources_digest", lambda: "edited")
    assert cache.cache_key(jit.key_parts(describe(_program()), 3, kind="program")) != base
    monkeypatch.undo()
    program = _program()
    call = program.phases["forward"][0]
    moved = Program(program.kernels, program.arena_bytes + 64, {"forward": [
        KernelCall(call.kernel, tuple(a + 64 for a in call.args))]})
    assert describe(moved) != describe(program)


def test_corrupt_entry_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    compile_program(_program(), "c1")
    entries = list(tmp_path.glob("*.o"))
    assert len(entries) == 1
    data = entries[0].read_bytes()
    entries[0].write_bytes(data[: len(data) // 2])  # truncated
    before = dict(jit.STATS)
    cp = compile_program(_program(), "c2")
    assert jit.STATS["optimize"] == before["optimize"] + 1
    assert cache.load(entries[0].stem) is not None  # rewritten, valid again
    arena = np.ones(80, np.float32)
    cp.run_array("forward", arena)
    assert arena[74] == 74.0


def test_dump_dir_gets_all_stages(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_DUMP", str(tmp_path / "dump"))
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path / "cache"))
    compile_program(_program(), "dumped")
    names = sorted(p.name.split(".", 1)[1] for p in (tmp_path / "dump").iterdir())
    assert names == ["ll", "loopir.txt", "opt.ll", "s"]


# ---- external buffers (the pointer table) ---------------------------------------------------
def _external_program():
    """x and y live outside the arena (table entries 0, 1); s is arena bytes."""
    from codegen.program import Ext, ExternalBuffer

    double = elementwise_kernel((N,), [(X, (N,))], lambda x: x * 2, [Y])
    total = reduce_kernel((N,), [0], "sum", X, S)
    externals = (ExternalBuffer("arg:x", "float32", N), ExternalBuffer("grad:x", "float32", N))
    phases = {"run": [KernelCall(double, (Ext(0), Ext(1))), KernelCall(total, (Ext(1), 0))]}
    return Program((double, total), 64, phases, externals)


def test_phase_reads_and_writes_external_arrays():
    cp = compile_program(_external_program(), "ext")
    x = np.linspace(-1, 1, N, dtype=np.float32)
    y = np.full(N, np.nan, np.float32)
    arena = np.zeros(64, np.uint8)
    cp.run_array("run", arena, [x, y])
    np.testing.assert_allclose(y, 2 * x)  # written in the caller's array
    assert np.isclose(arena[:4].view(np.float32)[0], (2 * x).sum(), atol=1e-5)
    x[:] = 1.0  # no copy: the next run sees it
    cp.run_array("run", arena, [x, y])
    np.testing.assert_allclose(y, 2.0)
    with pytest.raises(CompileError, match="external grad:x"):
        cp.run_array("run", arena, [x, np.zeros(N, np.float64)])
    with pytest.raises(CompileError, match="null pointer table"):
        cp.run("run", arena.ctypes.data)


def test_external_entries_are_validated_and_keyed():
    from codegen.program import Ext, ExternalBuffer, validate

    program = _external_program()
    bad = Program(program.kernels, 64, {"run": [KernelCall(program.kernels[0],
                                                           (Ext(0), Ext(2)))]},
                  program.externals)
    with pytest.raises(CompileError, match="table entry 2 of 2"):
        validate(bad)
    small = Program(program.kernels, 64, program.phases,
                    (program.externals[0], ExternalBuffer("grad:x", "float32", N - 1)))
    with pytest.raises(CompileError, match="does not fit"):
        validate(small)
    swapped = Program(program.kernels, 64, program.phases, program.externals[::-1])
    assert describe(swapped) != describe(program)  # the table layout is part of the key
    assert "ext0" in describe(program)
