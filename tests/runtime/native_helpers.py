"""Train the same model under fit's three paths (step by step, one native call per step,
compiled epochs) and collect everything a user can observe, for bitwise comparison."""

from __future__ import annotations

import logging
import re

import numpy as np
from rt_helpers import letter_mlp

import symgraph as sg
from runtime import compiled_epoch, native_step
from runtime.datasets import load_letter_recognition

MODES = {"python": (False, False), "step": (True, False), "epoch": (True, True)}
_SPEED = re.compile(r"Speed: [^\t]*")


def letter(n):
    x, y = load_letter_recognition()
    return x[:n], y[:n]


def mnist(n):
    data = sg.datasets.get_mnist()
    x = data["train_data"][:n].reshape(n, -1)
    return np.ascontiguousarray(x), data["train_label"][:n].astype(np.float32)


def mnist_mlp():
    net = sg.sym.Variable("data")
    for i, hidden in enumerate((128, 64)):
        net = sg.sym.FullyConnected(net, name=f"fc{i + 1}", num_hidden=hidden)
        net = sg.sym.Activation(net, name=f"relu{i + 1}", act_type="relu")
    net = sg.sym.FullyConnected(net, name="fc3", num_hidden=10)
    return sg.sym.SoftmaxOutput(net, name="softmax")


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        text = record.getMessage()
        if "Time cost" not in text:
            self.lines.append(_SPEED.sub("Speed: ?", text))


def train(mode, data, net=letter_mlp, batch=32, epochs=2, optimizer="sgd", params=None,
          metric="acc", callbacks=None, shuffle=False, last_batch_handle="pad",
          monkeypatch=None, seed=3, module_kw=None, eval_data=None, eval_batch=None,
          eval_end=None, iter_kw=None):
    """(params, optimizer states, history rows, log lines, metric) after ``fit``."""
    monkeypatch.setattr(native_step, "ENABLED", MODES[mode][0])
    monkeypatch.setattr(compiled_epoch, "ENABLED", MODES[mode][1])
    np.random.seed(seed)
    sg.random.seed(seed)
    x, y = data
    it = sg.io.NDArrayIter(x, y, batch_size=batch, shuffle=shuffle,
                           last_batch_handle=last_batch_handle, **(iter_kw or {}))
    mod = sg.mod.Module(net(), **(module_kw or {}))
    handler = _Lines()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    metric = metric() if callable(metric) and not isinstance(metric, str) else metric
    eval_metric = sg.metric.create(metric)
    history = []
    try:
        mod.fit(it, num_epoch=epochs,
                optimizer=optimizer() if callable(optimizer) else optimizer,
                optimizer_params=params() if callable(params) else
                (params or {"learning_rate": 0.1}),
                eval_metric=eval_metric, batch_end_callback=callbacks() if callbacks else None,
                initializer=sg.init.Xavier(), history=history,
                eval_data=None if eval_data is None else
                sg.io.NDArrayIter(*eval_data, batch_size=eval_batch or batch),
                eval_end_callback=eval_end() if eval_end else None)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    args, aux = mod.get_params()
    states = {i: [np.array(s, copy=True) for s in _slots(v)]
              for i, v in mod._current_states().items()}
    rows = [(h["epoch"], h["train"]) for h in history]
    stats = (eval_metric.get_name_value(), eval_metric.get_global_name_value())
    return ({k: v.asnumpy() for k, v in {**args, **aux}.items()}, states, rows,
            handler.lines, stats, (mod._optimizer.num_update,
                                   dict(mod._optimizer._index_update_count)), it.cursor)


def _slots(state):
    if state is None:
        return []
    if isinstance(state, (list, tuple)):
        return [s for part in state for s in _slots(part)]
    return [state]


def assert_same(a, b):
    params_a, states_a, *rest_a = a
    params_b, states_b, *rest_b = b
    assert params_a.keys() == params_b.keys()
    for name in params_a:
        assert np.array_equal(params_a[name], params_b[name]), name
    assert states_a.keys() == states_b.keys()
    for index in states_a:
        for sa, sb in zip(states_a[index], states_b[index]):
            assert np.array_equal(sa, sb), index
    assert rest_a == rest_b
