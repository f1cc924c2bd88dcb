"""One native call per step for the user's own loop: ``forward`` / ``forward_backward``
defer, ``update`` runs the step.

The Module tutorial's loop is ``forward(batch, is_train=True)``, ``update_metric``,
``backward()``, ``update()``: four Python calls, each a native call or numpy work. Here
``forward`` only loads the batch and records a :class:`Pending` step; ``backward`` marks
it; ``update_metric`` with a plain ``Accuracy`` folds into it; ``update`` runs it as one
call of the step driver (``runtime/native_step.py``: forward+backward phase, fused
update, the accuracy count), bitwise what the four calls compute.

Nothing observable may change, so every reader of what the deferred work would write
(outputs, gradients, aux states, the Dropout seed, the folded metric) and every writer of
what it reads (parameters, inputs) first *flushes*: runs the pending work exactly as the
step-by-step calls would have, in their order. Module calls :func:`flush` at the top of
each such method. The folded metric is the user's object: while its count is pending its
class is swapped for a twin whose every attribute access or assignment flushes first and
restores the class (:func:`guard`), so ``metric.get()``, ``metric.sum_metric`` or a reset
see exactly the step-by-step values. Without a folded metric the step counts the
accuracy ahead on the executor's own labels, for an ``update_metric`` right after
``update`` (``Module._add_counted``). Arrays handed out as views (``get_outputs``,
``get_input_grads``) could be read at any time, so a module that handed any out never
defers again.
"""

from __future__ import annotations

import numpy as np

from runtime import metric as M

__all__ = ["Pending", "FoldTarget", "flush", "guard", "release"]

_KEY = "_symgraph_pending_module"
_F32 = np.dtype(np.float32)


class Pending:
    """The loaded batch's training forward (and backward) not yet run.

    ``one_call``: the user called ``forward_backward`` (replayed as that one phase);
    ``metric`` / ``labels``: a folded Accuracy and the :class:`FoldTarget` holding a
    copy of the labels it was given;
    ``metric_late``: the metric was folded after ``backward`` (replay order)."""

    __slots__ = ("bound", "backward", "one_call", "metric", "labels", "metric_late")

    def __init__(self, bound, one_call):
        self.bound = bound
        self.backward = self.one_call = one_call
        self.metric = self.labels = None
        self.metric_late = False


def flush(module) -> None:
    """Run ``module``'s pending work as the step-by-step calls would have."""
    pending = module._pending
    if pending is None:
        return
    module._pending = None
    exe = pending.bound.exe
    if pending.one_call:
        exe.forward_backward()
    else:
        exe.forward(True)
    if pending.metric is not None and not pending.metric_late:
        _replay_metric(pending)
    if pending.backward and not pending.one_call:
        exe.backward()
    if pending.metric is not None and pending.metric_late:
        _replay_metric(pending)


def _replay_metric(pending) -> None:
    metric = pending.metric
    release(metric)
    bound = pending.bound
    metric.update_dict(dict(zip(bound.label_names, [pending.labels.labels])), bound.preds)


class FoldTarget:
    """What folding ``update_metric`` needs of one executor, looked up once: its one
    float32 ``(rows, classes)`` output and one label name, and the buffer the driver's
    accuracy count reads the given labels from (``address``)."""

    __slots__ = ("rows", "out_name", "label_name", "labels", "address", "own_address")

    def __init__(self, rows, out_name, label_name, own):
        self.rows, self.out_name, self.label_name = rows, out_name, label_name
        self.labels = np.zeros(rows, dtype=_F32)
        self.address = self.labels.ctypes.data
        #: the executor's own label array, when the count can read it (the count a step
        #: makes ahead for an update_metric after update, with the batch's labels)
        self.own_address = None if own is None else own.ctypes.data

    @staticmethod
    def of(bound):
        """The target for ``bound``, or None when no update_metric on it can fold."""
        outputs = bound.exe.outputs
        if len(outputs) != 1 or len(bound.label_names) != 1:
            return None
        out = outputs[0]
        if out.dtype != _F32 or out.ndim != 2:
            return None
        rows = out.shape[0]
        own = bound.label[0] if len(bound.label) == 1 else None
        if own is not None and (own.dtype != _F32 or own.shape != (rows,)
                                or not own.flags.c_contiguous):
            own = None
        return FoldTarget(rows, next(iter(bound.preds)), bound.label_names[0], own)

    def accepts(self, metric, labels) -> bool:
        """True when ``update_metric(metric, labels)`` is what the driver's accuracy count
        computes: a plain ``Accuracy`` on axis 1 reading this output and label, given one
        float32 label vector of the batch's rows (anything else is updated in numpy)."""
        if type(metric) is not M.Accuracy or metric.axis != 1:
            return False
        if type(labels) not in (list, tuple) or len(labels) != 1:
            return False
        label = labels[0]
        if type(label) is not np.ndarray or label.dtype != _F32 or label.shape != (self.rows,):
            return False
        names = metric.output_names, metric.label_names
        return names == (None, None) or (names[0] in (None, [self.out_name])
                                         and names[1] in (None, [self.label_name]))


# ----------------------------------------------------------------------- the metric guard
_TWINS: dict = {}  # metric class -> its guarding twin
_BASES: dict = {}  # twin -> the metric class


def guard(metric, module) -> None:
    """Until :func:`release`, any use of ``metric`` first flushes ``module``."""
    cls = type(metric)
    twin = _TWINS.get(cls)
    if twin is None:
        twin = _TWINS[cls] = _twin(cls)
        _BASES[twin] = cls
    object.__getattribute__(metric, "__dict__")[_KEY] = module
    object.__setattr__(metric, "__class__", twin)


def release(metric):
    """Restore ``metric``'s own class; returns the module it waited for (or None)."""
    base = _BASES.get(type(metric))
    if base is None:
        return None
    object.__setattr__(metric, "__class__", base)
    return object.__getattribute__(metric, "__dict__").pop(_KEY, None)


def _touched(metric) -> None:
    module = release(metric)
    if module is not None:
        flush(module)


def _twin(cls):
    def __getattribute__(self, name):
        _touched(self)
        return getattr(self, name)

    def __setattr__(self, name, value):
        _touched(self)
        setattr(self, name, value)

    def __delattr__(self, name):
        _touched(self)
        delattr(self, name)

    return type(cls.__name__, (cls,), {
        "__getattribute__": __getattribute__, "__setattr__": __setattr__,
        "__delattr__": __delattr__, "__module__": cls.__module__,
        "__qualname__": cls.__qualname__, "__doc__": cls.__doc__})
