"""Optimizers vs independent numpy implementations of the spec's equations (§12)."""

from __future__ import annotations

import math
import pickletools

import numpy as np
import pytest

from runtime import optim as opt
from runtime.optim import lr_scheduler as lrs
from runtime.optim import update_rules as R
from symgraph.ops.scalar import evaluate

STEPS = 5


def _clip(g, c):
    return np.clip(g, -c, c) if c else g


def _data(shape=(4, 3), seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=shape)
    grads = [rng.normal(size=shape) * 3 for _ in range(STEPS)]
    return w, grads


# --- independent reference implementations, one per optimizer (plain loops over steps) ----

def ref_sgd(w, grads, lr, wd, rs, clip, mom):
    m = np.zeros_like(w)
    for g in grads:
        g = _clip(rs * g, clip)
        if mom:
            m = mom * m - lr * wd * w - lr * g
            w = w + m
        else:
            w = (1 - lr * wd) * w - lr * g
    return w


def ref_nag(w, grads, lr, wd, rs, clip, mom):
    m = np.zeros_like(w)
    for g in grads:
        big_g = _clip(rs * g, clip) + wd * w
        m = mom * m - lr * big_g
        w = w + mom * m - lr * big_g
    return w


def ref_adam(w, grads, lr, wd, rs, clip, b1=0.9, b2=0.999, eps=1e-8):
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        big_g = _clip(rs * g + wd * w, clip)
        m = b1 * m + (1 - b1) * big_g
        v = b2 * v + (1 - b2) * big_g ** 2
        lr_t = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        w = w - lr_t * m / (np.sqrt(v) + eps)
    return w


def ref_adagrad(w, grads, lr, wd, rs, clip, eps=1e-7):
    h = np.zeros_like(w)
    for g in grads:
        big_g = _clip(rs * g, clip)
        h = h + big_g ** 2
        w = w - lr * (big_g / np.sqrt(h + eps) + wd * w)
    return w


def ref_rmsprop(w, grads, lr, wd, rs, clip, g1=0.9, g2=0.9, eps=1e-8, centered=False,
                clip_w=None):
    n = np.zeros_like(w)
    gbar = np.zeros_like(w)
    delta = np.zeros_like(w)
    for g in grads:
        big_g = _clip(rs * g + wd * w, clip)
        n = (1 - g1) * big_g ** 2 + g1 * n
        if centered:
            gbar = (1 - g1) * big_g + g1 * gbar
            delta = g2 * delta - lr * big_g / np.sqrt(n - gbar ** 2 + eps)
            w = w + delta
        else:
            w = w - lr * big_g / np.sqrt(n + eps)
        if clip_w:
            w = np.clip(w, -clip_w, clip_w)
    return w


def ref_adadelta(w, grads, wd, rs, clip, rho=0.9, eps=1e-5):
    acc_g = np.zeros_like(w)
    acc_d = np.zeros_like(w)
    for g in grads:
        big_g = np.clip(rs * g, -clip, clip) if clip is not None else rs * g
        acc_g = rho * acc_g + (1 - rho) * big_g ** 2
        d = np.sqrt(acc_d + eps) / np.sqrt(acc_g + eps) * big_g
        acc_d = rho * acc_d + (1 - rho) * d ** 2
        w = w - d - wd * w
    return w


def ref_signum(w, grads, lr, wd, rs, clip, mom=0.9, wd_lh=0.0):
    m = np.zeros_like(w)
    for g in grads:
        if mom:
            m = mom * m - (1 - mom) * (wd * w + _clip(rs * g, clip))
            w = (1 - lr * wd_lh) * w + lr * np.sign(m)
        else:
            w = (1 - lr * wd) * w - lr * np.sign(g)
    return w


def ref_ftrl(w, grads, lr, wd, rs, clip, lamda1=0.01, beta=1.0):
    z = np.zeros_like(w)
    n = np.zeros_like(w)
    for g in grads:
        big_g = _clip(rs * g, clip)
        z = z + big_g - (np.sqrt(n + big_g ** 2) - np.sqrt(n)) * w / lr
        n = n + big_g ** 2
        w = np.where(np.abs(z) > lamda1,
                     (np.sign(z) * lamda1 - z) / ((beta + np.sqrt(n)) / lr + wd), 0.0)
    return w


def ref_adamax(w, grads, lr, wd, rs, clip, b1=0.9, b2=0.999):
    m = np.zeros_like(w)
    u = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        big_g = np.clip(rs * g + wd * w, -clip, clip) if clip is not None else rs * g + wd * w
        m = b1 * m + (1 - b1) * big_g
        u = np.maximum(b2 * u, np.abs(big_g))
        w = w - lr / (1 - b1 ** t) * m / u
    return w


