"""``BaseModule``: MXNet 1.x's high-level training API (fit / score / predict) over the
intermediate-level methods a concrete module provides (bind, init_params, forward, ...).

The control flow, log lines and callback arguments follow ``mx.module.BaseModule``
exactly (see mxnet_compat.md §5.5), including its quirks: padded samples are counted by
the metrics, ``train_data.reset()`` runs at the *end* of an epoch, ``fit`` does not pass
``force_init`` to ``init_optimizer``.
"""

from __future__ import annotations

import logging
import time
import warnings

import numpy as np

from runtime import metric as _metric
from runtime.callback import BatchEndParam
from runtime.initializer import Uniform
from runtime.io import DataBatch, DataDesc, DataIter
from runtime.ndarray.ndarray import NDArray

__all__ = ["BaseModule", "check_input_names", "parse_data_desc", "DEFAULT_INITIALIZER"]

#: MXNet's default for fit/init_params; initializers keep no state, so one instance is shared.
DEFAULT_INITIALIZER = Uniform(0.01)


def _as_list(obj):
    """A callback argument may be one callable or a list of them."""
    return obj if isinstance(obj, list) else [obj]


def check_input_names(symbol, names, typename, throw):
    """Every name must be an argument; the hint lists arguments that look like inputs."""
    args = symbol.list_arguments()
    for name in names:
        if name in args:
            continue
        candidates = [a for a in args if not a.endswith(("_weight", "_bias", "_gamma", "_beta"))]
        msg = (f"\033[91mYou created Module with Module(..., {typename}_names={list(names)}) "
               f"but input with name '{name}' is not found in symbol.list_arguments(). "
               "Did you mean one of:\n\t" + "\n\t".join(candidates) + "\033[0m")
        if throw:
            raise ValueError(msg)
        warnings.warn(msg, stacklevel=3)


def _check_names_match(names, descs, kind, throw):
    actual = [d[0] for d in descs]
    if sorted(names) != sorted(actual):
        msg = (f"Data provided by {kind}_shapes don't match names specified by {kind}_names "
               f"({descs} vs. {list(names)})")
        if throw:
            raise ValueError(msg)
        warnings.warn(msg, stacklevel=4)


def as_descs(shapes):
    return [s if isinstance(s, DataDesc) else DataDesc(*s) for s in shapes]


def parse_data_desc(data_names, label_names, data_shapes, label_shapes):
    """DataDescs from (name, shape) pairs; wrong data names raise, wrong labels only warn."""
    data_shapes = as_descs(data_shapes)
    _check_names_match(data_names, data_shapes, "data", True)
    if label_shapes is not None:
        label_shapes = as_descs(label_shapes)
        _check_names_match(label_names, label_shapes, "label", False)
    else:
        _check_names_match(label_names, [], "label", False)
    return data_shapes, label_shapes


