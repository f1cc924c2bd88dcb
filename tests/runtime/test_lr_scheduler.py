"""LR schedulers (§12): formulas, statefulness, warmup and the log line."""

from __future__ import annotations

import logging
import math

import pytest

from runtime import optim as opt
from runtime.optim import lr_scheduler as lrs


def test_factor_closed_form_and_log(caplog):
    s = lrs.FactorScheduler(step=3, factor=0.5, base_lr=1.0)
    with caplog.at_level(logging.INFO):
        values = [s(n) for n in range(1, 11)]
    assert values == [1.0 * 0.5 ** ((n - 1) // 3) for n in range(1, 11)]
    msgs = [r.getMessage() for r in caplog.records]
    assert "Update[4]: Change learning rate to 5.00000e-01" in msgs
    assert "Update[7]: Change learning rate to 2.50000e-01" in msgs


def test_factor_is_stateful_and_stop_factor():
    s = lrs.FactorScheduler(step=1, factor=0.1, stop_factor_lr=1e-3, base_lr=1.0)
    assert s(10) == 1e-3
    assert s(2) == 1e-3  # state kept; never goes back up
    with pytest.raises(ValueError):
        lrs.FactorScheduler(step=0)
    with pytest.raises(ValueError):
        lrs.FactorScheduler(step=2, factor=2.0)


def test_multifactor(caplog):
    s = lrs.MultiFactorScheduler(step=[2, 5], factor=0.1, base_lr=1.0)
    with caplog.at_level(logging.INFO):
        vals = [s(n) for n in range(1, 8)]
    assert vals == pytest.approx([1, 1, 0.1, 0.1, 0.1, 0.01, 0.01])
    assert "Update[3]: Change learning rate to 1.00000e-01" in caplog.messages
    with pytest.raises(ValueError):
        lrs.MultiFactorScheduler(step=[3, 2])


def test_poly_and_cosine_formulas_and_hold_after_max():
    p = lrs.PolyScheduler(max_update=10, base_lr=1.0, pwr=2, final_lr=0.1)
    for n in (0, 3, 10):
        assert p(n) == pytest.approx(0.1 + 0.9 * (1 - n / 10) ** 2)
    assert p(20) == pytest.approx(0.1)
    c = lrs.CosineScheduler(max_update=8, base_lr=2.0, final_lr=0.0)
    for n in (0, 2, 4, 8):
        assert c(n) == pytest.approx(2.0 * (1 + math.cos(math.pi * n / 8)) / 2)
    assert c(100) == pytest.approx(0.0)


def test_warmup_linear_and_constant():
    s = lrs.CosineScheduler(max_update=20, base_lr=1.0, warmup_steps=4, warmup_begin_lr=0.2)
    assert s(0) == pytest.approx(0.2) and s(2) == pytest.approx(0.6)
    assert s(4) == pytest.approx(1.0)
    assert s(12) == pytest.approx((1 + math.cos(math.pi * 8 / 16)) / 2)
    f = lrs.FactorScheduler(step=5, base_lr=1.0, warmup_steps=3, warmup_begin_lr=0.1,
                            warmup_mode="constant")
    assert f(1) == 0.1 and f(3) == 1.0
    with pytest.raises(ValueError):
        lrs.FactorScheduler(step=5, warmup_mode="cubic")
    with pytest.raises(ValueError):
        lrs.FactorScheduler(step=5, base_lr=0.1, warmup_begin_lr=0.5)


def test_poly_cosine_ignore_optimizer_lr_override_quirk():
    c = lrs.CosineScheduler(max_update=10, base_lr=1.0)
    with pytest.warns(UserWarning):
        o = opt.SGD(learning_rate=0.5, lr_scheduler=c)
    assert c.base_lr == 0.5
    assert o.lr_scheduler(0) == pytest.approx(1.0)  # base_lr_orig from construction


def test_optimizer_reads_scheduler_at_num_update():
    s = lrs.FactorScheduler(step=2, factor=0.5, base_lr=1.0)
    o = opt.SGD(lr_scheduler=s)
    lrs_seen = [o.step_scalars(0)["lr"] for _ in range(5)]
    assert lrs_seen == [1.0, 1.0, 0.5, 0.5, 0.25]