def _run(optimizer, w, grads, index=0):
    w = w.copy()
    updater = opt.get_updater(optimizer)
    for g in grads:
        updater(index, g.copy(), w)
    return w


CASES = [
    ("sgd", dict(), ref_sgd, dict(mom=0.0)),
    ("sgd", dict(momentum=0.9), ref_sgd, dict(mom=0.9)),
    ("nag", dict(momentum=0.8), ref_nag, dict(mom=0.8)),
    ("adam", dict(), ref_adam, dict()),
    ("adagrad", dict(), ref_adagrad, dict()),
    ("rmsprop", dict(), ref_rmsprop, dict()),
    ("rmsprop", dict(centered=True, clip_weights=0.9), ref_rmsprop,
     dict(centered=True, clip_w=0.9)),
    ("signum", dict(), ref_signum, dict()),
    ("signum", dict(momentum=0.0), ref_signum, dict(mom=0.0)),
    ("ftrl", dict(), ref_ftrl, dict()),
    ("adamax", dict(), ref_adamax, dict()),
]


@pytest.mark.parametrize("clip", [None, 0.5])
@pytest.mark.parametrize("name,kwargs,ref,ref_kwargs", CASES)
def test_optimizer_matches_reference(name, kwargs, ref, ref_kwargs, clip):
    w, grads = _data()
    lr, wd, rs = 0.05, 0.01, 0.5
    o = opt.create(name, learning_rate=lr, wd=wd, rescale_grad=rs, clip_gradient=clip, **kwargs)
    got = _run(o, w, grads)
    want = ref(w, grads, lr, wd, rs, clip, **ref_kwargs)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("clip", [None, 0.5, 0.0])
def test_adadelta_matches_reference_and_is_not_none_clip_quirk(clip):
    w, grads = _data()
    o = opt.AdaDelta(wd=0.01, rescale_grad=0.5, clip_gradient=clip)
    np.testing.assert_allclose(_run(o, w, grads), ref_adadelta(w, grads, 0.01, 0.5, clip),
                               rtol=1e-10)


def test_kernel_optimizers_treat_zero_clip_as_no_clip():
    w, grads = _data()
    a = _run(opt.SGD(learning_rate=0.1, clip_gradient=0.0), w, grads)
    b = _run(opt.SGD(learning_rate=0.1), w, grads)
    np.testing.assert_array_equal(a, b)
    assert "clip_gradient" not in opt.SGD(clip_gradient=0.0).rule().scalar_names
    assert "clip_gradient" in opt.AdaGrad(clip_gradient=0.0).rule().scalar_names


def test_nag_without_momentum_is_sgd():
    w, grads = _data()
    a = _run(opt.NAG(learning_rate=0.1, wd=0.1), w, grads)
    b = _run(opt.SGD(learning_rate=0.1, wd=0.1), w, grads)
    np.testing.assert_allclose(a, b)


def test_float32_weights_stay_float32_and_in_place():
    w = np.ones((3, 3), np.float32)
    ref = w
    opt.get_updater(opt.Adam())(0, np.full((3, 3), 0.1, np.float32), w)
    assert w is ref and w.dtype == np.float32 and np.all(w < 1)


def test_nadam_runs_and_decreases_loss():
    w = np.full(5, 3.0)
    o = opt.Nadam(learning_rate=0.1)
    u = opt.get_updater(o)
    for _ in range(50):
        u(0, 2 * w, w)
    assert np.all(np.abs(w) < 3.0)


# --- update_rules through the scalar-math protocol ----------------------------------------

def test_rule_formulas_via_evaluate_match_numpy():
    w, grads = _data(seed=3)
    mom = np.zeros_like(w)
    ref_w, ref_m = w.copy(), np.zeros_like(w)
    for g in grads:
        out = [evaluate(R.sgd_momentum, np.float64, w, g, mom, lr=0.1, wd=0.01,
                        rescale_grad=0.5, momentum=0.9, clip_gradient=0.7)]
        # evaluate stacks the returned tuple: row 0 = weight, row 1 = momentum
        w, mom = out[0][0], out[0][1]
        ref_m = 0.9 * ref_m - 0.1 * 0.01 * ref_w - 0.1 * np.clip(0.5 * g, -0.7, 0.7)
        ref_w = ref_w + ref_m
    np.testing.assert_allclose(w, ref_w, rtol=1e-12)
    np.testing.assert_allclose(mom, ref_m, rtol=1e-12)


def test_clip_none_builds_no_clip_node():
    class Recorder:
        def __init__(self):
            self.calls = []

        def __getattr__(self, name):
            def fn(*args):
                self.calls.append(name)
                return args[0]
            return fn

    rec = Recorder()
    R.sgd(rec, 1.0, 2.0, lr=0.1, wd=0.0, rescale_grad=1.0)
    assert "minimum" not in rec.calls and "maximum" not in rec.calls
    rec.calls.clear()
    R.sgd(rec, 1.0, 2.0, lr=0.1, wd=0.0, rescale_grad=1.0, clip_gradient=1.0)
    assert "minimum" in rec.calls and "maximum" in rec.calls