class BaseModule:
    """Shared state flags and the high-level API; subclasses implement the computation."""

    def __init__(self, logger=logging):
        self.logger = logger
        self.binded = False
        self.for_training = False
        self.inputs_need_grad = False
        self.params_initialized = False
        self.optimizer_initialized = False
        self._symbol = None
        self._total_exec_bytes = 0
        self.history: list = []

    # ---- high level: one step --------------------------------------------------------------
    def forward_backward(self, data_batch):
        """A training forward then backward (Module overrides it with one native call)."""
        self.forward(data_batch, is_train=True)
        self.backward()

    def _train_step(self, data_batch, eval_metric):
        """One fit iteration; Module replaces it with a fused fast path when it can."""
        self.forward_backward(data_batch)
        self.update()
        self.update_metric(eval_metric, data_batch.label)

    def prepare(self, data_batch, sparse_row_id_fn=None):
        """Dense parameters only: nothing to pull before a batch."""

    # ---- score / predict -------------------------------------------------------------------
    def score(self, eval_data, eval_metric, num_batch=None, batch_end_callback=None,
              score_end_callback=None, reset=True, epoch=0, sparse_row_id_fn=None):
        """Evaluate ``eval_metric`` over ``eval_data``; returns its local (name, value) list."""
        assert self.binded and self.params_initialized
        if reset:
            eval_data.reset()
        if not isinstance(eval_metric, _metric.EvalMetric):
            eval_metric = _metric.create(eval_metric)
        eval_metric.reset()
        actual_num_batch = 0
        for nbatch, eval_batch in enumerate(eval_data):
            if num_batch is not None and nbatch == num_batch:
                break
            self.prepare(eval_batch, sparse_row_id_fn=sparse_row_id_fn)
            self.forward(eval_batch, is_train=False)
            self.update_metric(eval_metric, eval_batch.label)
            if batch_end_callback is not None:
                param = BatchEndParam(epoch=epoch, nbatch=nbatch, eval_metric=eval_metric,
                                      locals=locals())
                for callback in _as_list(batch_end_callback):
                    callback(param)
            actual_num_batch += 1
        if score_end_callback:
            param = BatchEndParam(epoch=epoch, nbatch=actual_num_batch,
                                  eval_metric=eval_metric, locals=locals())
            for callback in _as_list(score_end_callback):
                callback(param)
        return eval_metric.get_name_value()

    def iter_predict(self, eval_data, num_batch=None, reset=True, sparse_row_id_fn=None):
        """Yield ``(outputs without the pad, nbatch, batch)``; outputs are fresh copies."""
        assert self.binded and self.params_initialized
        if reset:
            eval_data.reset()
        for nbatch, eval_batch in enumerate(eval_data):
            if num_batch is not None and nbatch == num_batch:
                break
            self.prepare(eval_batch, sparse_row_id_fn=sparse_row_id_fn)
            self.forward(eval_batch, is_train=False)
            pad = eval_batch.pad or 0
            outputs = [NDArray(np.asarray(out)[0:out.shape[0] - pad].copy())
                       for out in self._peek_outputs()]
            yield outputs, nbatch, eval_batch

    def _peek_outputs(self):
        """``get_outputs()`` for callers that copy the values at once (Module: handing
        these out does not stop it deferring steps, runtime/deferred_step.py)."""
        return self.get_outputs()

    def predict(self, eval_data, num_batch=None, merge_batches=True, reset=True,
                always_output_list=False, sparse_row_id_fn=None):
        """Outputs over a DataIter (pad removed), or the first output for one array."""
        assert self.binded and self.params_initialized
        if isinstance(eval_data, np.ndarray) or hasattr(eval_data, "asnumpy"):
            self.forward(DataBatch([np.asarray(eval_data)]))
            return self._peek_outputs()[0].copy()
        if not isinstance(eval_data, DataIter):
            raise ValueError("eval_data must be of type NDArray or DataIter")
        output_list = [outs for outs, _, _ in
                       self.iter_predict(eval_data, num_batch, reset, sparse_row_id_fn)]
        if not output_list or not merge_batches:
            return output_list
        num_outputs = len(output_list[0])
        for outs in output_list:
            assert len(outs) == num_outputs, ("Cannot merge batches, as num of outputs is not "
                                              "the same in mini-batches. Maybe bucketing is used?")
        merged = [NDArray(np.concatenate([np.asarray(outs[i]) for outs in output_list]))
                  for i in range(num_outputs)]
        if num_outputs == 1 and not always_output_list:
            return merged[0]
        return merged

    # ---- fit -------------------------------------------------------------------------------
    def fit(self, train_data, eval_data=None, eval_metric="acc", epoch_end_callback=None,
            batch_end_callback=None, kvstore="local", optimizer="sgd",
            optimizer_params=(("learning_rate", 0.01),), eval_end_callback=None,
            eval_batch_end_callback=None, initializer=DEFAULT_INITIALIZER, arg_params=None,
            aux_params=None, allow_missing=False, force_rebind=False, force_init=False,
            begin_epoch=0, num_epoch=None, validation_metric=None, monitor=None,
            sparse_row_id_fn=None, history=None):
        """Train for epochs ``[begin_epoch, num_epoch)`` (MXNet's fit, argument for argument).

        ``history`` (extension): a list that receives the same per-epoch dicts as
        ``self.history`` ({epoch, train, validation, time}).
        """
        assert num_epoch is not None, "please specify number of epochs"
        self.bind(data_shapes=train_data.provide_data, label_shapes=train_data.provide_label,
                  for_training=True, force_rebind=force_rebind)
        if monitor is not None:
            self.install_monitor(monitor)
        self.init_params(initializer=initializer, arg_params=arg_params,
                         aux_params=aux_params, allow_missing=allow_missing,
                         force_init=force_init)
        self.init_optimizer(kvstore=kvstore, optimizer=optimizer,
                            optimizer_params=optimizer_params)
        if eval_data:
            self.check_data_fits(eval_data)
        if validation_metric is None:
            validation_metric = eval_metric
        if not isinstance(eval_metric, _metric.EvalMetric):
            eval_metric = _metric.create(eval_metric)
        for epoch in range(begin_epoch, num_epoch):
            tic = time.time()
            train_vals = self._fit_epoch(train_data, eval_metric, epoch, batch_end_callback,
                                         monitor, sparse_row_id_fn)
            record = self._end_epoch(epoch, tic, train_vals, epoch_end_callback)
            if eval_data:
                res = self.score(eval_data, validation_metric,
                                 score_end_callback=eval_end_callback,
                                 batch_end_callback=eval_batch_end_callback, epoch=epoch)
                for name, val in res:
                    self.logger.info("Epoch[%d] Validation-%s=%f", epoch, name, val)
                record["validation"] = dict(res)
            self._record_history(record, history)
            train_data.reset()

    def _fit_epoch(self, train_data, eval_metric, epoch, batch_end_callback, monitor,
                   sparse_row_id_fn):
        """One pass over ``train_data``; returns the metric's global (name, value) list."""
        eval_metric.reset()
        if batch_end_callback is not None or monitor is not None:
            return self._fit_epoch_general(train_data, eval_metric, epoch, batch_end_callback,
                                           monitor, sparse_row_id_fn)
        step = self._train_step
        prepare = self.prepare
        for data_batch in train_data:
            step(data_batch, eval_metric)
            prepare(data_batch, sparse_row_id_fn=sparse_row_id_fn)
        return self._epoch_name_values(eval_metric)

    def _fit_epoch_general(self, train_data, eval_metric, epoch, batch_end_callback, monitor,
                           sparse_row_id_fn):
        """MXNet's loop verbatim (pre-fetch, end-of-epoch flag, callbacks with locals())."""
        nbatch = 0
        data_iter = iter(train_data)
        end_of_batch = False
        next_data_batch = next(data_iter)
        eval_name_vals = []
        while not end_of_batch:
            data_batch = next_data_batch
            if monitor is not None:
                monitor.tic()
            self._train_step(data_batch, eval_metric)
            try:
                next_data_batch = next(data_iter)
                self.prepare(next_data_batch, sparse_row_id_fn=sparse_row_id_fn)
            except StopIteration:
                end_of_batch = True
            if monitor is not None:
                monitor.toc_print()
            if end_of_batch:
                eval_name_vals = self._epoch_name_values(eval_metric)
            if batch_end_callback is not None:
                param = BatchEndParam(epoch=epoch, nbatch=nbatch, eval_metric=eval_metric,
                                      locals=locals())
                for callback in _as_list(batch_end_callback):
                    callback(param)
            nbatch += 1
        return eval_name_vals

    def _end_epoch(self, epoch, tic, train_vals, epoch_end_callback):
        """Log the epoch, sync params, run the epoch-end callbacks; returns the history row."""
        for name, val in train_vals:
            self.logger.info("Epoch[%d] Train-%s=%f", epoch, name, val)
        cost = time.time() - tic
        self.logger.info("Epoch[%d] Time cost=%.3f", epoch, cost)
        arg_params, aux_params = self.get_params()
        self.set_params(arg_params, aux_params)
        if epoch_end_callback is not None:
            for callback in _as_list(epoch_end_callback):
                callback(epoch, self.symbol, arg_params, aux_params)
        return {"epoch": epoch, "train": dict(train_vals), "validation": {}, "time": cost}

    def _record_history(self, record, history):
        self.history.append(record)
        if history is not None:
            history.append(record)

    def _epoch_name_values(self, eval_metric):
        """The epoch's train metric (Module sums it over workers in distributed training)."""
        return eval_metric.get_global_name_value()

    # ---- properties every module has ----------------------------------------------------------
    @property
    def symbol(self):
        """The symbol this module computes."""
        return self._symbol

    def check_data_fits(self, data_iter):
        """Raise before training when ``data_iter``'s batches cannot run on this module
        (Module: only the batch size may differ from the bound shapes)."""

    def install_monitor(self, mon):
        raise NotImplementedError()

    def bind(self, *args, **kwargs):
        raise NotImplementedError()

    def init_params(self, *args, **kwargs):
        raise NotImplementedError()

    def init_optimizer(self, *args, **kwargs):
        raise NotImplementedError()

    def set_params(self, arg_params, aux_params, allow_missing=False, force_init=True,
                   allow_extra=False):
        """``init_params`` without an initializer (MXNet's BaseModule.set_params)."""
        self.init_params(initializer=None, arg_params=arg_params, aux_params=aux_params,
                         allow_missing=allow_missing, force_init=force_init,
                         allow_extra=allow_extra)
