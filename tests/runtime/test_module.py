"""sg.mod.Module: MXNet 1.x lifecycle, numerics against a numpy MLP, fit/score/predict,
checkpoints and optimizer states, on both optimizer paths (fused and per-parameter)."""

import logging
import re

import numpy as np
import pytest
from rt_helpers import letter_mlp

import symgraph as sg
from runtime import module as module_impl
from runtime.datasets import load_letter_recognition
from runtime.io import DataBatch, DataDesc, NDArrayIter


@pytest.fixture(scope="module")
def letter():
    X, y = load_letter_recognition()
    return X, y


@pytest.fixture(params=["fused", "updater"])
def update_path(request, monkeypatch):
    """Run a test on the fused native update and on the per-parameter Updater."""
    monkeypatch.setattr(module_impl, "USE_FUSED_UPDATE", request.param == "fused")
    return request.param


def small_data(n=100, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 16)).astype(np.float32)
    y = rng.integers(0, 26, size=n).astype(np.float32)
    return X, y


def trained_module(batch=32, **fit_kwargs):
    X, y = small_data()
    mod = sg.mod.Module(letter_mlp())
    it = NDArrayIter(X, y, batch)
    mod.fit(it, num_epoch=fit_kwargs.pop("num_epoch", 1),
            optimizer_params=fit_kwargs.pop("optimizer_params", {"learning_rate": 0.1}),
            **fit_kwargs)
    return mod, it, X, y


# ---- construction and lifecycle -------------------------------------------------------------
def test_names_and_flags():
    mod = sg.mod.Module(letter_mlp())
    assert mod.data_names == ["data"] and mod.label_names == ["softmax_label"]
    assert mod.param_names == ["fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias"]
    assert mod.aux_names == [] and mod.output_names == ["softmax_output"]
    assert not (mod.binded or mod.for_training or mod.inputs_need_grad
                or mod.params_initialized or mod.optimizer_initialized)


def test_wrong_data_name_raises_with_hint():
    with pytest.raises(ValueError, match="Did you mean one of:\n\tdata\n\tsoftmax_label"):
        sg.mod.Module(letter_mlp(), data_names=["x"])


def test_wrong_fixed_param_name_raises():
    with pytest.raises(ValueError, match="fixed_param_names"):
        sg.mod.Module(letter_mlp(), fixed_param_names=["fc3_weight"])


def test_missing_label_only_warns_and_becomes_param():
    with pytest.warns(UserWarning, match="input with name 'lbl' is not found"):
        mod = sg.mod.Module(letter_mlp(), label_names=["lbl"])
    assert "softmax_label" in mod.param_names


def test_bind_twice_and_init_twice_warn(caplog):
    mod = sg.mod.Module(letter_mlp())
    mod.bind([("data", (8, 16))], [("softmax_label", (8,))])
    with caplog.at_level(logging.WARNING):
        mod.bind([("data", (8, 16))], [("softmax_label", (8,))])
    assert "Already bound, ignoring bind()" in caplog.text
    mod.init_params()
    with pytest.warns(UserWarning, match="init_params call ignored"):
        mod.init_params()
    mod.init_optimizer()
    with caplog.at_level(logging.WARNING):
        mod.init_optimizer()
    assert "optimizer already initialized, ignoring..." in caplog.text


def test_order_is_enforced():
    mod = sg.mod.Module(letter_mlp())
    with pytest.raises(AssertionError):
        mod.init_params()
    mod.bind([("data", (8, 16))], [("softmax_label", (8,))])
    with pytest.raises(AssertionError):
        mod.init_optimizer()


def test_bind_data_name_mismatch_raises_label_mismatch_warns():
    mod = sg.mod.Module(letter_mlp())
    with pytest.raises(ValueError, match="don't match names specified by data_names"):
        mod.bind([("x", (8, 16))])
    with pytest.warns(UserWarning, match="label_shapes don't match names specified by label"):
        mod.bind([("data", (8, 16))], for_training=False)
    assert mod.binded and mod.label_shapes is None