@pytest.mark.parametrize("name,kwargs", [(c[0], c[1]) for c in CASES]
                         + [("adadelta", {}), ("nadam", {}), ("adam", {"clip_gradient": 1.0})])
def test_rule_and_step_scalars_contract(name, kwargs):
    o = opt.create(name, **kwargs)
    w = np.ones((2, 2))
    rule = o.rule()
    assert len(rule) == 3
    slots = o.create_state(0, w)
    n_slots = 0 if slots is None else (len(slots) if isinstance(slots, tuple) else 1)
    assert n_slots == rule.state_slot_count
    scalars = o.step_scalars(0)
    assert set(scalars) == set(rule.scalar_names)
    assert all(isinstance(v, float) for v in scalars.values())
    assert o.num_update == 1  # step_scalars advanced the count
    states = [np.zeros_like(w)] * rule.state_slot_count
    out = evaluate(lambda m, *a: rule.formula(m, *a, **scalars), np.float64, w, w, *states)
    assert out.shape[0] == 1 + rule.state_slot_count


def test_adam_step_scalars_bias_correction_uses_per_index_count():
    o = opt.Adam(learning_rate=0.1)
    o.step_scalars(0)
    o.step_scalars(0)
    s = o.step_scalars(1)  # index 1's first update: t = 1 although num_update = 2
    assert s["lr"] == pytest.approx(0.1 * math.sqrt(1 - 0.999) / (1 - 0.9))
    assert o.num_update == 2


# --- lr / wd bookkeeping -------------------------------------------------------------------

class FakeSym:
    def __init__(self, attrs, args):
        self._attrs, self._args = attrs, args

    def attr_dict(self):
        return self._attrs

    def list_arguments(self):
        return self._args


def test_default_lr_and_learning_rate_property():
    assert opt.SGD().learning_rate == 0.01
    assert opt.Adam().learning_rate == 0.001
    assert opt.RMSProp().learning_rate == 0.001
    assert opt.Ftrl().learning_rate == 0.1
    o = opt.SGD(learning_rate=0.3)
    o.set_learning_rate(0.2)
    assert o.learning_rate == 0.2


def test_scheduler_base_lr_overridden_with_warning_and_set_lr_raises():
    sched = lrs.FactorScheduler(step=2, factor=0.5, base_lr=1.0)
    with pytest.warns(UserWarning):
        o = opt.SGD(learning_rate=0.4, lr_scheduler=sched)
    assert sched.base_lr == 0.4
    with pytest.raises(UserWarning):
        o.set_learning_rate(0.1)
    o2 = opt.SGD(lr_scheduler=lrs.FactorScheduler(step=10, base_lr=0.7))
    assert o2.learning_rate == 0.7


def test_num_update_incremented_before_lr_read():
    seen = []

    class Sched(lrs.LRScheduler):
        def __call__(self, n):
            seen.append(n)
            return 0.1

    o = opt.SGD(lr_scheduler=Sched(), begin_num_update=10)
    u = opt.get_updater(o)
    w = np.zeros(3)
    u(0, np.ones(3), w)
    u(1, np.ones(3), w)
    u(0, np.ones(3), w)
    assert seen == [11, 11, 12]


def test_lr_mult_and_wd_mult_from_symbol_attrs_names_and_indices():
    sym = FakeSym({"fc_weight": {"__lr_mult__": "2.0"}, "fc_bias": {"__wd_mult__": "3"}},
                  ["data", "fc_weight", "fc_bias", "bn_gamma", "bn_beta"])
    idx2name = {0: "fc_weight", 1: "fc_bias", 2: "bn_gamma", 3: "bn_beta"}
    o = opt.SGD(learning_rate=0.1, wd=0.5, sym=sym, param_idx2name=idx2name)
    assert o._get_lr(0) == pytest.approx(0.2) and o._get_lr(1) == pytest.approx(0.1)
    assert o._get_wd(0) == 0.5            # _weight keeps wd
    assert o._get_wd(1) == 1.5            # bias: 0 by suffix, then __wd_mult__ attr
    assert o._get_wd(2) == 0.5            # _gamma keeps wd
    assert o._get_wd(3) == 0.0            # beta gets no weight decay
    o.set_lr_mult({3: 5.0})
    assert o._get_lr(3) == pytest.approx(0.5)
    o.set_wd_mult({"fc_weight": 0.0})
    assert o._get_wd(0) == 0.0


