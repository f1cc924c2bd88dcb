"""One native call per training step (runtime/native_step.py, codegen/step_driver.py):
the driver's metric kernels against numpy's semantics, and Module's step against the
step-by-step path, bitwise."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from native_helpers import assert_same, letter, mnist, mnist_mlp, train

import symgraph as sg
from codegen import jit
from codegen import step_driver as D
from runtime import native_step

_NOP_IR = """
define void @nop(ptr %a, ptr %b) nounwind {
entry:
  ret void
}
"""


@pytest.fixture(scope="module")
def nop_phase():
    library = jit.compile_ir(_NOP_IR, ["nop"], "test_nop_phase")
    return library, library.addresses["nop"]


def _drive(nop_phase, out, label, pick=False):
    """Run one driver step whose phase does nothing: only the metric kernels."""
    run, _ = D.driver()
    counter = np.zeros(1, dtype=np.int64)
    picked = np.full(out.shape[0], -7.0, dtype=np.float32)
    ctx = np.zeros(D.CTX_SLOTS, dtype=np.int64)
    ctx[D.PHASE] = nop_phase[1]
    ctx[D.ARENA] = ctx[D.EXT] = out.ctypes.data  # never read by the no-op phase
    ctx[D.NSTEPS] = 1
    ctx[D.OUT], ctx[D.LABEL] = out.ctypes.data, label.ctypes.data
    ctx[D.ROWS], ctx[D.COLS] = out.shape
    ctx[D.ACC_COUNT] = counter.ctypes.data
    if pick:
        ctx[D.PICK] = picked.ctypes.data
    run(ctx.ctypes.data)
    return int(counter[0]), picked


def _numpy_accuracy(out, label):
    metric = sg.metric.Accuracy()
    metric.update([label], [out])
    return metric.sum_metric


def test_accuracy_ties_nan_and_odd_labels(nop_phase):
    nan, inf = np.nan, np.inf
    out = np.array([[1, 3, 3, 0], [2, 2, 2, 2], [nan, 5, 9, 1], [0, 7, nan, nan],
                    [-inf, -inf, -inf, -inf], [nan, nan, nan, nan], [0, 0, inf, inf],
                    [1, 2, 3, 4], [4, 3, 2, 1], [1, 9, 1, 1], [0, 0, 0, 1], [5, 1, 1, 1]],
                   dtype=np.float32)
    rng = np.random.default_rng(0)
    for labels in ([1, 0, 0, 2, 0, 0, 2, 3, 0, 1, 3, 0],          # all right
                   [2, 1, 1, 3, 1, 1, 3, 2, 1, 0, 2, 1],          # all wrong
                   [-0.5, 0.9, -1, 2.99, 1e10, nan, 2.5, 3.5, 4, -1e10, 3.0001, inf]):
        label = np.array(labels, dtype=np.float32)
        assert _drive(nop_phase, out, label)[0] == _numpy_accuracy(out, label)
    for _ in range(20):
        out = rng.integers(0, 3, (33, 7)).astype(np.float32)  # many ties
        out[rng.random(out.shape) < 0.05] = nan
        label = rng.integers(-1, 8, 33).astype(np.float32) + \
            rng.choice([0, 0.5, -0.5], 33).astype(np.float32)
        assert _drive(nop_phase, out, label)[0] == _numpy_accuracy(out, label)


def test_pick_is_numpy_indexing(nop_phase):
    rng = np.random.default_rng(1)
    out = rng.random((17, 5), dtype=np.float32)
    label = np.array(rng.integers(0, 5, 17), dtype=np.float32) + np.float32(0.25)
    _, picked = _drive(nop_phase, out, label, pick=True)
    assert np.array_equal(picked, out[np.arange(17), np.int64(label)])


def test_module_step_takes_the_native_path(monkeypatch):
    calls = []
    real = native_step.NativeStep.step
    monkeypatch.setattr(native_step.NativeStep, "step",
                        lambda self, b, m: calls.append(1) or real(self, b, m))
    train("step", letter(200), epochs=1, monkeypatch=monkeypatch)
    assert len(calls) == 7  # 6 full batches and the padded one


@pytest.mark.parametrize("metric", ["acc", "ce", "mse", lambda: ["acc", "ce"]])
def test_one_call_step_bitwise(monkeypatch, metric):
    """acc counted natively; the other metrics still in Python after the one call."""
    kw = dict(data=letter(500), epochs=2, metric=metric,
              optimizer="adam", params=lambda: {"learning_rate": 0.01},
              callbacks=lambda: lambda param: None)  # any callback: fit's Python loop
    assert_same(train("python", monkeypatch=monkeypatch, **kw),
                train("step", monkeypatch=monkeypatch, **kw))


def test_float64_batches_take_the_python_metric(monkeypatch):
    """Batches whose labels are not float32: the metric must read the batch's own labels."""
    x, y = letter(300)
    data = (x.astype(np.float64), y.astype(np.float64) + 0.25)
    ref = None
    for mode in ("python", "step", "epoch"):
        got = train(mode, data, epochs=2, monkeypatch=monkeypatch,
                    iter_kw={"dtype": None})  # keep float64
        if ref is None:
            ref = got
        assert_same(ref, got)


