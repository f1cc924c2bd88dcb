"""The disk cache of whole compile results: a warm start gives the executor a cold
compile would, any change of the inputs is a new key, and a damaged, forged or stale entry
falls back to a full compile with the right numbers."""

import hmac
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symgraph as sg
from codegen import cache, jit, limits, result_cache, result_codec, threadpool
from codegen.compile_cache import compile_cached
from codegen.result_cache import CachedGraph, compile_graph_cached
from runtime import cli
from runtime.executor import Executor
from symgraph.errors import MemoryLimitError

pytestmark = pytest.mark.jit
S = sg.sym
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SYMGRAPH_DUMP", raising=False)
    cache.set_max_bytes(None)
    yield tmp_path
    cache.set_max_bytes(None)


# ---------------------------------------------------------------------------- networks
def _mlp_with(hidden=12, act="relu"):
    x = S.Flatten(S.Variable("data"), name="flat")
    x = S.Activation(S.FullyConnected(x, num_hidden=hidden, name="fc1"), act_type=act,
                     name="relu1")
    return S.SoftmaxOutput(S.FullyConnected(x, num_hidden=5, name="fc2"), name="softmax")


def mlp():
    """Every node named: an automatic name depends on how many nodes the process made."""
    return _mlp_with()


def lenet():
    x = S.Variable("data")
    for i, filters in enumerate((4, 6)):
        x = S.Convolution(x, kernel=(3, 3), num_filter=filters, name=f"conv{i}")
        x = S.Activation(x, act_type="tanh", name=f"tanh{i}")
        x = S.Pooling(x, pool_type="max", kernel=(2, 2), stride=(2, 2), name=f"pool{i}")
    x = S.Activation(S.FullyConnected(S.Flatten(x, name="flat"), num_hidden=10, name="fc1"),
                     act_type="tanh", name="tanh")
    return S.SoftmaxOutput(S.FullyConnected(x, num_hidden=3, name="fc2"), name="softmax")


def bn_net():
    x = S.Convolution(S.Variable("data"), kernel=(3, 3), num_filter=4, name="conv")
    x = S.Activation(S.BatchNorm(x, name="bn", fix_gamma=False), act_type="relu",
                     name="relu")
    return S.SoftmaxOutput(S.FullyConnected(S.Flatten(x, name="flat"), num_hidden=3,
                                            name="fc"), name="softmax")


NETS = {"mlp": (mlp, (6, 3, 5)), "lenet": (lenet, (4, 1, 14, 13)),
        "batchnorm": (bn_net, (5, 2, 7, 6))}


def _inputs(net, data_shape):
    reqs = {n: "null" if n in ("data", "softmax_label") else "write"
            for n in net.list_arguments()}
    return {"data": data_shape}, {}, reqs


def _compile(net, shapes, dtypes, reqs):
    """What a new process pays: the disk cache, never the in-process memo."""
    return compile_graph_cached(net, shapes, dtypes, reqs, name_hint="t")


def _step(net, compiled, reqs, seed=0):
    """Outputs, gradients and aux states after one training step and one predict."""
    exe = Executor(net, compiled, reqs)
    rng = np.random.default_rng(seed)
    for name, array in {**exe.arg_dict, **exe.aux_dict}.items():
        if name == "softmax_label":
            array[:] = rng.integers(0, 3, array.shape)
        elif name.endswith("_var"):
            array[:] = rng.uniform(0.5, 1.5, array.shape)
        else:
            array[:] = rng.uniform(-1, 1, array.shape)
    exe.forward_backward()
    out = {f"out{i}": o.copy() for i, o in enumerate(exe.outputs)}
    out.update({f"grad:{n}": g.copy() for n, g in exe.grad_dict.items()})
    out.update({f"aux:{n}": a.copy() for n, a in exe.aux_dict.items()})
    exe.forward(is_train=False)
    out.update({f"pred{i}": o.copy() for i, o in enumerate(exe.outputs)})
    return out


def _assert_same(got, want):
    assert got.keys() == want.keys()
    for name, value in want.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
        assert got[name].tobytes() == value.tobytes(), name  # bitwise


def _results(folder):
    return sorted(folder.glob("*.result"))


def _misses(fn):
    before = result_cache.STATS["miss"]
    value = fn()
    return value, result_cache.STATS["miss"] - before