def test_update_applies_lr_mult_and_wd_mult():
    idx2name = {0: "a_weight", 1: "a_bias"}
    o = opt.SGD(learning_rate=0.1, wd=0.2, momentum=0.9, param_idx2name=idx2name,
                rescale_grad=0.25, clip_gradient=0.3)
    o.set_lr_mult({"a_bias": 3.0})
    w, grads = _data()
    b = w.copy()
    u = opt.get_updater(o)
    for g in grads:
        u([0, 1], [g, g], [w, b])
    np.testing.assert_allclose(w, ref_sgd(_data()[0], grads, 0.1, 0.2, 0.25, 0.3, 0.9))
    np.testing.assert_allclose(b, ref_sgd(_data()[0], grads, 0.3, 0.0, 0.25, 0.3, 0.9))


def test_create_registry_case_insensitive_and_register():
    assert isinstance(opt.create("SGD"), opt.SGD)
    assert isinstance(opt.create("AdaDelta", rho=0.5), opt.AdaDelta)
    with pytest.raises(ValueError):
        opt.create("nope")

    @opt.register
    class MyOpt(opt.SGD):
        pass

    assert isinstance(opt.create("myopt"), MyOpt)
    del opt.Optimizer.opt_registry["myopt"]


# --- Updater states: pickle-free round trip ----------------------------------------------

def _is_pickle(blob):
    try:
        list(pickletools.genops(blob))
        return True
    except Exception:
        return False


def test_updater_states_round_trip_without_pickle():
    o = opt.Adam(learning_rate=0.01)
    u = opt.get_updater(o)
    w32 = np.ones((2, 3), np.float32)
    u(0, np.full((2, 3), 0.5, np.float32), w32)
    u(3, np.ones(4), np.zeros(4))
    blob = u.get_states()
    assert blob[:8] == b"SGOPTST1" and not _is_pickle(blob)
    u2 = opt.get_updater(opt.Adam(learning_rate=0.01))
    u2.set_states(blob)
    assert set(u2.states) == {0, 3}
    for a, b in zip(u.states[0], u2.states[0]):
        np.testing.assert_array_equal(a, b)
        assert b.dtype == np.float32 and b.flags.writeable
    assert isinstance(u2.states[0], tuple)


def test_updater_states_none_single_and_dump_optimizer():
    o = opt.SGD(momentum=0.9, learning_rate=0.2, param_idx2name={0: "w_weight", 1: "b_bias"})
    u = opt.get_updater(o)
    u(0, np.ones(2), np.zeros(2))
    u(0, np.ones(2), np.zeros(2))
    o0 = opt.get_updater(opt.SGD())
    o0(5, np.ones(2), np.zeros(2))
    assert opt.decode_states(o0.get_states())[0] == {5: None}
    u2 = opt.get_updater(opt.SGD())
    u2.set_states(u.get_states(dump_optimizer=True))
    restored = u2.optimizer
    assert isinstance(restored, opt.SGD) and restored.momentum == 0.9 and restored.lr == 0.2
    assert restored.num_update == 2 and restored._index_update_count == {0: 2}
    assert restored.idx2name == {0: "w_weight", 1: "b_bias"}
    np.testing.assert_array_equal(u2.states[0], u.states[0])
    # the restored optimizer keeps counting from where it was
    u2(0, np.ones(2), np.zeros(2))
    assert restored.num_update == 3


def test_set_states_rejects_garbage():
    with pytest.raises(ValueError):
        opt.get_updater(opt.SGD()).set_states(b"\x80\x04garbage")


def test_multi_precision_keeps_fp32_master():
    o = opt.SGD(learning_rate=0.1, multi_precision=True)
    u = opt.get_updater(o)
    w = np.ones(4, np.float16)
    for _ in range(3):
        u(0, np.full(4, 1e-3, np.float16), w)
    inner, master = u.states[0]
    assert inner is None and master.dtype == np.float32
    np.testing.assert_allclose(master, 1 - 3 * 1e-4, rtol=1e-6)


@pytest.mark.parametrize("name,kwargs", [(c[0], c[1]) for c in CASES]
                         + [("adadelta", {}), ("nadam", {}), ("sgd", {"clip_gradient": 1.0})])
def test_rules_build_loop_ir(name, kwargs):
    """The compiled path: every rule builds IR expressions from IRMath (no Python branching)."""
    scalar_ir = pytest.importorskip("codegen.emit.scalar_ir")
    loop_ir = pytest.importorskip("codegen.loop_ir")
    rule = opt.create(name, **kwargs).rule()
    values = [loop_ir.Var(f"v{i}", "float32") for i in range(2 + rule.state_slot_count)]
    scalars = {n: loop_ir.Var(n, "float32") for n in rule.scalar_names}
    out = rule.formula(scalar_ir.IRMath("float32"), *values, **scalars)
    assert len(out) == 1 + rule.state_slot_count
    assert all(isinstance(e, loop_ir.Expr) for e in out)
