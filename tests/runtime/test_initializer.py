"""Initializer dispatch rules and distributions (§11), with the project RNG seeded."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from runtime import initializer as init
from runtime import random as sgrandom
from symgraph.errors import ShapeError


@pytest.fixture(autouse=True)
def _seed():
    sgrandom.seed(42)


def _desc(name, **attrs):
    return init.InitDesc(name, attrs=attrs)


def test_seed_makes_draws_reproducible_and_seeds_numpy():
    sgrandom.seed(7)
    a = np.empty((5, 5))
    init.Uniform(1.0)(_desc("x_weight"), a)
    n1 = np.random.rand()
    sgrandom.seed(7)
    b = np.empty((5, 5))
    init.Uniform(1.0)(_desc("x_weight"), b)
    assert np.array_equal(a, b) and np.random.rand() == n1


def test_suffix_rules():
    u = init.Uniform(0.5)
    for name, value in [("fc_bias", 0), ("bn_gamma", 1), ("bn_beta", 0), ("q_min", 0),
                        ("q_max", 1), ("bn_moving_mean", 0), ("bn_moving_var", 1)]:
        arr = np.full((3,), 7.0)
        u(_desc(name), arr)
        assert np.all(arr == value), name
    w = np.zeros((50, 40))
    u(_desc("fc_weight"), w)
    assert np.abs(w).max() <= 0.5 and w.std() > 0.1


def test_init_attr_wins_whatever_the_suffix():
    arr = np.zeros(4)
    init.Uniform()(_desc("fc_bias", __init__=init.One().dumps()), arr)
    assert np.all(arr == 1)
    arr = np.zeros(4)
    init.Uniform()(_desc("custom_thing", __init__='["constant", {"value": 3.5}]'), arr)
    assert np.all(arr == 3.5)


def test_unknown_pattern_raises_value_error():
    with pytest.raises(ValueError, match="Unknown initialization pattern for softmax_label"):
        init.Uniform()(_desc("softmax_label"), np.zeros(3))


def test_global_init_recorded():
    d = _desc("a_weight")
    u = init.Uniform()
    u(d, np.zeros((2, 2)))
    assert d.global_init is u and isinstance(d, str) and d == "a_weight"


def test_dumps_and_create():
    x = init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2)
    assert json.loads(x.dumps()) == ["xavier", {"rnd_type": "gaussian", "factor_type": "in",
                                                "magnitude": 2}]
    assert init.create(x.dumps()) == x
    assert isinstance(init.create("zeros"), init.Zero)
    assert isinstance(init.create("ONES"), init.One)
    assert isinstance(init.create({"initializer": "normal", "sigma": 2.0}), init.Normal)
    assert init.create(x) is x
    assert json.loads(init.MSRAPrelu().dumps()) == ["msraprelu", {"factor_type": "avg",
                                                                  "slope": 0.25}]
    with pytest.raises(ValueError):
        init.create("nope")


def test_register_decorator():
    @init.register
    class Twos(init.Initializer):
        def _init_weight(self, _, arr):
            arr[...] = 2

    arr = np.zeros(2)
    init.Uniform()(_desc("p", __init__=Twos().dumps()), arr)
    assert np.all(arr == 2)


def test_uniform_and_normal_statistics():
    arr = np.zeros((200, 200))
    init.Uniform(0.3)(_desc("w_weight"), arr)
    assert -0.3 <= arr.min() and arr.max() <= 0.3
    assert abs(arr.mean()) < 0.005 and arr.std() == pytest.approx(0.3 / np.sqrt(3), rel=0.02)
    init.Normal(0.2)(_desc("w_weight"), arr)
    assert abs(arr.mean()) < 0.005 and arr.std() == pytest.approx(0.2, rel=0.02)


@pytest.mark.parametrize("factor_type", ["avg", "in", "out"])
def test_xavier_uniform_scale(factor_type):
    shape = (64, 32, 3, 3)
    arr = np.zeros(shape, np.float32)
    init.Xavier(factor_type=factor_type, magnitude=3)(_desc("c_weight"), arr)
    fan_in, fan_out = 32 * 9, 64 * 9
    factor = {"avg": (fan_in + fan_out) / 2, "in": fan_in, "out": fan_out}[factor_type]
    scale = np.sqrt(3 / factor)
    assert np.abs(arr).max() <= scale * (1 + 1e-6)
    assert np.abs(arr).max() > 0.98 * scale
    assert arr.std() == pytest.approx(scale / np.sqrt(3), rel=0.03)


def test_xavier_gaussian_and_msra():
    arr = np.zeros((100, 400))
    init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2)(_desc("w_weight"), arr)
    assert arr.std() == pytest.approx(np.sqrt(2 / 400), rel=0.03)
    init.MSRAPrelu(factor_type="in", slope=0.0)(_desc("w_weight"), arr)
    assert arr.std() == pytest.approx(np.sqrt(2 / 400), rel=0.03)
    init.MSRAPrelu(slope=0.25)(_desc("w_weight"), arr)
    assert arr.std() == pytest.approx(np.sqrt(2 / (1 + 0.0625) / 250), rel=0.03)


def test_xavier_rejects_vectors():
    with pytest.raises(ValueError, match="at least 2D"):
        init.Xavier()(_desc("v_weight"), np.zeros(5))


def test_orthogonal():
    arr = np.zeros((8, 20))
    init.Orthogonal(scale=2.0)(_desc("o_weight"), arr)
    np.testing.assert_allclose(arr @ arr.T, 4 * np.eye(8), atol=1e-10)
    arr = np.zeros((20, 8))
    init.Orthogonal(scale=1.0, rand_type="normal")(_desc("o_weight"), arr)
    np.testing.assert_allclose(arr.T @ arr, np.eye(8), atol=1e-10)


def test_constant_zero_one_bilinear_lstmbias():
    arr = np.zeros((2, 3))
    init.Constant(0.5)(_desc("a_weight"), arr)
    assert np.all(arr == 0.5)
    init.Zero()(_desc("a_weight"), arr)
    assert np.all(arr == 0)
    init.One()(_desc("a_weight"), arr)
    assert np.all(arr == 1)
    bil = np.zeros((1, 1, 4, 4))
    init.Bilinear()(_desc("up_weight"), bil)
    expected = np.zeros(16)
    f, c = 2.0, (2 * 2.0 - 1 - 0) / 4.0
    for i in range(16):
        x, y = i % 4, (i // 4) % 4
        expected[i] = (1 - abs(x / f - c)) * (1 - abs(y / f - c))
    np.testing.assert_allclose(bil.ravel(), expected)
    bias = np.zeros(8)
    init.Uniform()(_desc("lstm_i2h_bias", __init__=init.LSTMBias(2.0).dumps()), bias)
    assert list(bias) == [0, 0, 2, 2, 0, 0, 0, 0]


def test_mixed():
    mixed = init.Mixed(["fc1.*", ".*"], [init.Constant(3), init.Zero()])
    a, b = np.ones(2), np.ones(2)
    mixed(_desc("fc1_weight"), a)
    mixed(_desc("xfc1_weight"), b)
    assert np.all(a == 3) and np.all(b == 0)
    with pytest.raises(ValueError):
        init.Mixed(["^a"], [init.Zero()])("b_weight", a)


def test_load():
    loader = init.Load({"arg:w_weight": np.full((2, 2), 5.0), "aux:m_moving_mean": np.ones(3)},
                       default_init=init.Constant(9))
    a, b, c = np.zeros((2, 2)), np.zeros(3), np.zeros(1)
    loader("w_weight", a)
    loader("m_moving_mean", b)
    loader(_desc("other_weight"), c)
    assert np.all(a == 5) and np.all(b == 1) and np.all(c == 9)
    with pytest.raises(ShapeError):
        loader("w_weight", np.zeros(3))
    with pytest.raises(ValueError):
        init.Load({})("x", c)


def test_verbose_logging(caplog):
    u = init.Uniform().set_verbosity(True)
    with caplog.at_level(logging.INFO):
        u(_desc("fc_weight"), np.zeros((2, 2)))
    assert any(r.getMessage().startswith("Initialized fc_weight as weight: ")
               for r in caplog.records)


def test_legacy_string_name_warns():
    arr = np.ones(3)
    with pytest.warns(DeprecationWarning):
        init.Uniform()("fc_bias", arr)
    assert np.all(arr == 0)