# ---------------------------------------------------------------------------- warm == cold
@pytest.mark.parametrize("name", NETS)
def test_warm_start_gives_bitwise_the_cold_numbers(folder, name):
    build, data_shape = NETS[name]
    net = build()
    args = _inputs(net, data_shape)
    cold, misses = _misses(lambda: _compile(net, *args))
    assert misses == 1 and not isinstance(cold, CachedGraph)
    assert len(_results(folder)) == 1
    optimized = jit.STATS["optimize"]
    warm, misses = _misses(lambda: _compile(net, *args))
    assert misses == 0 and isinstance(warm, CachedGraph)
    assert jit.STATS["optimize"] == optimized  # LLVM never ran
    assert warm.arena_bytes == cold.arena_bytes and warm.externals == cold.externals
    assert warm.args == cold.args and warm.grads == cold.grads and warm.aux == cold.aux
    assert warm.outputs == cold.outputs and warm.head_grads == cold.head_grads
    assert warm.plan == cold.plan
    _assert_same(_step(net, warm, args[2]), _step(net, cold, args[2]))
    # what is not stored is compiled on demand, and agrees with the stored calls
    assert warm.graph_text == cold.graph_text
    calls = warm.program.program.phases["forward_backward"]
    assert [c.kernel.name for c in calls] == \
        [c.kernel.name for c in cold.program.program.phases["forward_backward"]]
    assert len(warm.trace) == len(calls)


def test_a_new_process_starts_from_the_entry(folder):
    net = mlp()
    shapes, dtypes, reqs = _inputs(net, (6, 3, 5))
    want = _step(net, _compile(net, shapes, dtypes, reqs), reqs)
    code = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
