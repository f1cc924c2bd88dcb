"""Training callbacks (``sg.callback``) with MXNet 1.x's exact log lines.

Batch-end callbacks receive a :data:`BatchEndParam`; epoch-end callbacks are called as
``cb(epoch, symbol, arg_params, aux_params)``. Everything logs through the root ``logging``
module at INFO, as MXNet does, so users' ``logging.basicConfig`` setups keep working.
"""

from __future__ import annotations

import logging
import math
import time
from collections import namedtuple

__all__ = [
    "BatchEndParam", "module_checkpoint", "do_checkpoint", "log_train_metric", "Speedometer",
    "ProgressBar", "LogValidationMetricsCallback",
]

BatchEndParam = namedtuple("BatchEndParams", ["epoch", "nbatch", "eval_metric", "locals"])


def module_checkpoint(mod, prefix, period=1, save_optimizer_states=False):
    """Epoch-end callback: ``mod.save_checkpoint(prefix, epoch+1)`` every ``period`` epochs."""
    period = int(max(1, period))

    def _callback(iter_no, sym=None, arg=None, aux=None):
        if (iter_no + 1) % period == 0:
            mod.save_checkpoint(prefix, iter_no + 1, save_optimizer_states)

    return _callback


def _is_rank0():
    """Only rank 0 writes checkpoints in distributed training (every rank holds the same)."""
    from runtime.kvstore.comm import current_rank

    return current_rank() == 0


def do_checkpoint(prefix, period=1):
    """Epoch-end callback saving ``prefix-%04d.params`` numbered epoch+1 (first epoch → 0001)."""
    period = int(max(1, period))

    def _callback(iter_no, sym, arg, aux):
        if (iter_no + 1) % period == 0 and _is_rank0():
            from runtime.checkpoint import save_checkpoint  # lazy: sibling module, avoids a cycle

            save_checkpoint(prefix, iter_no + 1, sym, arg, aux)

    return _callback


def log_train_metric(period, auto_reset=False):
    """Batch-end callback: ``Iter[%d] Batch[%d] Train-%s=%f`` every ``period`` batches."""

    def _callback(param):
        if param.nbatch % period == 0 and param.eval_metric is not None:
            for name, value in param.eval_metric.get_name_value():
                logging.info("Iter[%d] Batch[%d] Train-%s=%f",
                             param.epoch, param.nbatch, name, value)
            if auto_reset:
                param.eval_metric.reset_local()

    return _callback


class Speedometer:
    """Logs samples/sec (and the metric) every ``frequent`` batches; see module doc.

    The first call of an epoch (nbatch lower than the previous one) only starts the timer.
    With ``auto_reset`` the metric's *local* stats are reset after each log line.
    """

    def __init__(self, batch_size, frequent=50, auto_reset=True):
        self.batch_size = batch_size
        self.frequent = frequent
        self.init = False
        self.tic = 0.0
        self.last_count = 0
        self.auto_reset = auto_reset

    def __call__(self, param):
        count = param.nbatch
        if self.last_count > count:
            self.init = False
        self.last_count = count
        if not self.init:
            self.init = True
            self.tic = time.time()
            return
        if count % self.frequent != 0:
            return
        try:
            speed = self.frequent * self.batch_size / (time.time() - self.tic)
        except ZeroDivisionError:
            speed = float("inf")
        self._log(param, count, speed)
        self.tic = time.time()

    def _log(self, param, count, speed):
        if param.eval_metric is None:
            logging.info("Iter[%d] Batch [%d]\tSpeed: %.2f samples/sec",
                         param.epoch, count, speed)
            return
        name_value = param.eval_metric.get_name_value()
        pairs = tuple(x for pair in name_value for x in pair)
        tail = "\t%s=%f" * len(name_value)
        if self.auto_reset:
            param.eval_metric.reset_local()
            logging.info("Epoch[%d] Batch [%d-%d]\tSpeed: %.2f samples/sec" + tail,
                         param.epoch, count - self.frequent, count, speed, *pairs)
        else:
            logging.info("Epoch[%d] Batch [0-%d]\tSpeed: %.2f samples/sec" + tail,
                         param.epoch, count, speed, *pairs)


class ProgressBar:
    """Logs ``[====----] NN%\\r`` (filled = round(length·n/total), percent = ceil)."""

    def __init__(self, total, length=80):
        self.bar_len = length
        self.total = total

    def __call__(self, param):
        count = param.nbatch
        filled_len = int(round(self.bar_len * count / float(self.total)))
        percents = math.ceil(100.0 * count / float(self.total))
        prog_bar = "=" * filled_len + "-" * (self.bar_len - filled_len)
        logging.info("[%s] %s%s\r", prog_bar, percents, "%")


class LogValidationMetricsCallback:
    """eval_end_callback logging ``Epoch[%d] Validation-%s=%f`` per metric."""

    def __call__(self, param):
        if not param.eval_metric:
            return
        for name, value in param.eval_metric.get_name_value():
            logging.info("Epoch[%d] Validation-%s=%f", param.epoch, name, value)
