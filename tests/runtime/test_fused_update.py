"""FusedUpdater (one native call per step) against the numpy reference ``Updater``."""

from __future__ import annotations

import numpy as np
import pytest

from codegen import jit
from runtime import checkpoint
from runtime import optim as O
from runtime.optim import fused_update as F
from runtime.optim import lr_scheduler as lrs
from runtime.optim.fused_update import FusedUpdater
from symgraph.errors import ExecutorError

STEPS = 5
SHAPES = {"fc1_weight": (7, 5), "fc1_bias": (7,), "fc2_weight": (3, 7), "fc2_bias": (3,),
          "conv_weight": (2, 3, 4)}
NAMES = list(SHAPES)
IDX2NAME = dict(enumerate(NAMES))
TOL = {np.float32: dict(rtol=1e-6, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}

CASES = {
    "sgd": lambda: O.SGD(learning_rate=0.1),
    "sgd_mom_wd_clip_rescale": lambda: O.SGD(learning_rate=0.1, momentum=0.9, wd=0.01,
                                             clip_gradient=0.7, rescale_grad=0.5),
    "sgd_wd_no_mom": lambda: O.SGD(learning_rate=0.05, wd=0.1),
    "nag": lambda: O.NAG(learning_rate=0.1, momentum=0.9, wd=0.01, clip_gradient=1.0),
    "adam": lambda: O.Adam(learning_rate=0.01, wd=0.01),
    "adam_clip": lambda: O.Adam(learning_rate=0.01, clip_gradient=0.5, rescale_grad=2.0),
    "adagrad": lambda: O.AdaGrad(learning_rate=0.1, wd=0.01, clip_gradient=0.8),
    "rmsprop": lambda: O.RMSProp(learning_rate=0.01, wd=0.01),
    "rmsprop_centered": lambda: O.RMSProp(learning_rate=0.01, centered=True, clip_weights=0.9,
                                          clip_gradient=1.0),
    "adadelta": lambda: O.AdaDelta(wd=0.01, clip_gradient=2.0),
    "signum": lambda: O.Signum(learning_rate=0.01, wd=0.01, wd_lh=0.01),
    "signsgd": lambda: O.Signum(learning_rate=0.01, momentum=0.0, wd=0.01),
    "ftrl": lambda: O.Ftrl(learning_rate=0.1, wd=0.01, lamda1=0.01),
    "adamax": lambda: O.Adamax(wd=0.01, clip_gradient=1.0),
    "nadam": lambda: O.Nadam(wd=0.01),
}


def _arena_views(dtype, seed=0, scale=1.0):
    """Weights and grads as aligned views into one byte arena, like an executor's."""
    rng = np.random.default_rng(seed)
    itemsize = np.dtype(dtype).itemsize
    sizes = [int(np.prod(s)) * itemsize for s in SHAPES.values()]
    arena = np.zeros(2 * sum(-(-n // 64) * 64 for n in sizes) + 64, dtype=np.uint8)
    base, off, views = (-arena.ctypes.data) % 64, 0, {}
    for kind in ("w", "g"):
        for name, shape in SHAPES.items():
            n = int(np.prod(shape)) * itemsize
            view = arena[base + off:base + off + n].view(dtype).reshape(shape)
            view[...] = rng.normal(size=shape) * scale
            views[kind, name] = view
            off += -(-n // 64) * 64
    weights = {n: views["w", n] for n in NAMES}
    grads = {n: views["g", n] for n in NAMES}
    return weights, grads, arena


def _run_pair(make, dtype, steps=STEPS, between=None, seed=0):
    """Step fused and reference on identical data; return both sides for comparison."""
    weights, grads, arena = _arena_views(dtype, seed)
    ref_w = {n: w.copy() for n, w in weights.items()}
    fused_opt, ref_opt = make(), make()
    fused = FusedUpdater(fused_opt, weights, grads, NAMES)
    ref = O.Updater(ref_opt)
    rng = np.random.default_rng(seed + 1)
    for step in range(steps):
        if between:
            between(step, fused_opt, ref_opt)
        for n in NAMES:
            grads[n][...] = rng.normal(size=SHAPES[n]) * 2
        fused.step()
        for i, n in enumerate(NAMES):
            ref(i, grads[n].copy(), ref_w[n])
    return fused, ref, weights, ref_w


def _assert_same(fused, ref, weights, ref_w, dtype):
    for n in NAMES:
        np.testing.assert_allclose(weights[n], ref_w[n], **TOL[dtype], err_msg=n)
    for i in range(len(NAMES)):
        got, want = O._state_slots(fused.states[i]), O._state_slots(ref.states[i])
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert a.dtype == b.dtype
            np.testing.assert_allclose(a, b, **TOL[dtype], err_msg=f"state {i}")
    assert type(fused.states[0]) is type(ref.states[0])
    assert fused.optimizer._index_update_count == ref.optimizer._index_update_count
    assert fused.optimizer.num_update == ref.optimizer.num_update


def _with_idx2name(make):
    def build():
        opt = make()
        opt.idx2name = dict(IDX2NAME)
        opt.set_wd_mult({})  # biases get wd_mult 0, as when built with param_idx2name
        return opt
    return build


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_updater(case, dtype):
    make = _with_idx2name(CASES[case])
    _assert_same(*_run_pair(make, dtype), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["sgd_mom_wd_clip_rescale", "adam", "ftrl"])
def test_per_param_path_matches_updater(case, dtype, monkeypatch):
    """The exact per-parameter scalar path (used for non-built-ins) gives the same result."""
    monkeypatch.setattr(F, "_GROUPABLE", ())
    make = _with_idx2name(CASES[case])
    _assert_same(*_run_pair(make, dtype), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lr_and_wd_multipliers(dtype):
    """Symbol attrs, set_lr_mult by index and name, set_wd_mult: four multiplier groups."""
    import symgraph as sg

    w1 = sg.sym.Variable("fc1_weight", lr_mult=2.0)
    b2 = sg.sym.Variable("fc2_bias", wd_mult=3.0)
    net = sg.sym.FullyConnected(sg.sym.Variable("data"), weight=w1, num_hidden=7, name="fc1")
    net = sg.sym.FullyConnected(net, bias=b2, num_hidden=3, name="fc2")

    def make():
        opt = O.Adam(learning_rate=0.01, wd=0.1, sym=net, param_idx2name=IDX2NAME)
        opt.set_lr_mult({1: 0.5, "fc2_weight": 3.0})
        opt.set_wd_mult({"conv_weight": 0.25})
        return opt

    probe = make()
    assert probe._get_lr(0) == 0.02 and probe._get_wd(3) == pytest.approx(0.3)
    _assert_same(*_run_pair(make, dtype), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unequal_update_counts_fall_back_exactly(dtype):
    """Indices with different counts (different Adam t) take the per-parameter path."""
    def make():
        opt = _with_idx2name(CASES["adam"])()
        opt._index_update_count.update({1: 3, 4: 7})
        return opt
    _assert_same(*_run_pair(make, dtype), dtype)


def test_scheduler_and_set_learning_rate_change_lr_without_recompiling():
    sched = {"f": None, "r": None}

    def make():
        s = lrs.FactorScheduler(step=2, factor=0.5, base_lr=0.1)
        sched["r" if sched["f"] else "f"] = s
        return O.SGD(momentum=0.9, lr_scheduler=s)

    compiled = dict(jit.STATS)
    weights, grads, _ = _arena_views(np.float64)
    fused = FusedUpdater(make(), weights, grads, NAMES)
    after_build = dict(jit.STATS)
    assert after_build != compiled
    for _ in range(6):
        fused.step()
    assert dict(jit.STATS) == after_build
    assert fused.optimizer.learning_rate == pytest.approx(0.1 * 0.5 ** 2)
    _assert_same(*_run_pair(make, np.float64, steps=7), np.float64)

    def change_lr(step, fused_opt, ref_opt):
        for opt in (fused_opt, ref_opt):
            opt.set_learning_rate(0.1 / (step + 1))
    _assert_same(*_run_pair(CASES["adam"], np.float64, between=change_lr), np.float64)


def test_lr_change_has_effect():
    weights, grads, _ = _arena_views(np.float64)
    opt = O.SGD(learning_rate=0.0)
    fused = FusedUpdater(opt, weights, grads, NAMES)
    before = weights["fc1_weight"].copy()
    fused.step()
    np.testing.assert_array_equal(weights["fc1_weight"], before)
    opt.set_learning_rate(0.5)
    fused.step()
    np.testing.assert_allclose(weights["fc1_weight"], before - 0.5 * grads["fc1_weight"])


@pytest.mark.parametrize("case", ["adam", "rmsprop_centered", "sgd_mom_wd_clip_rescale"])
def test_states_round_trip_via_checkpoint(case, tmp_path):
    make = CASES[case]
    fused, ref, weights, ref_w = _run_pair(make, np.float32, steps=3)
    path = tmp_path / "opt.states"
    checkpoint.save_states(path, fused.states)
    loaded, _ = checkpoint.load_states(path)
    w2 = {n: w.copy() for n, w in weights.items()}
    g2 = {n: np.zeros_like(w) for n, w in weights.items()}
    other = FusedUpdater(make(), w2, g2, NAMES)
    other.load_states(loaded)
    for i in range(len(NAMES)):
        for a, b in zip(O._state_slots(other.states[i]), O._state_slots(fused.states[i])):
            np.testing.assert_array_equal(a, b)


def test_load_states_from_updater_continues_like_updater():
    """Reference states (dict or get_states bytes) loaded mid-run continue identically."""
    make = _with_idx2name(CASES["adam"])
    _, ref, _, ref_w = _run_pair(make, np.float64, steps=3)
    for source in (ref.states, ref.get_states()):
        weights, grads, _ = _arena_views(np.float64, seed=5)
        for n in NAMES:
            weights[n][...] = ref_w[n]
        opt = make()
        opt._index_update_count.update(ref.optimizer._index_update_count)
        opt.num_update = ref.optimizer.num_update
        fused = FusedUpdater(opt, weights, grads, NAMES)
        fused.load_states(source)
        ref2 = O.Updater(make())
        ref2.set_states(ref.get_states())
        ref2.optimizer._index_update_count.update(ref.optimizer._index_update_count)
        ref2.optimizer.num_update = ref.optimizer.num_update
        w_ref = {n: w.copy() for n, w in ref_w.items()}
        fused.step()
        for i, n in enumerate(NAMES):
            ref2(i, grads[n].copy(), w_ref[n])
        _assert_same(fused, ref2, weights, w_ref, np.float64)


def test_load_states_resets_missing_and_rejects_bad():
    fused, _, _, _ = _run_pair(CASES["adam"], np.float32, steps=2)
    fused.load_states({})
    assert all(not a.any() for s in fused.states.values() for a in s)
    with pytest.raises(ExecutorError, match="unknown indices"):
        fused.load_states({99: None})
    with pytest.raises(ExecutorError, match="has 1 arrays"):
        fused.load_states({1: np.ones(7, np.float32), 0: (np.ones((7, 5), np.float32),)})
    bad = {0: (np.zeros((5, 7), np.float32), np.zeros((5, 7), np.float32))}
    with pytest.raises(ExecutorError, match="slot 0"):
        fused.load_states(bad)
    assert all(not a.any() for s in fused.states.values() for a in s)  # nothing written


def test_states_layout_matches_updater():
    for case in ("sgd", "sgd_mom_wd_clip_rescale", "adam", "rmsprop", "adagrad"):
        fused, ref, _, _ = _run_pair(CASES[case], np.float32, steps=1)
        for i in range(len(NAMES)):
            f, r = fused.states[i], ref.states[i]
            assert type(f) is type(r)
            if isinstance(r, tuple):
                assert len(f) == len(r)


def test_executor_arena_integration():
    """Weights and grads are the executor's arena views: updates land in place."""
    import symgraph as sg

    w = sg.sym.Variable("fc_weight", lr_mult=2.0)
    net = sg.sym.FullyConnected(sg.sym.Variable("data"), weight=w, num_hidden=5, name="fc")
    net = sg.sym.SoftmaxOutput(net, name="softmax")
    exe = net.simple_bind(sg.cpu(), data=(4, 3))
    rng = np.random.default_rng(0)
    names = ["fc_weight", "fc_bias"]
    for n in names:
        exe.arg_dict[n][...] = rng.normal(size=exe.arg_dict[n].shape)
    exe.arg_dict["data"][...] = rng.normal(size=(4, 3))
    exe.arg_dict["softmax_label"][...] = [0, 1, 2, 3]
    make = lambda: O.SGD(learning_rate=0.1, momentum=0.9, wd=0.01, sym=net,  # noqa: E731
                         param_idx2name=dict(enumerate(names)))
    fused = FusedUpdater(make(), exe.arg_dict, exe.grad_dict, names)
    ref, ref_w = O.Updater(make()), {n: exe.arg_dict[n].copy() for n in names}
    for _ in range(STEPS):
        exe.forward_backward()
        ref_g = {n: exe.grad_dict[n].copy() for n in names}
        fused.step()
        for i, n in enumerate(names):
            ref(i, ref_g[n], ref_w[n])
            np.testing.assert_allclose(exe.arg_dict[n], ref_w[n], rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(fused.states[i], ref.states[i], rtol=1e-6, atol=1e-7)
            exe.arg_dict[n][...] = ref_w[n]  # keep both on exactly the same trajectory


# -- validation: everything raises before native code runs ------------------------------
@pytest.fixture
def no_native(monkeypatch):
    def fail(*_):
        raise AssertionError("native compilation reached")
    monkeypatch.setattr(F, "_compile", fail)


def _bad(mutate):
    weights, grads, _ = _arena_views(np.float32)
    mutate(weights, grads)
    return weights, grads


@pytest.mark.parametrize("mutate, match", [
    (lambda w, g: w.update(fc1_weight=np.zeros((5, 7), np.float32).T), "C-contiguous"),
    (lambda w, g: g.update(fc1_bias=np.zeros(14, np.float32)[::2]), "C-contiguous"),
    (lambda w, g: g.update(fc1_weight=np.zeros((7, 5), np.float64)), "does not match"),
    (lambda w, g: g.update(fc2_weight=np.zeros((7, 3), np.float32)), "does not match"),
    (lambda w, g: w.update(fc1_bias=np.zeros(7, np.int32)), "not supported"),
    (lambda w, g: w.update(fc1_bias=[0.0] * 7), "numpy array"),
    (lambda w, g: g.pop("fc2_bias"), "missing from grads"),
    (lambda w, g: g.update(fc1_bias=w["fc1_bias"]), "overlaps"),
    (lambda w, g: w["conv_weight"].setflags(write=False), "read-only"),
])
def test_bad_inputs_raise_before_native(mutate, match, no_native):
    weights, grads = _bad(mutate)
    with pytest.raises(ExecutorError, match=match):
        FusedUpdater(O.Adam(), weights, grads, NAMES)


def test_duplicate_names_and_unsupported_optimizer(no_native):
    weights, grads = _bad(lambda w, g: None)
    with pytest.raises(ExecutorError, match="duplicates"):
        FusedUpdater(O.SGD(), weights, grads, NAMES + NAMES[:1])
    with pytest.raises(ExecutorError, match="no update rule"):
        FusedUpdater(O.Optimizer(), weights, grads, NAMES)


def test_supports():
    for make in CASES.values():
        assert FusedUpdater.supports(make())
    assert not FusedUpdater.supports(O.Optimizer())
    assert not FusedUpdater.supports(object())


def test_rule_change_after_compile_raises():
    weights, grads, _ = _arena_views(np.float32)
    opt = O.SGD(momentum=0.9)
    fused = FusedUpdater(opt, weights, grads, NAMES)
    opt.clip_gradient = 1.0
    before = weights["fc1_weight"].copy()
    with pytest.raises(ExecutorError, match="rule changed"):
        fused.step()
    np.testing.assert_array_equal(weights["fc1_weight"], before)


def test_mixed_dtypes_and_empty_param():
    """float32 and float64 params in one updater; a 0-size param is skipped."""
    rng = np.random.default_rng(3)
    shapes = {"a_weight": ((4, 3), np.float32), "b_weight": ((3, 5), np.float64),
              "e_weight": ((0, 4), np.float32)}
    weights = {n: rng.normal(size=s).astype(d) for n, (s, d) in shapes.items()}
    grads = {n: rng.normal(size=s).astype(d) for n, (s, d) in shapes.items()}
    names = list(shapes)
    make = lambda: O.Adam(learning_rate=0.1, wd=0.01)  # noqa: E731
    fused, ref = FusedUpdater(make(), weights, grads, names), O.Updater(make())
    ref_w = {n: w.copy() for n, w in weights.items()}
    for _ in range(3):
        fused.step()
        for i, n in enumerate(names):
            ref(i, grads[n], ref_w[n])
    for n in names:
        np.testing.assert_allclose(weights[n], ref_w[n], **TOL[weights[n].dtype.type])


def test_no_params_is_a_no_op():
    fused = FusedUpdater(O.Adam(), {}, {}, [])
    fused.step()
    assert fused.states == {}


def test_hyper_parameter_and_multiplier_changes_reach_cached_scalars():
    """Steady SGD steps reuse the scalar table; any change of lr, wd, momentum,
    rescale_grad or an in-place lr_mult edit must still reach the kernel."""
    def tweak(step, fused_opt, ref_opt):
        for opt in (fused_opt, ref_opt):
            if step == 2:
                opt.momentum = 0.5
            if step == 3:
                opt.wd, opt.rescale_grad = 0.05, 0.25
            if step == 4:
                opt.lr_mult["fc2_weight"] = 3.0
            if step == 5:
                opt.clip_gradient = 0.1

    make = _with_idx2name(CASES["sgd_mom_wd_clip_rescale"])
    _assert_same(*_run_pair(make, np.float64, steps=7, between=tweak), np.float64)


def test_steady_steps_skip_scalar_computation(monkeypatch):
    weights, grads, _ = _arena_views(np.float64)
    opt = _with_idx2name(CASES["sgd_mom_wd_clip_rescale"])()
    fused = FusedUpdater(opt, weights, grads, NAMES)
    calls = []
    original = O.Optimizer.scalars_at
    monkeypatch.setattr(O.Optimizer, "scalars_at",
                        lambda self, i, t: calls.append(i) or original(self, i, t))
    for _ in range(5):
        fused.step()
    assert len(calls) == 2  # weights and biases: two wd groups, computed once
    assert opt.num_update == 5 and set(opt._index_update_count.values()) == {5}
    adam = O.Adam(learning_rate=0.01)
    fused = FusedUpdater(adam, weights, grads, NAMES)
    calls.clear()
    for _ in range(3):
        fused.step()
    assert len(calls) == 3  # Adam's bias correction changes with t: every step


@pytest.mark.parametrize("case", ["sgd_mom_wd_clip_rescale", "adam"])
def test_explicit_indices_match_updater(case):
    """A Module with fixed parameters updates a subset under the MXNet indices."""
    weights, grads, _ = _arena_views(np.float64)
    chosen = [1, 2, 4]
    names = [NAMES[i] for i in chosen]
    ref_w = {n: weights[n].copy() for n in names}
    make = _with_idx2name(CASES[case])
    fused = FusedUpdater(make(), weights, grads, names, indices=chosen)
    ref = O.Updater(make())
    for _ in range(4):
        fused.step()
        for i, n in zip(chosen, names):
            ref(i, grads[n].copy(), ref_w[n])
    for n in names:
        np.testing.assert_allclose(weights[n], ref_w[n], rtol=1e-12, atol=1e-12)
    assert sorted(fused.states) == chosen
    assert fused.optimizer._index_update_count == ref.optimizer._index_update_count
    with pytest.raises(ExecutorError, match="distinct"):
        FusedUpdater(make(), weights, grads, names, indices=[1, 1, 4])
    with pytest.raises(ExecutorError, match="unknown indices"):
        fused.load_states({0: None})
