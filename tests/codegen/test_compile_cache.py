"""The disk cache: an entry is bound to its key and MAC, objects are checked before the JIT
linker sees them, the folder is capped with LRU eviction, and the CLI reports and clears it."""

import hashlib
import hmac
import os
import struct
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codegen import cache, jit
from codegen import loop_ir as L
from codegen.kernels.builders import elementwise_kernel
from codegen.objcheck import BadObject, check_object
from codegen.program import KernelCall, Program, compile_program, describe
from runtime import cli

pytestmark = pytest.mark.jit


def _program(factor: float, n: int = 37):
    x, y = L.BufferParam("x", "float32", n), L.BufferParam("y", "float32", n)
    scale = elementwise_kernel((n,), [(x, (n,))], lambda v: v * factor, [y])
    return Program((scale,), 8 * n, {"forward": [KernelCall(scale, (0, 4 * n))]})


def _run(compiled, n: int = 37):
    arena = np.zeros(2 * n, np.float32)
    arena[:n] = np.arange(n, dtype=np.float32)
    compiled.run_array("forward", arena)
    return arena[n:]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    cache.set_max_bytes(None)
    yield tmp_path
    cache.set_max_bytes(None)


def _only_entry(folder):
    entries = sorted(folder.glob("*.o"))
    assert len(entries) == 1
    return entries[0]


def _recompile_a() -> int:
    """Compile program 'a' again and check its numbers; return how many LLVM optimization
    runs that took (0: served from the cache, 1: rebuilt)."""
    before = jit.STATS["optimize"]
    compiled = compile_program(_program(2.0), "a")
    np.testing.assert_array_equal(_run(compiled), 2 * np.arange(37, dtype=np.float32))
    return jit.STATS["optimize"] - before


def test_entry_stores_its_full_key(folder):
    compile_program(_program(2.0), "a")
    entry = _only_entry(folder)
    data = entry.read_bytes()
    assert data.startswith(cache.MAGIC)
    (key_len,) = struct.unpack_from("<I", data, len(cache.MAGIC))
    assert data[len(cache.MAGIC) + 4: len(cache.MAGIC) + 4 + key_len] == entry.stem.encode()
    assert _recompile_a() == 0


def test_entry_of_another_graph_under_a_key_is_rebuilt(folder):
    compile_program(_program(2.0), "a")
    key_a = _only_entry(folder)
    saved = key_a.read_bytes()
    key_a.unlink()
    compile_program(_program(3.0), "b")
    key_b = _only_entry(folder)
    key_a.write_bytes(key_b.read_bytes())  # b's valid entry under a's name
    assert _recompile_a() == 1  # refused, rebuilt
    assert key_a.read_bytes()[:200] == saved[:200]  # a's own entry written back


def _forge(entry, payload: bytes, secret: bytes | None):
    """An entry for ``entry``'s key around ``payload``: with the real secret (an attacker
    who read it) or with a plain sha256 (one who recomputed the obvious checksum)."""
    frame = cache._frame(entry.stem, payload)
    if secret is None:
        mac = hashlib.sha256(frame + payload).digest()
    else:
        mac = hmac.new(secret, frame + payload, "sha256").digest()
    entry.write_bytes(frame + mac + payload)


@pytest.mark.parametrize("with_secret", [False, True])
def test_garbage_with_recomputed_checksum_is_rebuilt(folder, with_secret):
    compile_program(_program(2.0), "a")
    entry = _only_entry(folder)
    secret = (folder / ".secret").read_bytes() if with_secret else None
    rng = np.random.default_rng(0)
    garbage = [rng.bytes(4096), b"\x7fELF\x02\x01\x01" + rng.bytes(4000), b""]
    for payload in garbage:
        _forge(entry, payload, secret)
        assert cache.load(entry.stem) is None  # refused before LLVM sees it
        assert not entry.exists()
        assert _recompile_a() == 1


def test_old_format_entries_are_rebuilt(folder):
    compile_program(_program(2.0), "a")
    entry = _only_entry(folder)
    payload = cache.load(entry.stem)
    entry.write_bytes(b"SGOBJ1\n" + hashlib.sha256(payload).digest() + payload)
    assert cache.load(entry.stem) is None


def test_object_missing_the_wanted_symbols_is_refused(folder):
    compile_program(_program(2.0), "a")
    payload = cache.load(_only_entry(folder).stem)
    check_object(payload)
    with pytest.raises(BadObject, match="does not define"):
        check_object(payload, ["no_such_function"])