def test_monitor_and_subclass_take_the_old_path(monkeypatch):
    class Quiet(sg.mod.Module):
        def update_metric(self, eval_metric, labels, pre_sliced=False):
            super().update_metric(eval_metric, labels, pre_sliced)

    assert native_step.ENABLED
    mod = Quiet(sg.sym.SoftmaxOutput(sg.sym.FullyConnected(sg.sym.Variable("data"),
                                                           num_hidden=3), name="softmax"))
    assert not mod._fast_step
    x = np.random.default_rng(0).random((8, 4), dtype=np.float32)
    it = sg.io.NDArrayIter(x, np.arange(8) % 3, batch_size=4)
    mod.fit(it, num_epoch=1)
    assert not mod._native_steps


def test_mnist_mlp_one_call_bitwise(monkeypatch):
    kw = dict(data=mnist(600), net=mnist_mlp, batch=100, epochs=2, shuffle=True,
              optimizer="sgd", params=lambda: {"learning_rate": 0.02, "momentum": 0.9},
              callbacks=lambda: sg.callback.Speedometer(100, 2))
    assert_same(train("python", monkeypatch=monkeypatch, **kw),
                train("step", monkeypatch=monkeypatch, **kw))


def test_driver_context_layout():
    assert D.CTX_SLOTS == len({D.PHASE, D.ARENA, D.EXT, D.UPDATE, D.UTABLE, D.NSTEPS,
                               D.NCOPY, D.COPIES, D.SEED, D.NSCHED, D.SCHED, D.STEPROW,
                               D.BLOB, D.OUT, D.LABEL, D.ROWS, D.COLS, D.ACC_COUNT, D.PICK})
    assert ctypes.sizeof(ctypes.c_int64) == 8


@pytest.mark.parametrize("shuffled", [False, True])
def test_driver_copies_batches_in_place_or_gathered(nop_phase, shuffled):
    """Each step copies its batch into the input: a contiguous slice, or rows gathered by
    the iterator's row numbers (after three steps the input holds the third batch)."""
    src = np.arange(40 * 3, dtype=np.float32).reshape(40, 3)
    dst = np.zeros((4, 3), dtype=np.float32)
    order = np.random.default_rng(0).permutation(40) if shuffled else None
    copies, numbers = native_step._copies([(dst, src)], 5, 3, order)
    run, _ = D.driver()
    ctx = np.zeros(D.CTX_SLOTS, dtype=np.int64)
    ctx[D.PHASE] = nop_phase[1]
    ctx[D.ARENA] = ctx[D.EXT] = dst.ctypes.data
    ctx[D.NSTEPS], ctx[D.NCOPY], ctx[D.COPIES] = 3, len(copies), copies.ctypes.data
    run(ctx.ctypes.data)
    rows = order[13:17] if shuffled else np.arange(13, 17)
    assert np.array_equal(dst, src[rows])


def test_copies_refuse_row_numbers_that_do_not_fit():
    src, dst = np.zeros((10, 2), np.float32), np.zeros((4, 2), np.float32)
    with pytest.raises(sg.SymgraphError, match="row order"):
        native_step._copies([(dst, src)], 4, 2, np.arange(10))  # rows 4..11 of 10
    with pytest.raises(sg.SymgraphError, match="row order"):
        native_step._copies([(dst, src)], 0, 2, np.array([0, 1, 2, 3, 4, 5, 6, 10, 8, 9]))
