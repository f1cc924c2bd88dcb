"""Too-large layers and batches are refused at bind, before LLVM or numpy allocate
anything (issue 10 section 4: these used to abort with 'LLVM ERROR: Unable to allocate
section memory' or ask numpy for hundreds of GiB)."""

import numpy as np
import pytest

import symgraph as sg
from codegen import compiler, limits
from runtime import executor

S = sg.sym


pytestmark = pytest.mark.usefixtures("default_memory_limit")


@pytest.fixture
def nothing_allocated(monkeypatch):
    """Fail the test if LLVM code is built or an executor arena is allocated."""
    def refuse(*args, **kwargs):
        raise AssertionError("allocated or compiled before the limit was checked")

    monkeypatch.setattr(compiler, "compile_program", refuse)
    monkeypatch.setattr(executor, "_arena", refuse)


def data():
    return S.Variable("data")


HUGE = [
    (lambda: S.FullyConnected(data(), num_hidden=10 ** 9, name="fc1"), {"data": (2, 16)},
     r"input 'fc1_weight' of shape \(1000000000, 16\) needs 59.6 GiB"),
    (lambda: S.FullyConnected(data(), num_hidden=4, name="fc1"), {"data": (2 ** 40, 2 ** 40)},
     r"input 'data' of shape \(1099511627776, 1099511627776\)"),
    (lambda: S.one_hot(data(), depth=10 ** 9, name="hot"), {"data": (100,)},
     r"one_hot node 'hot' of shape \(100, 1000000000\)"),
]


@pytest.mark.parametrize("make,shapes,message", HUGE)
def test_huge_graphs_are_refused_before_compiling(make, shapes, message, nothing_allocated):
    with pytest.raises(sg.MemoryLimitError, match=message):
        make().simple_bind(sg.cpu(), grad_req="null", **shapes)


def test_huge_pad_in_a_model_file(tmp_path, nothing_allocated):
    net = S.Convolution(data(), kernel=(3, 3), num_filter=2, pad=(10 ** 6, 10 ** 6),
                        name="conv1")
    net.save(str(tmp_path / "m-symbol.json"))
    loaded = S.load(str(tmp_path / "m-symbol.json"))
    with pytest.raises(MemoryError, match=r"Convolution node 'conv1' of shape "
                                          r"\(1, 2, 2000002, 2000002\) needs 29.1 TiB"):
        loaded.simple_bind(sg.cpu(), data=(1, 1, 4, 4))


def mlp(layers=4, width=256):
    net = data()
    for i in range(layers):
        net = S.FullyConnected(net, num_hidden=width, name=f"fc{i}")
    return net


def test_the_whole_plan_is_checked_not_only_each_tensor(nothing_allocated):
    sg.set_memory_limit("600K")  # each tensor (256 KiB at most) fits; the arena does not
    with pytest.raises(sg.MemoryLimitError, match=r"the executor of 'fc3' needs"):
        mlp().simple_bind(sg.cpu(), data=(256, 256))


def test_a_limit_lowered_after_compiling_still_guards_the_arena():
    net = mlp(layers=1, width=8)
    net.simple_bind(sg.cpu(), data=(4, 8))  # compiled and memoized
    sg.set_memory_limit("1K")
    with pytest.raises(sg.MemoryLimitError, match="executor"):
        net.simple_bind(sg.cpu(), data=(4, 8))


def test_environment_variable_sets_the_limit(monkeypatch, nothing_allocated):
    monkeypatch.setenv(limits.ENV, "64K")
    with pytest.raises(sg.MemoryLimitError, match=r"from SYMGRAPH_MEMORY_LIMIT"):
        mlp(layers=1).simple_bind(sg.cpu(), data=(256, 256))


def test_module_bind_with_a_huge_batch_is_refused(nothing_allocated):
    net = S.SoftmaxOutput(S.FullyConnected(data(), num_hidden=26, name="fc1"), name="softmax")
    mod = sg.mod.Module(net)
    with pytest.raises(sg.MemoryLimitError, match=r"input 'data' of shape \(1000000000, 16\)"):
        mod.bind([("data", (10 ** 9, 16))], [("softmax_label", (10 ** 9,))])
    assert not mod.binded


def test_under_the_limit_binds_and_runs():
    sg.set_memory_limit("64M")
    exe = mlp(layers=2, width=8).simple_bind(sg.cpu(), data=(4, 8), grad_req="null")
    exe.arg_dict["data"][:] = 1.0
    assert np.isfinite(exe.forward()[0]).all()
