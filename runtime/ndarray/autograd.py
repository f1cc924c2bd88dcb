"""``sg.autograd``: MXNet's recording scopes over the tracer.

``record()`` turns tracing on (and training mode, unless ``train_mode=False``); what is
recorded is compiled when a value is read or ``backward()`` runs. ``pause()`` stops
recording; ``train_mode()``/``predict_mode()`` only switch the mode Dropout and BatchNorm
see.
"""

from __future__ import annotations

import numpy as np

from runtime.ndarray import state
from runtime.ndarray.ndarray import AutogradError, NDArray

__all__ = ["record", "pause", "train_mode", "predict_mode", "is_recording", "is_training",
           "set_recording", "set_training", "backward", "grad", "mark_variables"]

is_recording = state.is_recording
is_training = state.is_training
set_recording = state.set_recording
set_training = state.set_training


class _scope:
    """Set the recording and/or training flags for a ``with`` block, then restore them (a
    class, not a generator: it is entered every training step)."""

    __slots__ = ("recording", "training", "old")

    def __init__(self, recording, training):
        self.recording, self.training = recording, training

    def __enter__(self):
        st = state.STATE
        self.old = (st.recording, st.training)
        if self.recording is not None:
            st.recording = bool(self.recording)
        if self.training is not None:
            st.training = bool(self.training)

    def __exit__(self, *exc):
        st = state.STATE
        if self.recording is not None:
            st.recording = self.old[0]
        if self.training is not None:
            st.training = self.old[1]


def record(train_mode=True):
    """Record ops for backward(); the forward runs in training mode unless told otherwise."""
    return _scope(True, train_mode)


def pause(train_mode=False):
    return _scope(False, train_mode)


def train_mode():
    return _scope(None, True)


def predict_mode():
    return _scope(None, False)


def mark_variables(variables, gradients, grad_reqs="write"):
    if isinstance(variables, NDArray):
        variables, gradients = [variables], [gradients]
    reqs = [grad_reqs] * len(variables) if isinstance(grad_reqs, str) else list(grad_reqs)
    for var, grad, req in zip(variables, gradients, reqs):
        var._grad, var._grad_req = grad, req
    state.bump_epoch()  # a Parameter's array may have got a new gradient buffer


def backward(heads, head_grads=None, retain_graph=False, train_mode=True):
    """Backpropagate from one head or a list of heads (each with its head gradient, None
    for ones); the heads must come from one recorded graph."""
    from runtime.ndarray.runner import run

    if isinstance(heads, NDArray):
        heads, head_grads = [heads], [head_grads]
    heads = list(heads)
    head_grads = list(head_grads) if head_grads is not None else [None] * len(heads)
    traces = {id(h._trace) for h in heads}
    if any(h._trace is None for h in heads) or len(traces) != 1:
        raise AutogradError("backward(): every head must be computed inside one "
                            "autograd.record() graph")
    grads = [None if g is None else np.asarray(g, dtype=h._dtype).reshape(h.shape)
             for h, g in zip(heads, head_grads)]
    trace = heads[0]._trace
    run(trace, head=heads, head_grad=grads)
    for h in heads:
        h._trace, h._entry = None, None


def grad(heads, variables, head_grads=None, retain_graph=None, create_graph=False,
         train_mode=True):
    """Gradients of ``heads`` w.r.t. ``variables`` as new arrays (their .grad untouched)."""
    if create_graph:
        raise AutogradError("grad(create_graph=True) (higher-order gradients) is not "
                            "supported")
    single = isinstance(variables, NDArray)
    variables = [variables] if single else list(variables)
    saved = [(v._grad, v._grad_req) for v in variables]
    try:
        for var in variables:
            var._grad = NDArray(np.zeros(var.shape, var._dtype), var._ctx)
            var._grad_req = "write"
        backward(heads, head_grads, retain_graph, train_mode)
        result = [v._grad for v in variables]
    finally:
        for var, (g, req) in zip(variables, saved):
            var._grad, var._grad_req = g, req
    return result[0] if single else result
