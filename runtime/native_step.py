"""One native call per training step (and per run of steps) for ``Module``.

``Module._train_step`` today makes a ctypes call for ``forward_backward``, fills the fused
update's scalar table in Python and makes a second call, then updates the metric in
numpy. Here the three run in one call of the generic step driver
(``codegen/step_driver.py``), with results bitwise those of the step-by-step path:

* the optimizer's scalars are computed by the very code ``FusedUpdater.step`` runs
  (``_StepScalars``), before the native call. For a run of ``n`` steps
  (``runtime/compiled_epoch.py``) Python plans all ``n`` steps' scalars first, calling
  the same code once per step, and the driver copies each planned table in just before
  its step's update. The one shortcut is exact by construction: when the grouped path's
  memo would return "unchanged" for every remaining step (no lr scheduler, scalars that
  do not depend on the update count, multipliers unchanged), the counts are advanced by
  ``n`` at once, which is what ``n`` calls would leave;
* the metric: ``Accuracy`` (argmax of the row, first maximum or NaN wins, as numpy; the
  label truncated to an integer) is counted natively and added to the metric as the
  integers Python would add; ``CrossEntropy``/``NegativeLogLikelihood`` (runs only) pick
  each row's probability natively and Python takes numpy's ``log`` and ``sum`` per batch
  exactly as the metric does. Composites of those work too. Any other metric is updated
  in Python after the call.

Anything else (device groups, a monitor, head gradients, a distributed kvstore, an
optimizer without a fused rule, labels not float32) takes the step-by-step path.
"""

from __future__ import annotations

import os

import numpy as np

from codegen import step_driver as D
from runtime import metric as M
from runtime.executor import Executor
from symgraph.errors import SymgraphError

__all__ = ["NativeStep", "NativeScore", "train_step", "ENABLED"]

#: False (or the env var SYMGRAPH_NATIVE_STEP=0) forces the step-by-step path.
ENABLED = os.environ.get("SYMGRAPH_NATIVE_STEP", "1") != "0"

_F32 = np.dtype(np.float32)
_PICK_METRICS = (M.CrossEntropy, M.NegativeLogLikelihood)


def train_step(module, bound, data_batch, eval_metric) -> bool:
    """Run fit's step on the loaded batch as one native call; False (nothing done) when
    the step must take the step-by-step path."""
    runner = NativeStep.of(module, bound)
    if runner is None:
        return False
    runner.step(data_batch, eval_metric)
    return True


