"""What Module.fit and gluon.Trainer need from a distributed kvstore, in bulk calls.

``DataParallel`` wraps a :class:`DistKVStore`: it checks at start that every rank holds
the same graph and parameter shapes, copies rank 0's parameters to all ranks, sums
gradients in one allreduce per dtype per step (the executor's flat gradient bucket when
it has one) and sums metric counters so rank 0 reports the global batch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import weakref

import numpy as np

from runtime.kvstore.comm import StepTiming, spare_core
from runtime.overlap import MAX_PARTS, overlapped_step

#: Sub-phases of an overlapped step at most (``SYMGRAPH_OVERLAP_PARTS``; 1 turns the
#: overlap off: one allreduce of the whole bucket after the whole backward pass), and the
#: smallest piece in bytes (``SYMGRAPH_OVERLAP_MIN_BYTES``; default: the splitter's), and
#: microseconds between MPI progress polls during backward (``SYMGRAPH_OVERLAP_POLL_US``;
#: 0: no progress thread, the pieces move at the final wait; default: 200 where a core
#: is free for the thread, else 0: on a machine whose cores all compute, its polls cost
#: the step more than they save, docs/distributed.md).
PARTS_ENV = "SYMGRAPH_OVERLAP_PARTS"
MIN_BYTES_ENV = "SYMGRAPH_OVERLAP_MIN_BYTES"
POLL_ENV = "SYMGRAPH_OVERLAP_POLL_US"
DEFAULT_POLL_US = 200
#: Pieces smaller than this go out eagerly (MPI copies them at the start): polling for
#: them only takes CPU from the step (measured on the MNIST MLP, docs/distributed.md).
#: ``SYMGRAPH_OVERLAP_POLL_MIN_BYTES`` overrides it.
POLL_MIN_BYTES_ENV = "SYMGRAPH_OVERLAP_POLL_MIN_BYTES"
PROGRESS_MIN_BYTES = 64 * 1024


def _env_int(name, default):
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        logging.warning("%s=%r is not an integer; using %s", name, raw, default)
        return default


class DataParallel:
    """Bulk collectives over one distributed kvstore (``kv.num_workers`` may be 1)."""

    def __init__(self, kv):
        self.kv = kv
        self.rank = kv.rank
        self.num_workers = kv.num_workers
        self.parts = _env_int(PARTS_ENV, MAX_PARTS)
        self.min_bytes = _env_int(MIN_BYTES_ENV, None)
        self.poll = _env_int(POLL_ENV, DEFAULT_POLL_US if spare_core() else 0) * 1e-6
        self.poll_min_bytes = _env_int(POLL_MIN_BYTES_ENV, PROGRESS_MIN_BYTES)
        self._steps = weakref.WeakKeyDictionary()  # executor -> OverlappedStep or None

    def start(self, graph_text: str, params: dict, aux: dict):
        """Same model on every rank, then rank 0's values everywhere."""
        description = {"graph": hashlib.sha256(graph_text.encode()).hexdigest()[:16]}
        description.update({f"parameter {n}": list(np.shape(a)) for n, a in params.items()})
        description.update({f"auxiliary state {n}": list(np.shape(a)) for n, a in aux.items()})
        self.kv.check_same_model(description, "graph or parameter shape")
        arrays = [params[n] for n in sorted(params)] + [aux[n] for n in sorted(aux)]
        self.kv.broadcast_arrays_(arrays)

    def reduce_grads(self, grads, bucket=None):
        """Sum gradients over workers in place."""
        self.kv.allreduce_arrays_(grads, bucket)

    def forward_backward_reduced(self, exe, grads):
        """``exe.forward_backward()`` with this step's gradients summed over the workers.

        With several workers and an executor whose program splits (runtime/overlap.py),
        each piece of the gradient bucket is allreduced non-blocking as soon as the
        sub-phase that completes it has run, overlapping the rest of the backward pass;
        otherwise the whole bucket is reduced after it (``grads()``: the gradient list,
        for executors without a bucket)."""
        step = self._step_for(exe)
        tic = time.perf_counter()
        if step is None:
            exe.forward_backward()
            computed = started = time.perf_counter()
            self.reduce_grads(grads(), getattr(exe, "grad_bucket", None))
        else:
            computed, started = self._overlapped(exe, step)
        comm = getattr(self.kv, "comm", None)
        if comm is not None and self.num_workers > 1:
            done = time.perf_counter()
            comm.step_timings.append(StepTiming(computed - tic, done - computed,
                                                done - started))

    def _overlapped(self, exe, step):
        """Run the sub-phases, starting each piece's allreduce after the sub-phase that
        completes it (a background thread keeps MPI progressing them, see
        ``comm.Progress``); wait for all. Returns when backward ended and the first
        allreduce started."""
        comm, requests, started = self.kv.comm, [], []
        polled = self.poll > 0 and step.early_bytes >= self.poll_min_bytes
        progress = comm.progress_thread(self.poll) if polled else None

        def ready(k):
            if not started and step.pieces[k]:
                started.append(time.perf_counter())
            if progress is None:
                requests.extend(comm.start_allreduce_(piece) for piece in step.pieces[k])
                return
            with progress.lock:
                requests.extend(comm.start_allreduce_(piece) for piece in step.pieces[k])
            progress.watch(requests)

        try:
            exe.forward_backward_parts(step, ready)
        finally:
            if progress is not None:
                progress.pause()
        computed = time.perf_counter()
        comm.wait_all(requests)
        comm.overlapped_steps += 1
        return computed, started[0]

    def _step_for(self, exe):
        if self.num_workers == 1 or self.parts < 2 or getattr(self.kv, "comm", None) is None:
            return None
        if exe not in self._steps:
            self._steps[exe] = overlapped_step(exe, self.parts, self.min_bytes)
        return self._steps[exe]

    def reduce_name_value(self, metric):
        """The metric's global (name, value) list over all workers' counters."""
        leaves = list(_leaves(metric))
        if self.num_workers == 1 or not leaves:
            return metric.get_global_name_value()
        fields = ("sum_metric", "num_inst", "global_sum_metric", "global_num_inst")
        saved = [[getattr(m, f) for f in fields] for m in leaves]
        counts = np.array(saved, dtype=np.float64)
        self.kv.allreduce_arrays_([counts])
        try:
            for m, row in zip(leaves, counts):
                for f, v in zip(fields, row):
                    setattr(m, f, v)
            return metric.get_global_name_value()
        finally:
            for m, row in zip(leaves, saved):
                for f, v in zip(fields, row):
                    setattr(m, f, v)


def _leaves(metric):
    children = getattr(metric, "metrics", None)
    if isinstance(children, list):
        for child in children:
            yield from _leaves(child)
    elif all(hasattr(metric, f) for f in ("sum_metric", "num_inst")):
        yield metric


class RankLogger:
    """Ranks other than 0 keep warnings and errors but drop info lines, so that the
    epoch log is written once, by rank 0, for the global batch."""

    def __init__(self, logger, rank):
        self._logger = logger
        self._rank = rank

    def info(self, *args, **kwargs):
        if self._rank == 0:
            self._logger.info(*args, **kwargs)

    def debug(self, *args, **kwargs):
        if self._rank == 0:
            self._logger.debug(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._logger, name)


def quiet_logger(logger, rank):
    if rank == 0 or isinstance(logger, RankLogger):
        return logger
    return RankLogger(logger or logging, rank)
