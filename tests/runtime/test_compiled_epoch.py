"""Compiled epochs (runtime/compiled_epoch.py) give bitwise the parameters, optimizer
states, metrics, history and log lines of fit's Python loop, and fall back where they
cannot."""

from __future__ import annotations

import numpy as np
import pytest
from native_helpers import assert_same, letter, mnist, mnist_mlp, train
from rt_helpers import letter_mlp as mnist_like_letter

import symgraph as sg
from runtime import compiled_epoch, native_step
from runtime import module as module_mod

LETTER = None


def _letter():
    global LETTER
    if LETTER is None:
        LETTER = letter(1003)  # 31 full batches of 32 and a tail of 11
    return LETTER


OPTIMIZERS = {
    "sgd": ("sgd", lambda: {"learning_rate": 0.1}),
    "sgd_momentum_wd": ("sgd", lambda: {"learning_rate": 0.05, "momentum": 0.9, "wd": 1e-4}),
    "adam": ("adam", lambda: {"learning_rate": 0.003}),
    "sgd_factor_scheduler": ("sgd", lambda: {
        "learning_rate": 0.1, "momentum": 0.9,
        "lr_scheduler": sg.lr_scheduler.FactorScheduler(step=9, factor=0.7)}),
    "nadam": ("nadam", lambda: {"learning_rate": 0.01}),  # scalars per parameter
    "adam_multifactor": ("adam", lambda: {
        "learning_rate": 0.01,
        "lr_scheduler": sg.lr_scheduler.MultiFactorScheduler(step=[5, 40], factor=0.5)}),
}


def _compare(monkeypatch, **kw):
    kw.setdefault("data", _letter())
    ref = train("python", monkeypatch=monkeypatch, **kw)
    for mode in ("step", "epoch"):
        assert_same(ref, train(mode, monkeypatch=monkeypatch, **kw))
    return ref


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizers_bitwise(monkeypatch, name):
    optimizer, params = OPTIMIZERS[name]
    ref = _compare(monkeypatch, optimizer=optimizer, params=params, epochs=3)
    assert ref[2][-1][1]["accuracy"] > 0  # it trained