class NativeStep:
    """The driver's context for one executor and its fused updater."""

    def __init__(self, module, bound):
        exe, fused = bound.exe, bound.fused
        self.module, self.bound, self.fused = module, bound, fused
        self.ctx = np.zeros(D.CTX_SLOTS, dtype=np.int64)
        ctx = self.ctx
        ctx[D.PHASE] = exe.compiled.program.library.addresses["forward_backward"]
        ctx[D.ARENA] = exe._address
        ctx[D.EXT] = exe._ext_address
        ctx[D.UPDATE] = fused._library.addresses["update"]
        ctx[D.UTABLE] = fused._table_address
        ctx[D.SEED] = 0 if exe._seed is None else exe._seed.ctypes.data
        self._counter = np.zeros(1, dtype=np.int64)
        self._tables = _Tables(fused)
        self._metrics = {}  # runs (bool) -> (the metric, its _NativeMetric or None)
        self._step_ctx = self._step_arrays = None
        self._user_ctx = None
        self._run, self._library = D.driver()
        self._ctx_address = ctx.ctypes.data

    @staticmethod
    def of(module, bound):
        """The runner of ``bound`` (built once), or None when it cannot run natively."""
        if not ENABLED or type(bound.exe) is not Executor or bound.exe._needs_head_grads \
                or module._dist is not None or module._monitor is not None:
            return None
        module._step_for(bound)
        if bound.fused is None:
            return None
        runner = module._native_steps.get(id(bound))
        if runner is None or runner.bound is not bound or runner.fused is not bound.fused:
            runner = NativeStep(module, bound)
            module._native_steps[id(bound)] = runner
        return runner

    # -- one step ----------------------------------------------------------------------------
    def step(self, data_batch, eval_metric) -> None:
        """forward_backward + update (+ accuracy) of the batch already in the executor."""
        metric = self.metric(eval_metric, runs=False)
        native = metric is not None and _labels_match(data_batch.label, self.bound)
        self.fused.fill_scalars()
        self._call(self._step_ctx[native])
        if native:
            metric.flush(self._counter, None, 1)
        else:
            labels = data_batch.label
            if labels is None:
                labels = ()
            bound = self.bound
            eval_metric.update_dict(dict(zip(bound.label_names, labels)), bound.preds)

    def user_step(self, metric, fold):
        """``Module.update``'s deferred step (runtime/deferred_step.py): forward_backward
        and update of the batch ``forward`` loaded, and the accuracy count. With
        ``metric`` (a released plain Accuracy folded into the step) the count is over the
        labels it was given (copied into ``fold``, a FoldTarget) and added as
        ``Accuracy.update`` adds it; without, it is over the executor's own labels when
        ``fold`` can read them and returned (for an update_metric after update), else
        None."""
        if self._user_ctx is None:
            self._user_ctx = self._user_contexts()
        plain, counting, addresses = self._user_ctx
        self.fused.fill_scalars()
        self.module._params_dirty = True
        address = fold.address if metric is not None else fold and fold.own_address
        if not address:
            self._run(addresses[0])  # (no count: the counter is not read)
            self.bound.exe._forwarded = "train"
            return None
        if counting[D.LABEL] != address:
            counting[D.LABEL] = address
        self._call(addresses[1])
        correct = int(self._counter[0])
        if metric is None:
            return correct
        count = fold.rows
        metric.sum_metric += correct
        metric.global_sum_metric += correct
        metric.num_inst += count
        metric.global_num_inst += count
        return None

    def _user_contexts(self):
        """(no metric, counting accuracy, their addresses) for one step on the loaded
        batch; the counting one reads the labels at ``ctx[LABEL]``, set per call."""
        plain = self.ctx.copy()
        plain[D.NSTEPS] = 1
        plain[D.NCOPY] = plain[D.STEPROW] = plain[D.PICK] = plain[D.ACC_COUNT] = 0
        plain[D.OUT] = plain[D.LABEL] = plain[D.ROWS] = plain[D.COLS] = 0
        counting = plain.copy()
        outputs = self.bound.exe.outputs
        if len(outputs) == 1 and outputs[0].ndim == 2 and outputs[0].dtype == _F32:
            counting[D.OUT] = outputs[0].ctypes.data
            counting[D.ROWS], counting[D.COLS] = outputs[0].shape
            counting[D.ACC_COUNT] = self._counter.ctypes.data
        return plain, counting, (plain.ctypes.data, counting.ctypes.data)

    # -- a run of steps -----------------------------------------------------------------------
    def run(self, sources, start, count, metric, order=None) -> None:
        """``count`` steps on batches ``start, start + B, ...`` rows of ``sources`` (one
        contiguous array per executor input, ``[(dst, src)]``; epoch row ``i`` is source
        row ``order[i]`` when ``order`` is given), the metric accumulated natively
        (``metric`` from :meth:`metric` with ``runs=True``)."""
        copies, _numbers = _copies(sources, start, count, order)
        step_row, blob = plan_scalars(self.fused, count, self._tables.row_bytes)
        ctx = self.ctx
        ctx[D.NSTEPS] = count
        ctx[D.NCOPY] = len(copies)
        ctx[D.COPIES] = copies.ctypes.data
        ctx[D.NSCHED] = len(self._tables.spec)
        ctx[D.SCHED] = self._tables.spec.ctypes.data
        ctx[D.STEPROW] = step_row.ctypes.data
        ctx[D.BLOB] = blob.ctypes.data
        pick = np.empty((count, metric.rows), dtype=_F32) if metric.picks else None
        ctx[D.PICK] = 0 if pick is None else pick.ctypes.data
        ctx[D.ACC_COUNT] = self._counter.ctypes.data if metric.counts else 0
        self._call(self._ctx_address)
        ctx[D.COPIES] = ctx[D.STEPROW] = ctx[D.BLOB] = ctx[D.PICK] = 0
        metric.flush(self._counter, pick, count)

    def _call(self, ctx_address) -> None:
        self._counter[0] = 0
        self.module._params_dirty = True
        self._run(ctx_address)
        self.bound.exe._forwarded = "train"

    # -- metric ---------------------------------------------------------------------------
    def metric(self, eval_metric, runs):
        """The native form of ``eval_metric`` on this executor, or None."""
        known, metric = self._metrics.get(runs, (None, None))
        if known is not eval_metric:
            metric = _NativeMetric.build(eval_metric, self.bound, runs, self.ctx)
            self._metrics[runs] = (eval_metric, metric)
            if not runs:
                self._step_ctx = self._single_step_contexts(metric)
        return metric

    def _single_step_contexts(self, metric) -> dict:
        """{count accuracy natively: ctx address} for one step on the loaded batch."""
        plain = self.ctx.copy()
        plain[D.NSTEPS] = 1
        plain[D.NCOPY] = plain[D.STEPROW] = plain[D.PICK] = plain[D.ACC_COUNT] = 0
        counting = plain.copy()
        if metric is not None and metric.counts:
            counting[D.ACC_COUNT] = self._counter.ctypes.data
        self._step_arrays = (plain, counting)
        return {False: plain.ctypes.data, True: counting.ctypes.data}


