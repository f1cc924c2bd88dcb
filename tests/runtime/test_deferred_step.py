"""The user's own training loop as one native call per step (runtime/deferred_step.py):
``forward`` / ``forward_backward`` defer to ``update``. Every loop, with every reader and
writer of the deferred state interleaved at every point, is compared bitwise (each
observation, the parameters, aux states, optimizer states and the metric) with the
step-by-step path (``native_step.ENABLED = False``)."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
from native_helpers import letter
from rt_helpers import letter_mlp

import symgraph as sg
from runtime import metric as M
from runtime import native_step
from runtime.checkpoint import load_states
from runtime.executor import Executor

BATCH = 32
_DATA = {}


def _letter():
    if not _DATA:
        x, y = letter(1200)
        _DATA["train"] = (x[:8 * BATCH], y[:8 * BATCH])
        _DATA["val"] = (x[1000:1000 + 3 * BATCH], y[1000:1000 + 3 * BATCH])
    return _DATA


def _dropout_net():
    net = sg.sym.FullyConnected(sg.sym.Variable("data"), name="fc1", num_hidden=48)
    net = sg.sym.Activation(net, name="relu1", act_type="relu")
    net = sg.sym.Dropout(net, p=0.3, name="drop")
    net = sg.sym.FullyConnected(net, name="fc2", num_hidden=26)
    return sg.sym.SoftmaxOutput(net, name="softmax")


def _batchnorm_net():
    net = sg.sym.FullyConnected(sg.sym.Variable("data"), name="fc1", num_hidden=40)
    net = sg.sym.BatchNorm(net, name="bn1")
    net = sg.sym.Activation(net, name="relu1", act_type="relu")
    net = sg.sym.FullyConnected(net, name="fc2", num_hidden=26)
    return sg.sym.SoftmaxOutput(net, name="softmax")


NETS = {"mlp": letter_mlp, "dropout": _dropout_net, "batchnorm": _batchnorm_net}
OPTIMIZERS = {
    "sgd": ("sgd", {"learning_rate": 0.1}),
    "momentum": ("sgd", {"learning_rate": 0.05, "momentum": 0.9, "wd": 1e-4}),
    "adam": ("adam", {"learning_rate": 0.01, "wd": 1e-4}),
}


def see(value):
    """A detached copy of anything a reader returned (NDArrays as numpy)."""
    if isinstance(value, dict):
        return {k: see(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [see(v) for v in value]
    if hasattr(value, "asnumpy"):
        return value.asnumpy()
    if isinstance(value, np.ndarray):
        return value.copy()
    return value


def assert_bitwise(a, b, where="log"):
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_bitwise(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_bitwise(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, where
        assert a.tobytes() == b.tobytes(), where
    elif isinstance(a, float) and a != a:
        assert isinstance(b, float) and b != b, where
    else:
        assert a == b and type(a) is type(b), (where, a, b)


class _Count:
    """Counts calls of the executor's phases, the native user step and numpy Accuracy."""

    def __init__(self, monkeypatch):
        self.calls = {}
        for owner, name in ((Executor, "forward"), (Executor, "backward"),
                            (Executor, "forward_backward"), (native_step.NativeStep, "user_step"),
                            (M.Accuracy, "update")):
            monkeypatch.setattr(owner, name, self._wrap(getattr(owner, name), name))

    def _wrap(self, fn, name):
        def counted(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            return fn(*args, **kwargs)
        return counted


def _states(mod):
    def flat(state):
        if state is None:
            return []
        if isinstance(state, (list, tuple)):
            return [s for part in state for s in flat(part)]
        return [np.array(state, copy=True)]
    return {i: flat(v) for i, v in mod._current_states().items()}


def train(enabled, monkeypatch, script, net="mlp", optimizer="sgd", epochs=1, tmp_path=None,
          bind_kw=None, seed=5, module_kw=None):
    """Everything observable after running ``script(ctx, batch)`` on each batch."""
    monkeypatch.setattr(native_step, "ENABLED", enabled)
    np.random.seed(seed)
    sg.random.seed(seed)
    data = _letter()
    it = sg.io.NDArrayIter(*data["train"], batch_size=BATCH, shuffle=True)
    val = sg.io.NDArrayIter(*data["val"], batch_size=BATCH)
    mod = sg.mod.Module(NETS[net](), **(module_kw or {}))
    mod.bind(it.provide_data, it.provide_label, **(bind_kw or {}))
    mod.init_params(sg.init.Xavier())
    name, params = OPTIMIZERS[optimizer]
    mod.init_optimizer(optimizer=name, optimizer_params=params)
    metric = sg.metric.create("acc")
    log = []
    initial = tuple({k: v.asnumpy() for k, v in d.items()} for d in mod.get_params())
    ctx = SimpleNamespace(initial=initial, mod=mod, metric=metric, log=log, val=val,
                          tmp=tmp_path, step=0, extra=sg.metric.create("acc"),
                          ce=sg.metric.create("ce"))
    for _ in range(epochs):
        it.reset()
        metric.reset()
        for batch in it:
            script(ctx, batch)
            ctx.step += 1
        log.append(metric.get_global())
    args, aux = mod.get_params()
    log += [see(args), see(aux), _states(mod), metric.get(), metric.get_global(),
            ctx.extra.get(), ctx.ce.get(), mod._optimizer.num_update,
            dict(mod._optimizer._index_update_count), mod._bound.exe.random_seed]
    return log


def same_both_ways(monkeypatch, script, **kw):
    """The step-by-step and the deferred run agree bitwise; returns the call counts of
    the deferred run."""
    expected = train(False, monkeypatch, script, **kw)
    counter = _Count(monkeypatch)
    actual = train(True, monkeypatch, script, **kw)
    assert_bitwise(expected, actual)
    return counter.calls


# ----------------------------------------------------------------------------- the loops
def tutorial(ctx, batch):
    ctx.mod.forward(batch, is_train=True)
    ctx.mod.update_metric(ctx.metric, batch.label)
    ctx.mod.backward()
    ctx.mod.update()


def fb_update_metric(ctx, batch):
    ctx.mod.forward_backward(batch)
    ctx.mod.update()
    ctx.mod.update_metric(ctx.metric, batch.label)


def fb_metric_update(ctx, batch):
    ctx.mod.forward_backward(batch)
    ctx.mod.update_metric(ctx.metric, batch.label)
    ctx.mod.update()


def forward_backward_metric_update(ctx, batch):
    ctx.mod.forward(batch, is_train=True)
    ctx.mod.backward()
    ctx.mod.update_metric(ctx.metric, batch.label)
    ctx.mod.update()


LOOPS = {"tutorial": tutorial, "fb_update_metric": fb_update_metric,
         "fb_metric_update": fb_metric_update,
         "forward_backward_metric_update": forward_backward_metric_update}


@pytest.mark.parametrize("loop", sorted(LOOPS))
@pytest.mark.parametrize("net", sorted(NETS))
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_loops_bitwise_and_one_native_call(monkeypatch, loop, net, optimizer):
    calls = same_both_ways(monkeypatch, LOOPS[loop], net=net, optimizer=optimizer, epochs=2)
    steps = 2 * 8
    assert calls.get("user_step") == steps
    for phase in ("forward", "backward", "forward_backward"):
        assert phase not in calls, calls  # nothing but the one native step ran
    # the accuracy is counted in the step (ahead, when update_metric follows update)
    assert "update" not in calls  # nor numpy


# ------------------------------------------------------------------ readers interleaved
def _save_checkpoint(ctx):
    prefix = str(ctx.tmp / f"ck{ctx.step}")
    ctx.mod.save_checkpoint(prefix, 1, save_optimizer_states=True)
    ctx.log.append(see(sg.nd.load(f"{prefix}-0001.params")))
    ctx.log.append(see(load_states(f"{prefix}-0001.states")[0]))


def _save_optimizer_states(ctx):
    name = str(ctx.tmp / f"opt{ctx.step}.states")
    ctx.mod.save_optimizer_states(name)
    ctx.log.append(see(load_states(name)[0]))
    ctx.mod.load_optimizer_states(name)


def _set_params(ctx):
    """Writers that read nothing first (the initial values, shifted per step)."""
    args, aux = ctx.initial
    args = {**args, "fc2_bias": args["fc2_bias"] + 0.25 * ctx.step}
    ctx.mod.set_params(args, aux)


def _set_some_params(ctx):
    bias = ctx.initial[0]["fc1_bias"] + 0.1 * ctx.step
    ctx.mod.set_params({"fc1_bias": bias}, {}, allow_missing=True)


def _init_params(ctx):
    args, aux = ctx.initial
    args = {**args, "fc1_weight": args["fc1_weight"] * (0.5 + ctx.step)}
    ctx.mod.init_params(arg_params=args, aux_params=aux, force_init=True)


def _predict_array(ctx):
    x = _letter()["val"][0][:7]  # another batch size: another executor, back again after
    ctx.log.append(see(ctx.mod.predict(x)))


class _Recorder:
    """A monitor: what every executor output was after each forward."""

    def __init__(self, log):
        self.log = log

    def install(self, exe):
        exe.set_monitor_callback(lambda name, array: self.log.append((name, array.copy())))


def _monitor(ctx):
    if ctx.step == 3:
        ctx.mod.install_monitor(_Recorder(ctx.log))


def _metric_copy(ctx):
    ctx.log.append(copy.deepcopy(ctx.metric).get())


READERS = {
    "get_outputs": lambda ctx: ctx.log.append(see(ctx.mod.get_outputs())),
    "get_params": lambda ctx: ctx.log.append(see(ctx.mod.get_params())),
    "metric_get": lambda ctx: ctx.log.append(ctx.metric.get()),
    "metric_fields": lambda ctx: ctx.log.append((ctx.metric.sum_metric, ctx.metric.num_inst,
                                                 ctx.metric.global_num_inst)),
    "metric_str": lambda ctx: ctx.log.append(str(ctx.metric)),
    "metric_reset_local": lambda ctx: ctx.metric.reset_local(),
    "metric_set": lambda ctx: setattr(ctx.metric, "num_inst", ctx.metric.num_inst + 1),
    "metric_copy": _metric_copy,
    "second_accuracy": lambda ctx: ctx.mod.update_metric(ctx.extra, [ctx.labels]),
    "other_labels": lambda ctx: ctx.mod.update_metric(ctx.extra, [np.roll(ctx.labels, 1)]),
    "cross_entropy": lambda ctx: ctx.mod.update_metric(ctx.ce, [ctx.labels]),
    "set_params": _set_params,
    "set_some_params": _set_some_params,
    "init_params": _init_params,
    "score": lambda ctx: ctx.log.append(ctx.mod.score(ctx.val, "acc")),
    # the same batch again, as inference: other outputs, the same labels
    "forward_same_predict": lambda ctx: ctx.mod.forward(ctx.batch, is_train=False),
    "score_same_batch": lambda ctx: ctx.log.append(ctx.mod.score(sg.io.NDArrayIter(
        ctx.batch.data[0], ctx.batch.label[0], batch_size=BATCH), "acc")),
    "predict": lambda ctx: ctx.log.append(see(ctx.mod.predict(ctx.val))),
    "predict_array": _predict_array,
    "save_checkpoint": _save_checkpoint,
    "save_optimizer_states": _save_optimizer_states,
    "forward_backward_again": lambda ctx: ctx.mod.forward_backward(ctx.batch),
    "backward_again": lambda ctx: ctx.mod.backward(),
    "update_again": lambda ctx: ctx.mod.update(),
    "learning_rate": lambda ctx: ctx.mod._optimizer.set_learning_rate(0.1 / (1 + ctx.step)),
    "monitor": _monitor,
    "reshape": lambda ctx: ctx.mod.reshape(ctx.mod.data_shapes, ctx.mod.label_shapes),
}
POINTS = ("forward", "metric", "backward")


def _attempt(ctx, fn, *args):
    """Call ``fn``; an error (both paths must raise the same) is logged, not raised."""
    try:
        fn(*args)
    except (ValueError, KeyError, AssertionError, sg.errors.SymgraphError) as exc:
        ctx.log.append(("raised", type(exc).__name__, str(exc)))


def _interleaved(reader, point):
    def script(ctx, batch):
        ctx.batch, ctx.labels = batch, batch.label[0]
        mod = ctx.mod
        _attempt(ctx, mod.forward, batch, True)
        if point == "forward":
            _attempt(ctx, reader, ctx)
        _attempt(ctx, mod.update_metric, ctx.metric, batch.label)
        if point == "metric":
            _attempt(ctx, reader, ctx)
        _attempt(ctx, mod.backward)
        if point == "backward":
            _attempt(ctx, reader, ctx)
        _attempt(ctx, mod.update)
    return script


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("reader", sorted(READERS))
def test_every_reader_at_every_point(monkeypatch, tmp_path, reader, point):
    same_both_ways(monkeypatch, _interleaved(READERS[reader], point), net="batchnorm",
                   optimizer="momentum", tmp_path=tmp_path)


def _after_update(reader):
    """fit's order: the accuracy is counted ahead in the native step, on the executor's
    labels, and used only when nothing changed the outputs in between."""
    def script(ctx, batch):
        ctx.batch, ctx.labels = batch, batch.label[0]
        _attempt(ctx, ctx.mod.forward_backward, batch)
        _attempt(ctx, ctx.mod.update)
        _attempt(ctx, reader, ctx)
        _attempt(ctx, ctx.mod.update_metric, ctx.metric, batch.label)
    return script


@pytest.mark.parametrize("reader", sorted(READERS))
def test_every_reader_between_update_and_update_metric(monkeypatch, tmp_path, reader):
    same_both_ways(monkeypatch, _after_update(READERS[reader]), net="dropout",
                   optimizer="momentum", tmp_path=tmp_path)


def test_count_ahead_needs_the_batch_labels(monkeypatch):
    def script(ctx, batch):
        ctx.mod.forward_backward(batch)
        ctx.mod.update()
        labels = batch.label[0] if ctx.step % 2 else np.roll(batch.label[0], 1)
        ctx.mod.update_metric(ctx.metric, [labels])
        ctx.mod.update_metric(ctx.metric, batch.label)  # a second time: numpy
    calls = same_both_ways(monkeypatch, script)
    assert calls["user_step"] == 8 and calls["update"] == 8 + 4


@pytest.mark.parametrize("reader", ["get_params", "metric_get", "score", "set_params",
                                    "predict_array", "update_again"])
def test_readers_with_dropout_and_adam(monkeypatch, tmp_path, reader):
    same_both_ways(monkeypatch, _interleaved(READERS[reader], "metric"), net="dropout",
                   optimizer="adam", tmp_path=tmp_path)


def test_folded_metric_counts_the_labels_it_was_given(monkeypatch):
    """update_metric may be given other labels than the batch's (and they may change
    after the call): the count uses a copy of what was given."""
    def script(ctx, batch):
        labels = np.roll(batch.label[0], ctx.step + 1)
        ctx.mod.forward(batch, is_train=True)
        ctx.mod.update_metric(ctx.metric, [labels])
        labels[:] = 0
        ctx.mod.backward()
        ctx.mod.update()
    calls = same_both_ways(monkeypatch, script, epochs=2)
    assert calls["user_step"] == 16 and "update" not in calls


def _no_backward(ctx, batch):
    """update after a forward alone applies the previous step's gradients."""
    ctx.mod.forward(batch, is_train=True)
    ctx.mod.update_metric(ctx.metric, batch.label)
    if ctx.step % 2:
        ctx.mod.backward()
    ctx.mod.update()


def _forward_twice(ctx, batch):
    ctx.mod.forward(batch, is_train=True)
    ctx.mod.forward(batch, is_train=True)
    tutorial(ctx, batch)


@pytest.mark.parametrize("script", [_no_backward, _forward_twice])
def test_odd_orders(monkeypatch, script):
    same_both_ways(monkeypatch, script, net="dropout", optimizer="momentum")


@pytest.mark.parametrize("module_kw,bind_kw", [
    ({"fixed_param_names": ["fc1_bias"]}, {}),
    ({}, {"grad_req": "add"}),
])
def test_fixed_params_and_accumulated_gradients(monkeypatch, module_kw, bind_kw):
    calls = same_both_ways(monkeypatch, tutorial, optimizer="adam", module_kw=module_kw,
                           bind_kw=bind_kw, epochs=2)
    assert calls["user_step"] == 16


def test_input_grads(monkeypatch):
    def script(ctx, batch):
        ctx.mod.forward_backward(batch)
        if ctx.step % 3 == 1:
            ctx.log.append(see(ctx.mod.get_input_grads()))
        ctx.mod.update()
    calls = same_both_ways(monkeypatch, script, bind_kw={"inputs_need_grad": True})
    assert calls.get("user_step") == 1  # handing out views ends deferral: step 1 flushed


def test_views_stop_deferral_and_copies_do_not(monkeypatch):
    def script(ctx, batch):
        if ctx.step == 2:
            ctx.outputs = ctx.mod.get_outputs()  # a view, read after later forwards
        tutorial(ctx, batch)
        if ctx.step >= 2:
            ctx.log.append(see(ctx.outputs))
    calls = same_both_ways(monkeypatch, script)
    assert calls["user_step"] == 2

    def predicting(ctx, batch):
        ctx.log.append(see(ctx.mod.predict(ctx.val)))
        tutorial(ctx, batch)
    calls = same_both_ways(monkeypatch, predicting)
    assert calls["user_step"] == 8


def test_held_metric_sees_values_as_step_by_step(monkeypatch):
    """A metric left pending by an update_metric that is never followed by update (the
    loop ends) still reads as the step-by-step one."""
    def script(ctx, batch):
        ctx.mod.forward(batch, is_train=True)
        ctx.mod.update_metric(ctx.metric, batch.label)
        if ctx.step < 7:
            ctx.mod.backward()
            ctx.mod.update()
    same_both_ways(monkeypatch, script)


def test_guarded_metric_looks_like_itself(monkeypatch):
    monkeypatch.setattr(native_step, "ENABLED", True)
    data = _letter()
    it = sg.io.NDArrayIter(*data["train"], batch_size=BATCH)
    mod = sg.mod.Module(letter_mlp())
    mod.bind(it.provide_data, it.provide_label)
    mod.init_params(sg.init.Xavier())
    mod.init_optimizer()
    metric = sg.metric.Accuracy()
    batch = next(iter(it))
    mod.forward(batch)
    mod.update_metric(metric, batch.label)
    assert isinstance(metric, M.Accuracy) and type(metric).__name__ == "Accuracy"
    assert metric.num_inst == BATCH  # reading it ran the pending forward and the count
    assert type(metric) is M.Accuracy
    mod.backward()
    mod.update()
    assert metric.num_inst == BATCH


def test_subclass_and_disabled_switch_never_defer(monkeypatch):
    class Mine(sg.mod.Module):
        pass

    monkeypatch.setattr(native_step, "ENABLED", True)
    counter = _Count(monkeypatch)
    data = _letter()
    it = sg.io.NDArrayIter(*data["train"], batch_size=BATCH)
    for cls in (Mine, sg.mod.Module):
        mod = cls(letter_mlp())
        mod.bind(it.provide_data, it.provide_label)
        mod.init_params(sg.init.Xavier())
        mod.init_optimizer()
        batch = next(iter(it))
        mod.forward_backward(batch)
        mod.update()
        monkeypatch.setattr(native_step, "ENABLED", False)
    assert counter.calls == {"forward_backward": 2}


RANDOM_OPS = {
    "forward": lambda ctx: ctx.mod.forward(ctx.next_batch(), is_train=True),
    "forward_default": lambda ctx: ctx.mod.forward(ctx.next_batch()),
    "forward_predict": lambda ctx: ctx.mod.forward(ctx.next_batch(), is_train=False),
    "forward_backward": lambda ctx: ctx.mod.forward_backward(ctx.next_batch()),
    "backward": lambda ctx: ctx.mod.backward(),
    "update": lambda ctx: ctx.mod.update(),
    "accuracy": lambda ctx: ctx.mod.update_metric(ctx.metric, ctx.batch.label),
    "other_accuracy": lambda ctx: ctx.mod.update_metric(ctx.extra, ctx.batch.label),
    "cross_entropy": lambda ctx: ctx.mod.update_metric(ctx.ce, ctx.batch.label),
    "read_metric": lambda ctx: ctx.log.append(ctx.metric.get_global()),
    "reset_metric": lambda ctx: ctx.metric.reset(),
    "get_params": READERS["get_params"],
    "set_params": _set_params,
    "score": READERS["score"],
    "predict_array": _predict_array,
    "learning_rate": READERS["learning_rate"],
}
# the training calls come often, so that most steps are deferred
_WEIGHTS = {"forward": 6, "forward_backward": 4, "backward": 5, "update": 8, "accuracy": 5}


@pytest.mark.parametrize("seed", range(6))
def test_random_call_sequences(monkeypatch, seed):
    """Seeded random sequences of training calls, readers and writers (errors included:
    both paths must raise the same at the same call)."""
    names = sorted(RANDOM_OPS)
    weights = np.array([_WEIGHTS.get(n, 1) for n in names], dtype=float)
    order = np.random.default_rng(seed).choice(names, size=80, p=weights / weights.sum())

    def script(ctx, batch):
        if ctx.step:
            return
        batches = iter(list(_letter_batches()))
        ctx.batch = None

        def next_batch():
            ctx.batch = next(batches)
            return ctx.batch
        ctx.next_batch = next_batch
        for name in order:
            if ctx.batch is None and name not in ("forward", "forward_default",
                                                  "forward_predict", "forward_backward"):
                continue
            ctx.log.append(name)
            _attempt(ctx, RANDOM_OPS[name], ctx)
    calls = same_both_ways(monkeypatch, script, net="batchnorm", optimizer="momentum")
    assert calls.get("user_step", 0) >= 1  # the deferred path was taken


def _letter_batches():
    x, y = _letter()["train"]
    x, y = np.concatenate([x] * 6), np.concatenate([y] * 6)
    return sg.io.NDArrayIter(x, y, batch_size=BATCH, shuffle=True)


def test_rebind_forgets_views(monkeypatch):
    """Views of executors a forced re-bind dropped are never written again: deferral
    resumes on the new ones."""
    def script(ctx, batch):
        if ctx.step == 2:
            ctx.mod.get_outputs()
        if ctx.step == 4:
            ctx.mod.bind(ctx.mod.data_shapes, ctx.mod.label_shapes, force_rebind=True)
        tutorial(ctx, batch)
    calls = same_both_ways(monkeypatch, script, optimizer="adam")
    assert calls["user_step"] == 2 + 4