def test_grad_req_rules():
    mod = sg.mod.Module(letter_mlp(), fixed_param_names=["fc1_bias"])
    mod.bind([("data", (8, 16))], [("softmax_label", (8,))], inputs_need_grad=True)
    reqs = mod._grad_reqs
    assert reqs["fc1_weight"] == "write" and reqs["fc1_bias"] == "null"
    assert reqs["data"] == "write" and reqs["softmax_label"] == "null"
    inference = sg.mod.Module(letter_mlp())
    inference.bind([("data", (8, 16))], [("softmax_label", (8,))], for_training=False)
    assert set(inference._grad_reqs.values()) == {"null"}


def test_init_params_sorted_order_and_missing(monkeypatch):
    mod = sg.mod.Module(letter_mlp())
    mod.bind([("data", (8, 16))], [("softmax_label", (8,))])
    seen = []

    class Recorder(sg.init.Uniform):
        def __call__(self, desc, arr):
            seen.append(str(desc))
            super().__call__(desc, arr)

    mod.init_params(Recorder(0.01))
    assert seen == sorted(seen)
    arg, _ = mod.get_params()
    with pytest.raises(RuntimeError, match="fc2_bias is not presented"):
        mod.init_params(arg_params={k: v for k, v in arg.items() if k != "fc2_bias"},
                        force_init=True)
    with pytest.raises(ValueError, match='Find name "extra"'):
        mod.set_params(dict(arg, extra=np.zeros(1)), {})
    mod.set_params(dict(arg, extra=np.zeros(1)), {}, allow_extra=True)


def test_get_params_returns_copies():
    mod, it, _, _ = trained_module()
    arg, _ = mod.get_params()
    before = arg["fc1_weight"].copy()
    mod.fit(it, num_epoch=1, optimizer_params={"learning_rate": 0.1})
    np.testing.assert_array_equal(arg["fc1_weight"], before)
    assert not np.array_equal(mod.get_params()[0]["fc1_weight"], before)


# ---- numerics ---------------------------------------------------------------------------------
def numpy_sgd_step(params, X, y, lr):
    """One SGD step of the MLP in float64 numpy (SoftmaxOutput grad p - onehot, rescale 1/B)."""
    w1, b1, w2, b2 = (params[k] for k in ("fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias"))
    h = X @ w1.T + b1
    a = np.maximum(h, 0)
    z = a @ w2.T + b2
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dz = p.copy()
    dz[np.arange(len(y)), y.astype(int)] -= 1
    dh = (dz @ w2) * (h > 0)
    grads = {"fc2_weight": dz.T @ a, "fc2_bias": dz.sum(0), "fc1_weight": dh.T @ X,
             "fc1_bias": dh.sum(0)}
    return p, {k: params[k] - lr * grads[k] / len(y) for k in params}


@pytest.mark.parametrize("style", ["fused_call", "forward_then_backward"])
def test_training_steps_match_numpy_float64(update_path, style):
    X, y = small_data(64)
    mod = sg.mod.Module(letter_mlp(hidden=10))
    mod.bind([DataDesc("data", (32, 16), np.float64)],
             [DataDesc("softmax_label", (32,), np.float64)])
    mod.init_params(sg.init.Uniform(0.3))
    mod.init_optimizer(optimizer_params={"learning_rate": 0.5})
    params = {k: v.astype(np.float64) for k, v in mod.get_params()[0].items()}
    for step in range(4):
        xb, yb = X[step % 2 * 32:][:32].astype(np.float64), y[step % 2 * 32:][:32]
        batch = DataBatch([xb], [yb])
        if style == "fused_call":
            mod.forward_backward(batch)
        else:
            mod.forward(batch, is_train=True)
            mod.backward()
        probs, params = numpy_sgd_step(params, xb, yb, 0.5)
        np.testing.assert_allclose(mod.get_outputs()[0], probs, rtol=1e-10, atol=1e-12)
        mod.update()
        for name, value in mod.get_params()[0].items():
            np.testing.assert_allclose(value, params[name], rtol=1e-10, atol=1e-12)
    assert (mod._bound.fused is not None) == (update_path == "fused")