@pytest.mark.parametrize("last_batch_handle", ["pad", "discard", "roll_over"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_last_batch_and_shuffle(monkeypatch, last_batch_handle, shuffle):
    _compare(monkeypatch, epochs=3, shuffle=shuffle, last_batch_handle=last_batch_handle,
             optimizer="sgd", params=lambda: {"learning_rate": 0.1, "momentum": 0.9})


@pytest.mark.parametrize("metric", ["ce", "nll_loss", lambda: ["acc", "ce"]])
def test_native_metrics(monkeypatch, metric):
    _compare(monkeypatch, metric=metric, epochs=2, last_batch_handle="roll_over")


@pytest.mark.parametrize("auto_reset", [True, False])
def test_speedometer_lines(monkeypatch, auto_reset):
    def callbacks():
        return [sg.callback.Speedometer(32, 7, auto_reset=auto_reset),
                sg.callback.Speedometer(32, 10, auto_reset=False)]
    ref = _compare(monkeypatch, callbacks=callbacks, epochs=2, metric=lambda: ["acc", "ce"])
    assert sum("Batch [" in line for line in ref[3]) == 2 * (4 + 3)


def test_short_speedometer_epochs(monkeypatch):
    """An epoch shorter than ``frequent``: the Speedometer must see the last batch, or
    the next epoch's batch 0 would log a line."""
    ref = _compare(monkeypatch, data=letter(100), epochs=3,
                   callbacks=lambda: sg.callback.Speedometer(32, 50))
    assert not any("Batch [" in line for line in ref[3])


def _recorder():
    seen = []

    def callback(param):
        seen.append((param.nbatch, param.eval_metric.get_name_value()))
    callback.seen = seen
    return callback


@pytest.mark.parametrize("case", ["custom_metric", "custom_callback", "mse_metric",
                                  "unfused_update", "two_contexts"])
def test_fallbacks_are_exact(monkeypatch, case):
    """Anything the compiled epoch does not take runs fit's loop, with the same results."""
    kw = {"epochs": 2}
    if case == "custom_metric":
        kw["metric"] = lambda: sg.metric.np(lambda label, pred: float(pred.sum()))
    elif case == "custom_callback":
        kw["callbacks"] = _recorder
    elif case == "mse_metric":
        kw["metric"] = "mse"
    elif case == "two_contexts":  # a device group: one executor per context
        kw["module_kw"] = {"context": [sg.cpu(0), sg.cpu(1)]}
    elif case == "unfused_update":  # the per-parameter Updater (no fused rule)
        monkeypatch.setattr(module_mod, "USE_FUSED_UPDATE", False)
    calls = []
    real = compiled_epoch._Plan.run
    monkeypatch.setattr(compiled_epoch._Plan, "run",
                        lambda self, *a: calls.append(1) or real(self, *a))
    _compare(monkeypatch, **kw)
    assert not calls


def test_compiled_epoch_runs_natively(monkeypatch):
    """The epoch path is taken (one native run per epoch without callbacks)."""
    runs = []
    real = native_step.NativeStep.run
    monkeypatch.setattr(native_step.NativeStep, "run",
                        lambda self, *a: runs.append(a[2]) or real(self, *a))
    train("epoch", _letter(), epochs=2, monkeypatch=monkeypatch)
    assert runs == [31, 31]


def test_mnist_mlp_bitwise(monkeypatch):
    data = mnist(1050)
    for (optimizer, params), metric in ((OPTIMIZERS["sgd_momentum_wd"], "acc"),
                                        (OPTIMIZERS["adam"], lambda: ["acc", "ce"])):
        _compare(monkeypatch, data=data, net=mnist_mlp, batch=100, epochs=2,
                 optimizer=optimizer, params=params, shuffle=True, metric=metric)


def _dropout_bn_mlp():
    """Dropout (the executor's seed advances per step) and BatchNorm (aux states)."""
    net = sg.sym.FullyConnected(sg.sym.Variable("data"), name="fc1", num_hidden=64)
    net = sg.sym.BatchNorm(net, name="bn1")
    net = sg.sym.Activation(net, name="relu1", act_type="relu")
    net = sg.sym.Dropout(net, name="drop1", p=0.3)
    net = sg.sym.FullyConnected(net, name="fc2", num_hidden=26)
    return sg.sym.SoftmaxOutput(net, name="softmax")


def test_dropout_batchnorm_bitwise(monkeypatch):
    _compare(monkeypatch, net=_dropout_bn_mlp, epochs=2, shuffle=True,
             optimizer="sgd", params=lambda: {"learning_rate": 0.1, "momentum": 0.9})


def test_fixed_params_bitwise(monkeypatch):
    ref = _compare(monkeypatch, epochs=2, module_kw={"fixed_param_names": ["fc1_bias"]},
                   optimizer="adam", params=lambda: {"learning_rate": 0.01})
    assert not ref[0]["fc1_bias"].any()  # Xavier leaves biases at 0; fixed, they stay


@pytest.mark.parametrize("case", ["acc", "acc_ce", "other_batch_size", "log_callback"])
def test_validation_pass_bitwise(monkeypatch, case):
    """fit's score pass over in-memory data runs natively too, with the same values."""
    x, y = letter(1600)
    kw = dict(data=(x[:1003], y[:1003]), eval_data=(x[1003:], y[1003:]), epochs=2)
    if case == "acc_ce":
        kw["metric"] = lambda: ["acc", "ce"]
    elif case == "other_batch_size":
        kw["eval_batch"] = 50  # another executor, switched to and back
    elif case == "log_callback":
        kw["eval_end"] = sg.callback.LogValidationMetricsCallback
    ref = _compare(monkeypatch, **kw)
    assert all(row[1] for row in ref[2])
    assert sum("Validation-accuracy" in line for line in ref[3]) == \
        2 * (2 if case == "log_callback" else 1)


@pytest.mark.parametrize("num_batch", [None, 0, 3, 18, 19, 40])
def test_score_num_batch_and_iterator_state(monkeypatch, num_batch):
    """score(num_batch=..., reset=False) leaves the iterator where BaseModule's leaves it."""
    x, y = letter(600)
    results = []
    for mode in ("python", "epoch"):
        monkeypatch.setattr(native_step, "ENABLED", mode == "epoch")
        monkeypatch.setattr(compiled_epoch, "ENABLED", mode == "epoch")
        np.random.seed(0)
        sg.random.seed(0)
        mod = sg.mod.Module(mnist_like_letter())
        it = sg.io.NDArrayIter(x, y, batch_size=32, last_batch_handle="roll_over")
        mod.bind(it.provide_data, it.provide_label)
        mod.init_params(sg.init.Xavier())
        first = mod.score(it, "acc", num_batch=num_batch)
        second = mod.score(it, ["acc", "ce"], num_batch=num_batch, reset=False)
        third = mod.score(it, "acc")
        results.append(repr((first, second, third, it.cursor)))  # repr: nan == nan
    assert results[0] == results[1]


def test_score_runs_natively(monkeypatch):
    runs = []
    real = native_step.NativeScore.run
    monkeypatch.setattr(native_step.NativeScore, "run",
                        lambda self, *a: runs.append(a[2]) or real(self, *a))
    x, y = letter(1600)
    train("epoch", (x[:1003], y[:1003]), eval_data=(x[1003:], y[1003:]), epochs=2,
          monkeypatch=monkeypatch)
    assert runs == [18, 18]  # 597 rows: 18 full batches, then the padded one in Python
    runs.clear()
    steps = []
    real_step = native_step.NativeStep.run
    monkeypatch.setattr(native_step.NativeStep, "run",
                        lambda self, *a: steps.append(a[2]) or real_step(self, *a))
    train("epoch", (x[:1003], y[:1003]), eval_data=(x[1003:], y[1003:]), eval_batch=50,
          epochs=2, monkeypatch=monkeypatch)
    assert runs == [11, 11]  # on the executor for batches of 50
    assert steps == [31, 31]  # and back on the training executor for the next epoch