def _labels_match(labels, bound) -> bool:
    """The metric reads the batch's labels; the driver reads the executor's copy of them:
    the same values only when the batch's are float32 already."""
    return bool(labels) and len(labels) == 1 and len(bound.label) == 1 \
        and isinstance(labels[0], np.ndarray) and labels[0].dtype == _F32 \
        and labels[0].shape == bound.label[0].shape


# ------------------------------------------------------------------------------ scalars
class _Tables:
    """Where the fused update's scalar tables live: (address, bytes, offset in a row)."""

    def __init__(self, fused):
        spec, offset = [], 0
        for table, _ in fused._layout.scalar_tables:
            spec.append((table.ctypes.data, table.nbytes, offset))
            offset += table.nbytes
        self.spec = np.array(spec, dtype=np.int64).reshape(-1, 3)
        self.row_bytes = offset



def plan_scalars(fused, count, row_bytes):
    """Every step's scalar tables for the next ``count`` steps, as ``FusedUpdater.step``
    would write them: ``(step_row, blob)``, ``step_row[k]`` the byte offset in ``blob`` of
    step ``k``'s tables or -1 where they stay as the step before left them. Advances the optimizer's
    counters (and lr scheduler) exactly as ``count`` steps do."""
    step_row = np.full(count, -1, dtype=np.int64)
    tables = [t for t, _ in fused._layout.scalar_tables]
    # Planning writes the tables ahead of the steps: step 0 starts from what they hold now.
    rows = [b"".join(t.tobytes() for t in tables)]
    step_row[0] = 0
    scalars, opt = fused._scalars, fused.optimizer
    for k in range(count):
        attributes = scalars.attributes(opt)
        if k and _steady(opt, scalars, attributes):
            _fast_forward(opt, scalars, count - k)
            break
        if attributes != fused._checked:
            fused._check_rule()
            fused._checked = attributes
        values = scalars(opt, attributes)
        if values is not None:
            fused._write_scalars(values)
            if k:
                rows.append(b"")
            step_row[k] = (len(rows) - 1) * row_bytes
            rows[-1] = b"".join(t.tobytes() for t in tables)
    blob = np.frombuffer(b"".join(rows) or b"\0", dtype=np.uint8).copy()
    return step_row, blob