def test_fixed_params_are_not_updated(update_path):
    X, y = small_data()
    mod = sg.mod.Module(letter_mlp(), fixed_param_names=["fc1_weight", "fc2_bias"])
    mod.fit(NDArrayIter(X, y, 32), num_epoch=1, initializer=sg.init.Uniform(0.1),
            optimizer_params={"learning_rate": 0.1})
    arg, _ = mod.get_params()
    mod.fit(NDArrayIter(X, y, 32), num_epoch=2, begin_epoch=1)
    after, _ = mod.get_params()
    np.testing.assert_array_equal(after["fc1_weight"], arg["fc1_weight"])
    np.testing.assert_array_equal(after["fc2_bias"], arg["fc2_bias"])
    assert not np.array_equal(after["fc2_weight"], arg["fc2_weight"])
    assert (mod._bound.fused is not None) == (update_path == "fused")


def test_fixed_params_fused_and_updater_agree(monkeypatch):
    """With fixed parameters the fused update keeps MXNet's indices (lr_mult by index)."""
    X, y = small_data()
    results = []
    for fused in (True, False):
        monkeypatch.setattr(module_impl, "USE_FUSED_UPDATE", fused)
        sg.random.seed(3)
        mod = sg.mod.Module(letter_mlp(), fixed_param_names=["fc1_bias"])
        mod.bind([("data", (32, 16))], [("softmax_label", (32,))])
        mod.init_params(sg.init.Uniform(0.1))
        mod.init_optimizer(optimizer="sgd", optimizer_params={
            "learning_rate": 0.1, "momentum": 0.9, "wd": 0.01})
        mod._optimizer.set_lr_mult({2: 3.0})  # fc2_weight, by its index among all params
        for batch in NDArrayIter(X, y, 32, last_batch_handle="discard"):
            mod.forward_backward(batch)
            mod.update()
        results.append(mod.get_params()[0])
    for name in results[0]:
        np.testing.assert_allclose(results[0][name], results[1][name], rtol=1e-5,
                                   atol=1e-6, err_msg=name)


def test_rescale_grad_and_idx2name():
    mod = sg.mod.Module(letter_mlp())
    mod.bind([("data", (25, 16))], [("softmax_label", (25,))])
    mod.init_params()
    mod.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.1})
    assert mod._optimizer.rescale_grad == pytest.approx(1 / 25)
    assert mod._optimizer.idx2name == dict(enumerate(mod.param_names))
    other = sg.mod.Module(letter_mlp())
    other.bind([("data", (25, 16))], [("softmax_label", (25,))])
    other.init_params()
    with pytest.warns(UserWarning, match="rescale_grad is not normalized"):
        other.init_optimizer(optimizer=sg.optimizer.SGD(learning_rate=0.1))


def test_input_grads():
    mod = sg.mod.Module(letter_mlp())
    mod.bind([("data", (4, 16))], [("softmax_label", (4,))], inputs_need_grad=True)
    mod.init_params(sg.init.Uniform(0.5))
    X, y = small_data(4)
    mod.forward_backward(DataBatch([X], [y]))
    (grad,) = mod.get_input_grads()
    assert grad.shape == (4, 16) and np.abs(grad).sum() > 0


