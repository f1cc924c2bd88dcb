"""Compiled epochs: ``Module.fit`` over an in-memory ``NDArrayIter`` runs its batches in
native code, returning to Python only where a callback or the logger needs it.

The iterator keeps its own order: ``reset()`` shuffles (numpy's global RNG, exactly as
always) into row numbers, so the epoch's regular batches are runs of rows of the
iterator's arrays, gathered by those numbers. Those run as runs of native steps
(``runtime/native_step.py``: gather rows, forward+backward, fused update, metric); the
iterator's cursor is then moved as its ``next()`` would have moved it. Irregular batches
(the rolled-over head of a ``roll_over`` epoch, the padded tail of ``pad``) and the end of
the epoch go through the iterator's own ``next()`` and fit's ordinary step, so pad,
discard and roll_over (and the cached tail for the next epoch) are the iterator's own.

Batch-end callbacks: ``Speedometer`` only needs to run at the first batch of the epoch,
at multiples of its ``frequent`` and at the last batch (at other batches it only records
the batch number, which the next call overwrites), so runs stop there and it is called
with the metric brought up to date. Any other callback, a monitor, another iterator or a
metric the driver cannot accumulate: ``None`` is returned and fit runs its Python loop.
"""

from __future__ import annotations

import os

import numpy as np

from runtime import metric as _metric
from runtime.base_module import BaseModule, _as_list
from runtime.callback import BatchEndParam, LogValidationMetricsCallback, Speedometer
from runtime.io import NDArrayIter, _new_batch
from runtime.native_step import NativeScore, NativeStep

__all__ = ["run_epoch", "run_score"]

#: False (or the env var SYMGRAPH_COMPILED_EPOCH=0) forces fit's Python loop.
ENABLED = os.environ.get("SYMGRAPH_COMPILED_EPOCH", "1") != "0"
#: At most this many steps per native run (bounds the planned-scalar and pick buffers).
MAX_RUN = 4096


def run_epoch(module, train_data, eval_metric, epoch, batch_end_callback, monitor):
    """One epoch of fit, compiled; the metric's global (name, value) list, or None when
    this epoch must take fit's Python loop (nothing has been run then)."""
    if not ENABLED:
        return None
    callbacks = [] if batch_end_callback is None else _as_list(batch_end_callback)
    plan = _Plan.make(module, train_data, eval_metric, callbacks, monitor)
    if plan is None:
        return None
    eval_metric.reset()
    return plan.run(epoch, callbacks)


class _Plan:
    def __init__(self, module, it, metric, runner, native_metric, sources, freqs):
        self.module, self.it, self.metric = module, it, metric
        self.runner, self.native_metric = runner, native_metric
        self.sources, self.freqs = sources, freqs

    @staticmethod
    def make(module, it, metric, callbacks, monitor):
        if monitor is not None or type(it) is not NDArrayIter or not it._fast:
            return None
        if not _plain_module(module) or any(type(cb) is not Speedometer for cb in callbacks):
            return None
        freqs = [cb.frequent for cb in callbacks]
        if any(type(f) is not int or f < 1 for f in freqs):
            return None
        if module._bound is None or not module.binded or not module.optimizer_initialized:
            return None
        bound = _activate_for(module, it)
        sources = _sources(bound, it)
        if sources is None:
            return None
        runner = NativeStep.of(module, bound)
        if runner is None:
            return None
        native_metric = runner.metric(metric, runs=True)
        if native_metric is None or not native_metric.labels_in_range(it._label_arrays[0]):
            return None
        if callbacks and not _regular(it, it.cursor + it.batch_size):
            return None  # MXNet's loop raises on an empty epoch: let it
        return _Plan(module, it, metric, runner, native_metric, sources, freqs)

    def run(self, epoch, callbacks):
        it, metric, bs = self.it, self.metric, self.it.batch_size
        nbatch, pending, name_values = 0, None, None
        while True:
            start = it.cursor + bs
            if pending is None and _regular(it, start):
                count = min((it.num_data - bs - start) // bs + 1, self._until_call(nbatch),
                            MAX_RUN)
                self.runner.run(self.sources, start, count, self.native_metric, it._order)
                it.cursor = start + (count - 1) * bs
                last = nbatch + count - 1
            else:
                batch = pending if pending is not None else _next(it)
                if batch is None:
                    break
                pending = None
                self.module._train_step(batch, metric)
                last = nbatch
            end = False
            if not _regular(it, it.cursor + bs):
                pending = _next(it)
                end = pending is None
            if end:
                name_values = self.module._epoch_name_values(metric)
            if callbacks and (end or self._calls_at(last)):
                param = BatchEndParam(epoch=epoch, nbatch=last, eval_metric=metric,
                                      locals=locals())
                for callback in callbacks:
                    callback(param)
            nbatch = last + 1
            if end:
                break
        if name_values is None:
            name_values = self.module._epoch_name_values(metric)
        return name_values

    def _calls_at(self, nbatch) -> bool:
        return nbatch == 0 or any(nbatch % f == 0 for f in self.freqs)

    def _until_call(self, nbatch) -> int:
        """Steps from ``nbatch`` up to and including the next batch a callback needs."""
        if not self.freqs or self._calls_at(nbatch):
            return 1 if self.freqs else MAX_RUN
        return min(f - nbatch % f for f in self.freqs) + 1