def _steady(opt, scalars, attributes) -> bool:
    """True when ``_StepScalars`` would take its grouped path and return "unchanged" (None)
    for every further step: then only the counts move."""
    if not scalars.groupable or scalars._count is None or scalars._memo is None:
        return False
    if opt.lr_scheduler is not None or opt.scalars_depend_on_t or opt.param_dict:
        return False
    if (opt.lr_mult, opt.wd_mult, opt.idx2name) != scalars._snapshot:
        return False
    if not scalars._uniform_counts(opt):
        return False
    return (opt.lr, None, attributes) == scalars._memo


def _fast_forward(opt, scalars, steps) -> None:
    """What ``steps`` grouped calls that all hit the memo leave behind."""
    counts = opt._index_update_count
    final = counts.get(scalars.indices[0], opt.begin_num_update) + steps
    counts.update(dict.fromkeys(scalars.indices, final))
    opt.num_update = max(final, opt.num_update)
    scalars._count, scalars._seen_num_update = final, opt.num_update


# ------------------------------------------------------------------------------- metrics
class _NativeMetric:
    """Which built-in metrics the driver accumulates and how their results go back."""

    def __init__(self, accs, picks, rows, cols):
        self.accs, self.pick_metrics, self.rows, self.cols = accs, picks, rows, cols
        self.counts, self.picks = bool(accs), bool(picks)

    @staticmethod
    def build(eval_metric, bound, runs, ctx):
        """None unless every (child) metric is supported on this executor's one output
        and one label."""
        exe = bound.exe
        if len(exe.outputs) != 1 or len(bound.label) != 1 or len(bound.label_names) != 1:
            return None
        out, label = exe.outputs[0], bound.label[0]
        if out.dtype != _F32 or out.ndim != 2 or label.dtype != _F32 \
                or label.shape != (out.shape[0],):
            return None
        leaves = _leaves(eval_metric, bound)
        if leaves is None:
            return None
        accs = [m for m in leaves if type(m) is M.Accuracy]
        picks = [m for m in leaves if type(m) in _PICK_METRICS]
        if len(accs) + len(picks) != len(leaves) or (picks and not runs) or not leaves:
            return None
        if any(m.axis != 1 for m in accs):
            return None
        ctx[D.OUT] = out.ctypes.data
        ctx[D.LABEL] = label.ctypes.data
        ctx[D.ROWS], ctx[D.COLS] = out.shape
        return _NativeMetric(accs, picks, *out.shape)

    def flush(self, counter, pick, steps) -> None:
        """Add what the driver accumulated, as the per-batch updates would have."""
        if self.accs:
            correct, count = int(counter[0]), self.rows * steps
            for m in self.accs:
                m.sum_metric += correct
                m.global_sum_metric += correct
                m.num_inst += count
                m.global_num_inst += count
        for m in self.pick_metrics:
            values = (-np.log(pick + m.eps)).sum(axis=1)
            for value in values.tolist():
                m._add(value, self.rows)

    def labels_in_range(self, labels) -> bool:
        """CrossEntropy indexes each row by its label: the driver needs them in range."""
        if not self.picks:
            return True
        return bool(np.all((labels > -1) & (labels < self.cols)))


def _leaves(eval_metric, bound):
    """The metrics ``update_dict`` reaches with this output and label, or None."""
    out_name, label_name = next(iter(bound.preds)), bound.label_names[0]
    if type(eval_metric) is M.CompositeEvalMetric:
        if eval_metric.output_names not in (None, [out_name]) or \
                eval_metric.label_names not in (None, [label_name]):
            return None
        leaves = []
        for child in eval_metric.metrics:
            more = _leaves(child, bound)
            if more is None:
                return None
            leaves += more
        return leaves
    if eval_metric.output_names not in (None, [out_name]) or \
            eval_metric.label_names not in (None, [label_name]):
        return None
    return [eval_metric]