# ---- fit / score / predict ----------------------------------------------------------------------
def test_fit_logs_callbacks_and_history(caplog):
    X, y = small_data()
    mod = sg.mod.Module(letter_mlp())
    batches, epochs = [], []
    with caplog.at_level(logging.INFO):
        mod.fit(NDArrayIter(X, y, 32), eval_data=NDArrayIter(X, y, 32), num_epoch=2,
                batch_end_callback=lambda p: batches.append((p.epoch, p.nbatch)),
                epoch_end_callback=lambda *a: epochs.append(a))
    text = caplog.text
    for epoch in (0, 1):
        assert re.search(rf"Epoch\[{epoch}\] Train-accuracy=\d\.\d{{6}}\n", text)
        assert re.search(rf"Epoch\[{epoch}\] Time cost=\d+\.\d{{3}}\n", text)
        assert re.search(rf"Epoch\[{epoch}\] Validation-accuracy=\d\.\d{{6}}\n", text)
    assert batches == [(e, b) for e in (0, 1) for b in range(4)]
    assert [e[0] for e in epochs] == [0, 1] and epochs[0][1] is mod.symbol
    assert set(epochs[0][2]) == set(mod.param_names)
    assert [h["epoch"] for h in mod.history] == [0, 1]
    assert set(mod.history[0]) == {"epoch", "train", "validation", "time"}
    assert "accuracy" in mod.history[1]["validation"]


def test_fit_requires_num_epoch():
    X, y = small_data()
    with pytest.raises(AssertionError, match="number of epochs"):
        sg.mod.Module(letter_mlp()).fit(NDArrayIter(X, y, 32))


def test_predict_padding_and_forms():
    mod, it, X, _ = trained_module()
    out = mod.predict(it)
    assert out.shape == (100, 26)
    np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-5)
    per_batch = mod.predict(it, merge_batches=False)
    assert len(per_batch) == 4 and [len(b) for b in per_batch] == [1] * 4
    assert per_batch[-1][0].shape == (4, 26)
    assert mod.predict(it, num_batch=2).shape == (64, 26)
    listed = mod.predict(it, always_output_list=True)
    assert isinstance(listed, list) and listed[0].shape == (100, 26)
    np.testing.assert_allclose(mod.predict(X[:7]), out[:7], rtol=1e-5, atol=1e-7)
    assert mod.predict(it, num_batch=0) == []


def test_batch_size_change_between_fit_and_predict():
    mod, it, X, y = trained_module()
    whole = mod.predict(NDArrayIter(X, None, 50))
    np.testing.assert_allclose(whole, mod.predict(it), rtol=1e-5, atol=1e-7)
    shapes = len(mod._exec_cache)
    mod.fit(it, num_epoch=2, begin_epoch=1)
    mod.predict(NDArrayIter(X, None, 50))
    assert len(mod._exec_cache) == shapes  # cached: alternating sizes does not re-bind


def test_score_and_iter_predict():
    mod, it, X, y = trained_module(num_epoch=3)
    (name, acc), = mod.score(it, "acc")
    expected = np.mean(mod.predict(it).argmax(1) == y)
    assert name == "accuracy"
    # [Q] the padded last batch is counted: 4 wrapped samples add to the 100
    assert acc == pytest.approx(expected, abs=4 / 128 + 1e-9)
    seen = [(nb, outs[0].shape) for outs, nb, _ in mod.iter_predict(it)]
    assert seen == [(0, (32, 26)), (1, (32, 26)), (2, (32, 26)), (3, (4, 26))]


# ---- checkpoints ---------------------------------------------------------------------------------
def test_checkpoint_round_trip_bit_exact(tmp_path, caplog):
    mod, it, X, _ = trained_module()
    prefix = str(tmp_path / "mlp")
    with caplog.at_level(logging.INFO):
        mod.save_checkpoint(prefix, 3)
    assert f'Saved checkpoint to "{prefix}-0003.params"' in caplog.text
    sym, arg, aux = sg.model.load_checkpoint(prefix, 3)
    mine, _ = mod.get_params()
    assert set(arg) == set(mine) and aux == {}
    for name in mine:
        assert arg[name].tobytes() == mine[name].tobytes()
    loaded = sg.mod.Module.load(prefix, 3)
    assert loaded.params_initialized
    loaded.bind(it.provide_data, it.provide_label, for_training=False)
    assert loaded.predict(it).tobytes() == mod.predict(it).tobytes()