def _plain_module(module) -> bool:
    """Module itself (no subclass hooks into the step), single device, local kvstore."""
    from runtime.module import Module

    cls = type(module)
    return (module._fast_step and cls._train_step is Module._train_step
            and cls.prepare is BaseModule.prepare and module._dist is None
            and module._monitor is None)


def _activate_for(module, it):
    """The executor for ``it``'s batches, made the active one as the first batch's
    ``_load`` would (after a score with another batch size, say): the same switch, once."""
    bs = it.batch_size
    if it.num_data >= bs and [(bs,) + a.shape[1:] for a in it._data_arrays] \
            != module._bound.shapes:
        module._load(_new_batch([it._rows(a, 0, bs) for a in it._data_arrays],
                                [it._rows(a, 0, bs) for a in it._label_arrays], 0, None))
    return module._bound


def _regular(it, cursor) -> bool:
    """A batch ``next()`` would cut as one run of epoch rows (no pad, no roll-over)."""
    return 0 <= cursor <= it.num_data - it.batch_size


def _next(it):
    try:
        return it.next()
    except StopIteration:
        return None


def _sources(bound, it):
    """[(executor input array, iterator array)] as ``Module._load`` pairs them, when each
    batch's copy is a plain byte copy of contiguous rows; else None."""
    data = list(zip(bound.data, it._data_arrays))
    label = list(zip(bound.label, it._label_arrays)) if it._label_arrays else []
    if len(data) != len(bound.data) or len(data) != len(it._data_arrays):
        return None
    if label and (len(bound.label) != len(it._label_arrays)):
        return None
    if not it._label_arrays:
        return None  # the metric needs labels
    for dst, src in data + label:
        if not isinstance(src, np.ndarray) or src.dtype != dst.dtype \
                or not src.flags.c_contiguous or src.shape[1:] != dst.shape[1:] \
                or dst.shape[0] != it.batch_size or not dst.flags.c_contiguous:
            return None
    return data + label


def run_score(module, eval_data, eval_metric, num_batch, batch_end_callback,
              score_end_callback, reset, epoch):
    """``score`` over an in-memory ``NDArrayIter`` as runs of native inference forwards:
    the metric's (name, value) list, or None (nothing done) for BaseModule's loop."""
    if not ENABLED or batch_end_callback is not None or not _plain_scoring(module) \
            or num_batch == 0:
        return None
    ends = [] if score_end_callback is None else _as_list(score_end_callback)
    if any(type(cb) is not LogValidationMetricsCallback for cb in ends):
        return None
    if type(eval_data) is not NDArrayIter or not eval_data._fast:
        return None
    runner = NativeScore.of(module, _activate_for(module, eval_data))
    if runner is None:
        return None
    if not isinstance(eval_metric, _metric.EvalMetric):
        eval_metric = _metric.create(eval_metric)
    native_metric = runner.metric(eval_metric)
    if native_metric is None:
        return None
    if reset:
        eval_data.reset()
    sources = _sources(module._bound, eval_data)
    if sources is None or not native_metric.labels_in_range(eval_data._label_arrays[0]):
        return BaseModule.score(module, eval_data, eval_metric, num_batch,
                                score_end_callback=score_end_callback, reset=False,
                                epoch=epoch)
    eval_metric.reset()
    actual_num_batch = _score_batches(module, runner, eval_data, eval_metric, native_metric,
                                      sources, num_batch)
    for callback in ends:
        callback(BatchEndParam(epoch=epoch, nbatch=actual_num_batch, eval_metric=eval_metric,
                               locals=locals()))
    return eval_metric.get_name_value()


def _score_batches(module, runner, it, metric, native_metric, sources, num_batch) -> int:
    """BaseModule.score's loop: native runs over regular batches, ``next()`` for the rest
    (including the one fetch its ``enumerate`` makes before stopping at ``num_batch``)."""
    bs, nbatch = it.batch_size, 0
    while num_batch is None or nbatch < num_batch:
        start = it.cursor + bs
        if _regular(it, start):
            count = min((it.num_data - bs - start) // bs + 1, MAX_RUN)
            if num_batch is not None:
                count = min(count, num_batch - nbatch)
            runner.run(sources, start, count, native_metric, it._order)
            it.cursor = start + (count - 1) * bs
            nbatch += count
            continue
        batch = _next(it)
        if batch is None:
            return nbatch
        module.forward(batch, is_train=False)
        module.update_metric(metric, batch.label)
        nbatch += 1
    _next(it)
    return nbatch


def _plain_scoring(module) -> bool:
    from runtime.module import Module

    cls = type(module)
    return (module.binded and module.params_initialized and cls.forward is Module.forward
            and cls.update_metric is Module.update_metric and cls.prepare is BaseModule.prepare
            and cls.score is Module.score and module._bound is not None)
