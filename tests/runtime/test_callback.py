"""Callbacks (§8): exact log lines via caplog, checkpoint numbering."""

from __future__ import annotations

import logging
import sys
import types

import numpy as np
import pytest

from runtime import callback as cb
from runtime import metric as M


def _param(epoch, nbatch, metric):
    return cb.BatchEndParam(epoch=epoch, nbatch=nbatch, eval_metric=metric, locals=None)


def _acc_metric(value_correct=True):
    m = M.Accuracy()
    m.update([np.array([1.0])], [np.array([[0.0, 1.0]] if value_correct else [[1.0, 0.0]])])
    return m


def test_batch_end_param_namedtuple_name():
    assert cb.BatchEndParam.__name__ == "BatchEndParams"
    assert cb.BatchEndParam._fields == ("epoch", "nbatch", "eval_metric", "locals")


def test_speedometer_auto_reset_format(caplog):
    sp = cb.Speedometer(batch_size=10, frequent=2)
    m = _acc_metric()
    with caplog.at_level(logging.INFO):
        sp(_param(0, 0, m))           # first call only starts the timer
        sp(_param(0, 1, m))
        sp(_param(0, 2, m))
    assert len(caplog.records) == 1
    msg = caplog.records[0].getMessage()
    assert msg.startswith("Epoch[0] Batch [0-2]\tSpeed: ")
    assert msg.endswith(" samples/sec\taccuracy=1.000000")
    assert m.num_inst == 0 and m.global_num_inst == 1  # local reset, global kept


def test_speedometer_no_reset_and_no_metric(caplog):
    sp = cb.Speedometer(batch_size=4, frequent=1, auto_reset=False)
    m = _acc_metric()
    with caplog.at_level(logging.INFO):
        sp(_param(3, 0, m))
        sp(_param(3, 1, m))
    assert caplog.records[-1].getMessage().startswith("Epoch[3] Batch [0-1]\tSpeed: ")
    assert caplog.records[-1].getMessage().endswith("\taccuracy=1.000000")
    sp2 = cb.Speedometer(batch_size=4, frequent=1)
    with caplog.at_level(logging.INFO):
        sp2(_param(1, 0, None))
        sp2(_param(1, 1, None))
    msg = caplog.records[-1].getMessage()
    assert msg.startswith("Iter[1] Batch [1]\tSpeed: ") and msg.endswith(" samples/sec")


def test_speedometer_restarts_on_new_epoch(caplog):
    sp = cb.Speedometer(batch_size=1, frequent=1)
    with caplog.at_level(logging.INFO):
        sp(_param(0, 0, None))
        sp(_param(0, 1, None))
        sp(_param(1, 0, None))  # nbatch went down: only restarts the timer
    assert len(caplog.records) == 1


def test_log_train_metric(caplog):
    f = cb.log_train_metric(period=2, auto_reset=True)
    m = _acc_metric()
    with caplog.at_level(logging.INFO):
        f(_param(1, 1, m))
        f(_param(1, 2, m))
    assert caplog.messages == ["Iter[1] Batch[2] Train-accuracy=1.000000"]
    assert m.num_inst == 0


def test_progress_bar(caplog):
    bar = cb.ProgressBar(total=3, length=6)
    with caplog.at_level(logging.INFO):
        bar(_param(0, 1, None))
    assert caplog.messages == ["[==----] 34%\r"]


def test_log_validation_metrics(caplog):
    with caplog.at_level(logging.INFO):
        cb.LogValidationMetricsCallback()(_param(4, 10, _acc_metric(False)))
    assert caplog.messages == ["Epoch[4] Validation-accuracy=0.000000"]


def test_do_checkpoint_numbers_epoch_plus_one(monkeypatch):
    calls = []
    fake = types.ModuleType("runtime.checkpoint")
    fake.save_checkpoint = lambda *a: calls.append(a)
    monkeypatch.setitem(sys.modules, "runtime.checkpoint", fake)
    import runtime

    monkeypatch.setattr(runtime, "checkpoint", fake, raising=False)
    f = cb.do_checkpoint("model", period=2)
    for epoch in range(4):
        f(epoch, "sym", {"a": 1}, {"b": 2})
    assert calls == [("model", 2, "sym", {"a": 1}, {"b": 2}),
                     ("model", 4, "sym", {"a": 1}, {"b": 2})]


def test_module_checkpoint():
    class Mod:
        def __init__(self):
            self.calls = []

        def save_checkpoint(self, prefix, epoch, save_optimizer_states):
            self.calls.append((prefix, epoch, save_optimizer_states))

    mod = Mod()
    f = cb.module_checkpoint(mod, "p", period=1, save_optimizer_states=True)
    f(0)
    assert mod.calls == [("p", 1, True)]


@pytest.mark.parametrize("period", [0, -3])
def test_period_at_least_one(period):
    mod = types.SimpleNamespace(calls=[])
    mod.save_checkpoint = lambda *a: mod.calls.append(a)
    cb.module_checkpoint(mod, "p", period=period)(0)
    assert mod.calls == [("p", 1, False)]