def test_save_load_params_and_invalid_prefix(tmp_path):
    mod, it, _, _ = trained_module()
    fname = str(tmp_path / "p.params")
    mod.save_params(fname)
    other = sg.mod.Module(letter_mlp())
    other.bind(it.provide_data, it.provide_label)
    other.load_params(fname)
    for name, value in mod.get_params()[0].items():
        np.testing.assert_array_equal(other.get_params()[0][name], value)
    sg.nd.save(fname, {"foo:fc1_weight": np.zeros((64, 16), np.float32)})
    with pytest.raises(ValueError, match="Invalid param file"):
        other.load_params(fname)


def test_resume_with_begin_epoch(tmp_path, caplog):
    X, y = small_data()
    prefix = str(tmp_path / "run")
    mod = sg.mod.Module(letter_mlp())
    mod.fit(NDArrayIter(X, y, 32), num_epoch=2, optimizer_params={"learning_rate": 0.1},
            epoch_end_callback=sg.callback.do_checkpoint(prefix))
    assert (tmp_path / "run-0002.params").exists()
    resumed = sg.mod.Module.load(prefix, 2)
    with caplog.at_level(logging.INFO):
        resumed.fit(NDArrayIter(X, y, 32), num_epoch=4, begin_epoch=2,
                    optimizer_params={"learning_rate": 0.1})
    assert "Epoch[2] Train-accuracy" in caplog.text and "Epoch[3] Time cost" in caplog.text
    assert "Epoch[1]" not in caplog.text
    # the same two extra epochs on the original module give the same weights
    mod.fit(NDArrayIter(X, y, 32), num_epoch=4, begin_epoch=2)
    for name, value in mod.get_params()[0].items():
        np.testing.assert_allclose(resumed.get_params()[0][name], value, rtol=1e-6)


def test_optimizer_states_round_trip(tmp_path, update_path):
    X, y = small_data()
    prefix = str(tmp_path / "m")
    params = {"learning_rate": 0.1, "momentum": 0.9}
    mod = sg.mod.Module(letter_mlp())
    mod.fit(NDArrayIter(X, y, 32), num_epoch=1, optimizer_params=params)
    mod.save_checkpoint(prefix, 1, save_optimizer_states=True)
    states = {k: np.array(v) for k, v in mod._current_states().items()}
    assert set(states) == {0, 1, 2, 3} and states[0].shape == (64, 16)
    loaded = sg.mod.Module.load(prefix, 1, load_optimizer_states=True)
    loaded.bind([("data", (32, 16))], [("softmax_label", (32,))])
    loaded.init_optimizer(optimizer_params=params)
    for index, state in loaded._current_states().items():
        np.testing.assert_array_equal(state, states[index])
    # continuing from the restored momentum matches continuing the original
    for m in (mod, loaded):
        m.fit(NDArrayIter(X, y, 32), num_epoch=2, begin_epoch=1, optimizer_params=params)
    for name, value in mod.get_params()[0].items():
        np.testing.assert_allclose(loaded.get_params()[0][name], value, rtol=1e-5, atol=1e-7)
    for index, state in mod._current_states().items():
        np.testing.assert_allclose(loaded._current_states()[index], state, rtol=1e-5, atol=1e-7)
    assert not np.array_equal(loaded._current_states()[0], states[0])


def test_force_rebind_keeps_trained_params():
    mod, it, _, _ = trained_module()
    before = mod.get_params()[0]
    mod.bind(it.provide_data, it.provide_label, force_rebind=True)
    for name, value in mod.get_params()[0].items():
        np.testing.assert_array_equal(value, before[name])
    mod.fit(it, num_epoch=2, begin_epoch=1)  # optimizer survives the re-bind


# ---- the tutorial's numbers ----------------------------------------------------------------------
def test_letter_mlp_reaches_tutorial_accuracy(letter):
    X, y = letter
    sg.random.seed(0)
    train = NDArrayIter(X[:16000], y[:16000], 32, shuffle=True)
    val = NDArrayIter(X[16000:], y[16000:], 32)
    mod = sg.mod.Module(letter_mlp())
    mod.fit(train, eval_data=val, optimizer="sgd", optimizer_params={"learning_rate": 0.1},
            num_epoch=8)
    assert mod.score(val, "acc")[0][1] > 0.77
    assert mod.predict(val).shape == (4000, 26)