@pytest.fixture(scope="module")
def real_object(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    folder = tmp_path_factory.mktemp("objcache")
    mp.setenv("SYMGRAPH_CACHE_DIR", str(folder))
    compile_program(_program(5.0), "obj")
    payload = cache.load(next(folder.glob("*.o")).stem)
    mp.undo()
    return payload


@settings(max_examples=int(os.environ.get("SYMGRAPH_FUZZ_EXAMPLES", "2000")), deadline=None,
          database=None)
@given(ops=st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), min_size=1,
                    max_size=4),
       header_only=st.booleans())
def test_object_check_never_raises_anything_but_bad_object(real_object, ops, header_only):
    """Damaged objects (as a forger with the secret would hand them over) are refused or
    accepted, never crash the checker; the linker only ever sees accepted ones."""
    data = bytearray(real_object)
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    for pos, value in ops:
        if header_only:  # the ELF header and section table: every offset the linker follows
            spots = list(range(64)) + list(range(shoff, len(data)))
            pos = spots[pos % len(spots)]
        data[pos % len(data)] = value
    try:
        check_object(bytes(data))
    except BadObject:
        pass


def test_cache_size_is_capped_with_lru_eviction(folder):
    compile_program(_program(2.0), "a")
    size = _only_entry(folder).stat().st_size
    cache.set_max_bytes(int(2.5 * size))
    compile_program(_program(3.0), "b")
    first = {p.name for p in folder.glob("*.o")}
    old = time.time() - 100
    for p in folder.glob("*.o"):
        os.utime(p, (old, old))
    key_a = cache.cache_key(jit.key_parts(describe(_program(2.0)), 3, kind="program"))
    assert cache.load(key_a) is not None  # a hit: a is now the most recently used
    compile_program(_program(4.0), "c")
    names = {p.name for p in folder.glob("*.o")}
    assert len(names) == 2 and f"{key_a}.o" in names and len(first - names) == 1
    assert cache.info()["bytes"] <= int(2.5 * size)
    cache.set_max_bytes(0)
    assert cache.evict() > 0 and cache.info()["entries"] == 0


def test_max_bytes_setting_from_env(folder, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_MAX_BYTES", "12345")
    assert cache.max_bytes() == 12345
    cache.set_max_bytes(99)
    assert cache.max_bytes() == 99
    with pytest.raises(ValueError):
        cache.set_max_bytes(-1)


def test_cli_cache_info_and_clear(folder, capsys):
    compile_program(_program(2.0), "a")
    compile_program(_program(3.0), "b")
    assert cli.main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert str(folder) in out and "2 entries" in out
    assert cli.main(["cache", "clear"]) == 0
    assert "removed 2 entries" in capsys.readouterr().out
    assert list(folder.glob("*.o")) == []
    assert cli.main(["cache", "info"]) == 0
    assert "0 entries" in capsys.readouterr().out


_LINK_CHILD = """
import random, struct, sys
sys.path.insert(0, {root!r})
from codegen import jit
from codegen.objcheck import BadObject, check_object
payload = open({path!r}, "rb").read()
rng = random.Random({seed})
shoff = struct.unpack_from("<Q", payload, 0x28)[0]
spots = list(range(64)) + list(range(shoff, len(payload)))
accepted = 0
for _ in range({count}):
    data = bytearray(payload)
    for _ in range(rng.randint(1, 3)):
        data[rng.choice(spots)] = rng.randrange(256)
    try:
        check_object(bytes(data))
    except BadObject:
        continue
    accepted += 1
    try:
        jit.CompiledLibrary(bytes(data), [])
    except Exception:
        pass
print(accepted)
"""


def test_objects_the_check_accepts_never_abort_the_linker(real_object, tmp_path):
    """Damaged headers and section tables that pass the check are handed to LLVM's linker
    in a child process: it may raise, but must not abort (LLVM asserts call abort())."""
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "obj.o"
    path.write_bytes(real_object)
    count = int(os.environ.get("SYMGRAPH_FUZZ_EXAMPLES", "2000")) // 4
    seed = int.from_bytes(os.urandom(4), "little")
    code = _LINK_CHILD.format(root=str(Path(__file__).resolve().parents[2]), path=str(path),
                              seed=seed, count=count)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, f"seed {seed}: {res.stderr[-2000:]}"
    assert int(res.stdout.strip()) > 0  # some damaged objects were linked


def test_damaged_secret_is_replaced_and_entries_rebuild(folder):
    compile_program(_program(2.0), "a")
    (folder / ".secret").write_bytes(b"short")
    assert _recompile_a() == 1 and len((folder / ".secret").read_bytes()) == 32
    assert _recompile_a() == 0