class NativeScore:
    """The driver's context for inference runs of one executor (``score``): its
    ``predict`` phase and the metric, no update, no seed (an inference forward draws no
    random numbers)."""

    def __init__(self, bound):
        exe = bound.exe
        self.bound = bound
        self.ctx = np.zeros(D.CTX_SLOTS, dtype=np.int64)
        self.ctx[D.PHASE] = exe.compiled.program.library.addresses["predict"]
        self.ctx[D.ARENA] = exe._address
        self.ctx[D.EXT] = exe._ext_address
        self._counter = np.zeros(1, dtype=np.int64)
        self._run, self._library = D.driver()

    @staticmethod
    def of(module, bound):
        if not ENABLED or type(bound.exe) is not Executor or module._monitor is not None \
                or "predict" not in bound.exe.compiled.program.phases:
            return None
        runner = module._native_steps.get(("score", id(bound)))
        if runner is None or runner.bound is not bound:
            runner = NativeScore(bound)
            module._native_steps[("score", id(bound))] = runner
        return runner

    def metric(self, eval_metric):
        return _NativeMetric.build(eval_metric, self.bound, True, self.ctx)

    def run(self, sources, start, count, metric, order=None) -> None:
        """``count`` inference forwards on rows ``start, start + B, ...`` of ``sources``
        (through ``order`` as in :meth:`NativeStep.run`)."""
        copies, _numbers = _copies(sources, start, count, order)
        pick = np.empty((count, metric.rows), dtype=_F32) if metric.picks else None
        ctx = self.ctx
        ctx[D.NSTEPS] = count
        ctx[D.NCOPY] = len(copies)
        ctx[D.COPIES] = copies.ctypes.data
        ctx[D.PICK] = 0 if pick is None else pick.ctypes.data
        ctx[D.ACC_COUNT] = self._counter.ctypes.data if metric.counts else 0
        self._counter[0] = 0
        self._run(ctx.ctypes.data)
        ctx[D.COPIES] = ctx[D.PICK] = 0
        self.bound.exe._forwarded = "predict"
        metric.flush(self._counter, pick, count)


def _copies(sources, start, count, order=None):
    """The driver's copy list (``step_driver.COPY_FIELDS`` per input) for ``count``
    batches from row ``start`` of the epoch, and the row numbers it points into (which the
    caller keeps alive through the call). ``order`` (a shuffled ``NDArrayIter``'s row
    numbers, or None for rows in place) is checked here: the driver trusts it."""
    rows = [dst.shape[0] for dst, _ in sources]
    numbers = None
    if order is not None:
        numbers = np.ascontiguousarray(order[start:start + count * rows[0]], dtype=np.int64)
        sizes = {src.shape[0] for _, src in sources}
        if len(numbers) != count * rows[0] or len(set(rows)) != 1 or len(sizes) != 1 or \
                (len(numbers) and not 0 <= numbers.min() <= numbers.max() < sizes.pop()):
            raise SymgraphError(f"native step: {count} batches of {rows} rows from row "
                                f"{start} do not fit the iterator's row order "
                                f"({len(order)} rows)")
    entries = []
    for (dst, src), batch in zip(sources, rows):
        row_bytes = src.strides[0]
        if numbers is None:
            entries.append((src.ctypes.data + start * row_bytes, dst.nbytes, dst.ctypes.data,
                            0, row_bytes, batch))
        else:
            entries.append((src.ctypes.data, dst.nbytes, dst.ctypes.data,
                            numbers.ctypes.data, row_bytes, batch))
    return np.array(entries, dtype=np.int64).reshape(-1, D.COPY_FIELDS), numbers