def test_train_letter_example(tmp_path, capsys):
    import runpy

    script = __import__("pathlib").Path(__file__).resolve().parents[2] / "examples" / \
        "train_letter.py"
    namespace = runpy.run_path(str(script), run_name="train_letter")
    accuracy = namespace["main"](["--epochs", "2", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "Epoch[1] Validation-accuracy=" in out and accuracy > 0.6
    assert (tmp_path / "letter-symbol.json").exists()
    assert (tmp_path / "letter-0002.params").exists()


def _alternating_sizes_run(fused, monkeypatch):
    monkeypatch.setattr(module_impl, "USE_FUSED_UPDATE", fused)
    sg.random.seed(7)
    X, y = small_data(52)
    mod = sg.mod.Module(letter_mlp())
    mod.bind([("data", (32, 16))], [("softmax_label", (32,))])
    mod.init_params(sg.init.Uniform(0.2))
    mod.init_optimizer(optimizer_params={"learning_rate": 0.1, "momentum": 0.9})
    for _ in range(3):
        for lo, hi in ((0, 32), (32, 52)):
            mod.forward_backward(DataBatch([X[lo:hi]], [y[lo:hi]]))
            mod.update()
    return mod


def test_momentum_follows_executor_switches(monkeypatch):
    """Two batch sizes alternate: fused states must move with the active executor."""
    fused = _alternating_sizes_run(True, monkeypatch)
    plain = _alternating_sizes_run(False, monkeypatch)
    assert len(fused._exec_cache) == 2 and fused._live_fused is not None
    for name, value in plain.get_params()[0].items():
        np.testing.assert_allclose(fused.get_params()[0][name], value, rtol=1e-5, atol=1e-7)
    for index, state in plain._current_states().items():
        np.testing.assert_allclose(fused._current_states()[index], state, rtol=1e-5,
                                   atol=1e-7)


def test_monitor_contexts_and_kvstore():
    class Mon:
        def __init__(self):
            self.installed, self.seen = [], []

        def install(self, exe):
            self.installed.append(exe)
            exe.set_monitor_callback(lambda name, arr: self.seen.append(name))

        tic = toc_print = lambda self: None  # noqa: E731

    X, y = small_data()
    mod = sg.mod.Module(letter_mlp(), context=[sg.cpu(0), sg.cpu(1)])
    mon = Mon()
    mod.fit(NDArrayIter(X, y, 32), num_epoch=1, monitor=mon)
    assert mon.installed and "softmax_output" in mon.seen
    other = sg.mod.Module(letter_mlp())
    other.bind([("data", (8, 16))], [("softmax_label", (8,))])
    other.init_params()
    # without mpiexec a distributed kvstore trains as one worker, saying so
    with pytest.warns(UserWarning, match="not started by mpiexec"):
        other.init_optimizer(kvstore="dist_sync")
    assert other._optimizer.rescale_grad == pytest.approx(1 / 8)


def test_facades(tmp_path):
    a = sg.nd.array([[1, 2], [3, 4]])
    assert a.dtype == np.float32 and sg.nd.zeros((2, 3)).shape == (2, 3)
    assert sg.nd.ones(2).sum() == 2
    sg.nd.save(str(tmp_path / "x.nd"), {"a": a})
    np.testing.assert_array_equal(sg.nd.load(str(tmp_path / "x.nd"))["a"], a)
    assert sg.model.BatchEndParam._fields == ("epoch", "nbatch", "eval_metric", "locals")
    assert callable(sg.model.save_checkpoint) and callable(sg.model.load_params)
    assert callable(sg.test_utils.get_mnist)
    assert sg.mod.Module is sg.module.Module and issubclass(sg.mod.Module, sg.mod.BaseModule)