sys.path.insert(0, {str(Path(__file__).parent)!r})
import numpy as np
from codegen import jit, result_cache
from codegen.compile_cache import compile_cached
from test_result_cache import _inputs, _step, mlp
net = mlp()
shapes, dtypes, reqs = _inputs(net, (6, 3, 5))
out = _step(net, compile_cached(net, shapes, dtypes, reqs), reqs)
np.savez({str(folder / "child.npz")!r}, **out)
print(result_cache.STATS["hit"], jit.STATS["optimize"], jit.STATS["build_ir"], result_cache.STATS)
"""
    # the thread count is part of the key: the child compiles for this process's count
    # (an earlier test in this worker may have changed it from the environment's)
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(folder),
               SYMGRAPH_NUM_THREADS=str(threadpool.compile_threads()))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split()[:3] == ["1", "0", "0"], res.stdout  # a hit: no IR, no LLVM
    with np.load(folder / "child.npz") as child:
        _assert_same(dict(child), want)


def test_in_process_memo_still_hands_out_one_result(folder):
    net = mlp()
    shapes, dtypes, reqs = _inputs(net, (6, 3, 5))
    assert compile_cached(net, shapes, dtypes, reqs) is compile_cached(net, shapes, dtypes,
                                                                       reqs)


# ---------------------------------------------------------------------------- the key
def _variants():
    base = _inputs(mlp(), (6, 3, 5))
    shapes, dtypes, reqs = base
    wider, tanh = _mlp_with(hidden=13), _mlp_with(act="tanh")
    return {
        "shape": (mlp(), ({"data": (7, 3, 5)}, dtypes, reqs)),
        "dtype": (mlp(), (shapes, {"data": "float64"}, reqs)),
        "grad_req null": (mlp(), (shapes, dtypes, {**reqs, "fc1_bias": "null"})),
        "grad_req add": (mlp(), (shapes, dtypes, {**reqs, "fc2_weight": "add"})),
        "attr num_hidden": (wider, base),
        "attr act_type": (tanh, base),
    }


@pytest.mark.parametrize("change", list(_variants()))
def test_any_change_of_the_inputs_is_a_new_entry(folder, change):
    net = mlp()
    base = _inputs(net, (6, 3, 5))
    first = _compile(net, *base)
    other_net, args = _variants()[change]
    other, misses = _misses(lambda: _compile(other_net, *args))
    assert misses == 1 and not isinstance(other, CachedGraph)  # compiled cold
    assert len(_results(folder)) == 2
    again, misses = _misses(lambda: _compile(other_net, *args))
    assert misses == 0 and isinstance(again, CachedGraph)
    _assert_same(_step(other_net, again, args[2]), _step(other_net, other, args[2]))
    assert isinstance(_compile(net, *base), CachedGraph) and first is not None


def test_compile_options_are_part_of_the_key():
    key = result_cache.result_key("g", {"data": (2, 3)}, {}, {"w": "write"}, {})
    assert key != result_cache.result_key("g", {"data": (2, 3)}, {}, {"w": "write"},
                                          {"split_backward": 2})
    assert key == result_cache.result_key("g", {"data": [2, 3]}, {}, {"w": "write"}, {})


# ---------------------------------------------------------------------------- bad entries
def _forge(entry, payload: bytes, secret: bytes | None):
    frame = cache._frame(entry.name.split(".")[0], payload, cache.KINDS["result"][1])
    key = secret if secret is not None else b"not the secret"
    entry.write_bytes(frame + hmac.new(key, frame + payload, "sha256").digest() + payload)


def _payload(entry) -> dict:
    return json.loads(cache.load_result(entry.name.split(".")[0]))


def _tampered(doc, how):
    doc = json.loads(json.dumps(doc))
    if how == "arena too small":
        doc["arena_bytes"] = 64
    elif how == "offset outside":
        call = doc["calls"][doc["phases"]["forward"][0]]
        call[1] = [1 << 40 for _ in call[1]]
    elif how == "call index outside":
        doc["phases"]["forward"][0] = len(doc["calls"])
    elif how == "slot outside":
        doc["outputs"][0][3] = doc["arena_bytes"]
    elif how == "wrong table entry":
        doc["args"][0][4] = len(doc["externals"]) + 3
    elif how == "renamed argument":
        doc["args"][0][0] = "other"
    elif how == "wrong type":
        doc["kernels"][0][1][0][2] = "12"
    elif how == "missing field":
        del doc["plan"]
    return json.dumps(doc).encode()


BAD = ["truncated", "flipped byte", "not json", "pickle", "arena too small",
       "offset outside", "call index outside", "slot outside", "wrong table entry",
       "renamed argument", "wrong type", "missing field", "object gone"]


@pytest.mark.parametrize("how", BAD)
def test_bad_entry_falls_back_to_a_cold_compile(folder, how):
    net = bn_net()
    args = _inputs(net, (5, 2, 7, 6))
    want = _step(net, _compile(net, *args), args[2])
    (entry,) = _results(folder)
    secret = (folder / ".secret").read_bytes()
    data = entry.read_bytes()
    marker = folder / "unpickled"
    if how == "truncated":
        entry.write_bytes(data[: len(data) // 2])
    elif how == "flipped byte":
        entry.write_bytes(data[:-10] + bytes([data[-10] ^ 1]) + data[-9:])
    elif how == "not json":
        _forge(entry, b"\x00\xff" * 100, secret)
    elif how == "pickle":  # a valid MAC around a pickle that would run code if loaded
        _forge(entry, pickle.dumps(_Boom(str(marker))), secret)
    elif how == "object gone":
        for obj in folder.glob("*.o"):
            obj.unlink()
    else:
        _forge(entry, _tampered(_payload(entry), how), secret)
    compiled, misses = _misses(lambda: _compile(net, *args))
    assert misses == 1 and not isinstance(compiled, CachedGraph)
    assert not marker.exists()
    _assert_same(_step(net, compiled, args[2]), want)
    warm = _compile(net, *args)  # the entry was written again
    assert isinstance(warm, CachedGraph)
    _assert_same(_step(net, warm, args[2]), want)


class _Boom:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path(self.path).write_text, ("ran",))


def test_entry_of_another_graph_is_refused(folder):
    net = mlp()
    args = _inputs(net, (6, 3, 5))
    _compile(net, *args)
    (entry,) = _results(folder)
    saved = entry.read_bytes()
    entry.unlink()
    other = _inputs(net, (7, 3, 5))
    _compile(net, *other)
    (other_entry,) = _results(folder)
    entry.write_bytes(other_entry.read_bytes())  # a valid entry under the wrong key
    compiled, misses = _misses(lambda: _compile(net, *args))
    assert misses == 1 and compiled.outputs[0].shape == (6, 5)
    assert entry.read_bytes()[:100] == saved[:100]


def test_entry_is_framed_json(folder):
    net = bn_net()
    _compile(net, *_inputs(net, (5, 2, 7, 6)))
    (entry,) = _results(folder)
    data = entry.read_bytes()
    assert data.startswith(cache.KINDS["result"][1])
    doc = _payload(entry)
    assert doc["format"] == result_codec.FORMAT
    assert set(doc["phases"]) >= {"forward_backward", "predict"}
    assert [s[0] for s in doc["aux"]] == ["bn_moving_mean", "bn_moving_var"]
    assert (folder / f"{doc['object_key']}.o").exists()
    for module in ("result_cache", "result_codec"):
        source = (ROOT / "codegen" / f"{module}.py").read_text()
        assert not re.search(r"\b(import|from)\s+(pickle|marshal|shelve|dill)\b|\beval\(",
                             source), module


# ---------------------------------------------------------------------------- limits, CLI
def test_memory_limit_is_checked_on_a_loaded_result(folder):
    net = lenet()
    args = _inputs(net, (4, 1, 14, 13))
    cold = _compile(net, *args)
    total = limits.program_bytes(cold.program.program)
    try:
        limits.set_memory_limit(total - 1)
        with pytest.raises(MemoryLimitError, match="executor of 't'"):
            _compile(net, *args)
        limits.set_memory_limit(4 * 14 * 13 * 4 - 1)  # the data tensor alone is over it
        with pytest.raises(MemoryLimitError, match="input 'data'"):
            _compile(net, *args)
    finally:
        limits.set_memory_limit(None)
    assert isinstance(_compile(net, *args), CachedGraph)


def test_limit_tensors_keeps_each_new_largest(monkeypatch):
    class Graph:
        shapes = {"a": (2, 3), "b": (1,), "c": (4, 4), "d": (4, 4), "e": None, "f": (9, 9)}
        dtypes = {"c": "float64"}

    monkeypatch.setattr(result_cache, "_describe_entry", str)
    assert result_cache.limit_tensors(Graph) == (("a", (2, 3), 4), ("c", (4, 4), 8),
                                                 ("f", (9, 9), 4))


def test_cli_counts_and_clears_result_entries(folder, capsys):
    net = mlp()
    _compile(net, *_inputs(net, (6, 3, 5)))
    assert cache.info()["kinds"] == {"object": 1, "result": 1}
    assert cli.main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert "2 entries (1 object code, 1 compile results)" in out
    assert cli.main(["cache", "clear"]) == 0
    assert "removed 2 entries" in capsys.readouterr().out
    assert _results(folder) == [] and list(folder.glob("*.o")) == []


def test_lru_cap_evicts_result_entries_too(folder):
    net = mlp()
    _compile(net, *_inputs(net, (6, 3, 5)))
    cache.set_max_bytes(0)
    assert cache.evict() > 0 and cache.info()["entries"] == 0
    cache.set_max_bytes(None)
    compiled, misses = _misses(lambda: _compile(net, *_inputs(net, (6, 3, 5))))
    assert misses == 1


def test_dump_runs_always_compile(folder, monkeypatch, tmp_path_factory):
    net = mlp()
    args = _inputs(net, (6, 3, 5))
    _compile(net, *args)
    monkeypatch.setenv("SYMGRAPH_DUMP", str(tmp_path_factory.mktemp("dump")))
    assert not isinstance(_compile(net, *args), CachedGraph)


def test_source_digest_changes_with_any_source(tmp_path):
    for package in ("a", "b"):
        (tmp_path / package / "sub").mkdir(parents=True)
        (tmp_path / package / "m.py").write_text("x = 1\n")
        (tmp_path / package / "sub" / "n.py").write_text("y = 2\n")
    roots = (str(tmp_path / "a"), str(tmp_path / "b"))
    first = result_cache.folder_digest(*roots)
    (tmp_path / "b" / "notes.txt").write_text("not a source")
    assert result_cache.folder_digest(*roots) == first
    (tmp_path / "b" / "sub" / "n.py").write_text("y = 3\n")
    assert result_cache.folder_digest(*roots) != first
    assert len(result_cache.sources_digest()) == 64
