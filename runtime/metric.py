"""Evaluation metrics (``sg.metric``), matching ``mx.metric`` of MXNet 1.x.

Every built-in keeps local stats (``num_inst``/``sum_metric``, cleared by ``reset_local``,
e.g. by Speedometer) and global stats (cleared only by ``reset``), because fit prints the
epoch's train metric from the global ones. Inputs are lists of numpy arrays (a bare array is
wrapped). Accuracy's update is on fit's per-batch hot path: argmax + compare, no Python loop.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy

from runtime.registry import Registry

__all__ = [
    "EvalMetric", "create", "register", "alias", "check_label_shapes", "Accuracy",
    "TopKAccuracy", "F1", "MCC", "Perplexity", "MAE", "MSE", "RMSE", "CrossEntropy",
    "NegativeLogLikelihood", "PearsonCorrelation", "PCC", "Loss", "Torch", "Caffe",
    "CompositeEvalMetric", "CustomMetric", "np",
]

_REGISTRY = Registry("metric", dict_key="metric")
register = _REGISTRY.register
alias = _REGISTRY.alias


def check_label_shapes(labels, preds, wrap=False, shape=False):
    """Raise ValueError when the label and prediction counts (or shapes) differ."""
    if wrap:
        labels = [labels] if isinstance(labels, numpy.ndarray) else labels
        preds = [preds] if isinstance(preds, numpy.ndarray) else preds
    if shape:
        label_shape, pred_shape = numpy.shape(labels), numpy.shape(preds)
    else:
        label_shape, pred_shape = len(labels), len(preds)
    if label_shape != pred_shape:
        raise ValueError(f"Shape of labels {label_shape} does not match shape of "
                         f"predictions {pred_shape}")
    return labels, preds


def _registry_create(metric, *args, **kwargs):
    """Lookup by instance, lower-case name/alias, JSON ``[name, {kw}]``/``{...}`` or dict."""
    if isinstance(metric, EvalMetric):
        return metric
    return _REGISTRY.create(metric, *args, **kwargs)


def create(metric, *args, **kwargs):
    """callable → CustomMetric; list → CompositeEvalMetric; else the registry lookup."""
    if callable(metric) and not isinstance(metric, EvalMetric):
        return CustomMetric(metric, *args, **kwargs)
    if isinstance(metric, list):
        composite = CompositeEvalMetric()
        for child in metric:
            composite.add(create(child, *args, **kwargs))
        return composite
    return _registry_create(metric, *args, **kwargs)


_NDARRAY = numpy.ndarray


def _plain(value):
    """NDArrays (and lists of them) as numpy arrays: metrics compute in numpy."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "asnumpy") and not isinstance(value, _NDARRAY):
        return numpy.asarray(value)
    return value


def _is_numpy(value) -> bool:
    """True for a numpy array or a list of them (fit's hot path: checked in a few ns)."""
    if type(value) is list:
        for item in value:
            if type(item) is not _NDARRAY:
                return False
        return True
    return type(value) is _NDARRAY


def _accepting_ndarrays(update):
    def wrapped(self, labels, preds):
        if _is_numpy(labels) and _is_numpy(preds):
            return update(self, labels, preds)
        return update(self, _plain(labels), _plain(preds))
    wrapped.__doc__, wrapped.__name__ = update.__doc__, update.__name__
    wrapped._accepts_ndarrays = True
    return wrapped


class EvalMetric:
    """Base class: ``sum_metric / num_inst`` with local and global accumulators."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        update = cls.__dict__.get("update")
        if update is not None and not getattr(update, "_accepts_ndarrays", False):
            cls.update = _accepting_ndarrays(update)

    def __init__(self, name, output_names=None, label_names=None, **kwargs):
        self.name = str(name)
        self.output_names = output_names
        self.label_names = label_names
        self._has_global_stats = kwargs.pop("has_global_stats", False)
        self._kwargs = kwargs
        self.reset()

    def __str__(self):
        return f"EvalMetric: {dict(self.get_name_value())}"

    def get_config(self):
        """Constructor config; ``create(m.get_config())`` rebuilds the metric."""
        config = self._kwargs.copy()
        config.update({"metric": self.__class__.__name__, "name": self.name,
                       "output_names": self.output_names, "label_names": self.label_names})
        return config

    def update_dict(self, label, pred):
        """Pick outputs/labels by ``output_names``/``label_names`` (else all, in order)."""
        if self.output_names is not None:
            pred = [pred[name] for name in self.output_names]
        else:
            pred = list(pred.values())
        if self.label_names is not None:
            label = [label[name] for name in self.label_names]
        else:
            label = list(label.values())
        self.update(label, pred)

    def update(self, labels, preds):
        raise NotImplementedError()

    def _add(self, value, count):
        """Accumulate into both local and global stats (the common case)."""
        self.sum_metric += value
        self.global_sum_metric += value
        self.num_inst += count
        self.global_num_inst += count

    def reset(self):
        """Clear local and global stats."""
        self.num_inst = 0
        self.sum_metric = 0.0
        self.global_num_inst = 0
        self.global_sum_metric = 0.0

    def reset_local(self):
        """Clear only the local stats (Speedometer's auto_reset)."""
        self.num_inst = 0
        self.sum_metric = 0.0

    def get(self):
        """(name, local value), nan before any update."""
        if self.num_inst == 0:
            return (self.name, float("nan"))
        return (self.name, self.sum_metric / self.num_inst)

    def get_global(self):
        """(name, value over everything since ``reset``)."""
        if not self._has_global_stats:
            return self.get()
        if self.global_num_inst == 0:
            return (self.name, float("nan"))
        return (self.name, self.global_sum_metric / self.global_num_inst)

    def get_name_value(self):
        """[(name, value), ...] from the local stats."""
        return _name_value_pairs(*self.get())

    def get_global_name_value(self):
        """[(name, value), ...] from the global stats."""
        return _name_value_pairs(*self.get_global())


def _name_value_pairs(name, value):
    names = name if isinstance(name, list) else [name]
    values = value if isinstance(value, list) else [value]
    return list(zip(names, values))


@register
@alias("composite")
class CompositeEvalMetric(EvalMetric):
    """Several metrics updated together; ``get()`` → (list of names, list of values)."""

    def __init__(self, metrics=None, name="composite", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names,
                         has_global_stats=True)
        self.metrics = [create(m) for m in (metrics or [])]

    def add(self, metric):
        self.metrics.append(create(metric))

    def get_metric(self, index):
        try:
            return self.metrics[index]
        except IndexError:
            raise ValueError(f"Metric index {index} is out of range 0 and "
                             f"{len(self.metrics)}") from None

    def update_dict(self, labels, preds):
        """Filter by this composite's own names, then let each child pick its entries."""
        if self.label_names is not None:
            labels = OrderedDict(i for i in labels.items() if i[0] in self.label_names)
        if self.output_names is not None:
            preds = OrderedDict(i for i in preds.items() if i[0] in self.output_names)
        for metric in self.metrics:
            metric.update_dict(labels, preds)

    def update(self, labels, preds):
        for metric in self.metrics:
            metric.update(labels, preds)

    def reset(self):
        for metric in getattr(self, "metrics", []):
            metric.reset()

    def reset_local(self):
        for metric in getattr(self, "metrics", []):
            metric.reset_local()

    def _collect(self, getter):
        names, values = [], []
        for metric in self.metrics:
            name, value = getter(metric)
            names.extend(name if isinstance(name, list) else [name])
            values.extend(value if isinstance(value, list) else [value])
        return (names, values)

    def get(self):
        return self._collect(lambda m: m.get())

    def get_global(self):
        return self._collect(lambda m: m.get_global())

    def get_config(self):
        config = super().get_config()
        config.update({"metrics": [m.get_config() for m in self.metrics]})
        return config


@register
@alias("acc")
class Accuracy(EvalMetric):
    """Fraction of argmax(pred, axis) == label (both cast to int32); num += #predictions."""

    def __init__(self, axis=1, name="accuracy", output_names=None, label_names=None):
        super().__init__(name, axis=axis, output_names=output_names, label_names=label_names,
                         has_global_stats=True)
        self.axis = axis

    def update(self, labels, preds):
        if isinstance(labels, numpy.ndarray) or isinstance(preds, numpy.ndarray):
            labels, preds = check_label_shapes(labels, preds, True)
        elif len(labels) != len(preds):
            check_label_shapes(labels, preds)
        for label, pred in zip(labels, preds):
            if pred.shape != label.shape:
                pred = pred.argmax(axis=self.axis)
            pred = pred.ravel()
            label = label.ravel()
            if pred.dtype.kind != "i":
                pred = pred.astype(numpy.int32)
            if label.dtype.kind != "i":
                label = label.astype(numpy.int32)
            if label.size != pred.size:
                check_label_shapes(label, pred)
            correct = int(numpy.count_nonzero(pred == label))
            self.sum_metric += correct
            self.global_sum_metric += correct
            self.num_inst += pred.size
            self.global_num_inst += pred.size


@register
@alias("top_k_accuracy", "top_k_acc")
class TopKAccuracy(EvalMetric):
    """Label among the k largest scores (argpartition); name ``top_k_accuracy_<k>``."""

    def __init__(self, top_k=1, name="top_k_accuracy", output_names=None, label_names=None):
        super().__init__(name, top_k=top_k, output_names=output_names, label_names=label_names,
                         has_global_stats=True)
        self.top_k = top_k
        if self.top_k <= 1:
            raise ValueError("Please use Accuracy if top_k is no more than 1")
        self.name += f"_{self.top_k}"

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            if pred.ndim > 2:
                raise ValueError("Predictions should be no more than 2 dims")
            part = numpy.argpartition(pred.astype(numpy.float32), -self.top_k)
            label = label.astype(numpy.int32)
            check_label_shapes(label, part)
            if part.ndim == 1:
                correct = int(numpy.count_nonzero(part.ravel() == label.ravel()))
            else:
                num_classes = part.shape[1]
                top = part[:, num_classes - min(num_classes, self.top_k):]
                correct = int(numpy.count_nonzero(top == label.reshape(-1, 1)))
            self._add(correct, part.shape[0])


class _BinaryStats:
    """Binary confusion counts (positive class = 1), local and global, shared by F1 and MCC."""

    _FIELDS = ("tp", "fp", "fn", "tn")

    def __init__(self):
        self.local = dict.fromkeys(self._FIELDS, 0)
        self.glob = dict.fromkeys(self._FIELDS, 0)

    def update(self, owner, label, pred):
        label = label.astype(numpy.int32)
        pred_label = numpy.argmax(pred, axis=1)
        check_label_shapes(label, pred)
        if len(numpy.unique(label)) > 2:
            raise ValueError(f"{owner} currently only supports binary classification.")
        pred_true, label_true = pred_label == 1, label.ravel() == 1
        counts = {"tp": numpy.sum(pred_true & label_true),
                  "fp": numpy.sum(pred_true & ~label_true),
                  "fn": numpy.sum(~pred_true & label_true),
                  "tn": numpy.sum(~pred_true & ~label_true)}
        for key, value in counts.items():
            self.local[key] += int(value)
            self.glob[key] += int(value)

    def reset_local(self):
        self.local = dict.fromkeys(self._FIELDS, 0)

    def reset(self):
        self.reset_local()
        self.glob = dict.fromkeys(self._FIELDS, 0)

    @staticmethod
    def total(c):
        return c["tp"] + c["fp"] + c["fn"] + c["tn"]

    @staticmethod
    def fscore(c):
        """F1 from counts; precision/recall are 0 when their denominators are."""
        precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] > 0 else 0.0
        recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] > 0 else 0.0
        if precision + recall > 0:
            return 2 * precision * recall / (precision + recall)
        return 0.0

    @staticmethod
    def mcc(c):
        """Matthews correlation; zero factors are left out of the denominator (MXNet)."""
        if not _BinaryStats.total(c):
            return 0.0
        tp, fp, fn, tn = c["tp"], c["fp"], c["fn"], c["tn"]
        denom = 1.0
        for term in (tp + fp, tp + fn, tn + fp, tn + fn):
            if term != 0:
                denom *= term
        return ((tp * tn) - (fp * fn)) / math.sqrt(denom)


class _BinaryMetric(EvalMetric):
    """F1/MCC: macro = score per update call averaged over calls; micro = over the pool."""

    _score = None

    def __init__(self, name, output_names=None, label_names=None, average="macro"):
        self.average = average
        self.stats = _BinaryStats()
        super().__init__(name, output_names=output_names, label_names=label_names,
                         has_global_stats=True)

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            self.stats.update(type(self).__name__, label, pred)
        score = type(self)._score
        if self.average == "macro":
            self.sum_metric += score(self.stats.local)
            self.global_sum_metric += score(self.stats.glob)
            self.num_inst += 1
            self.global_num_inst += 1
            self.stats.reset()
        else:
            self.sum_metric = score(self.stats.local) * _BinaryStats.total(self.stats.local)
            self.global_sum_metric = score(self.stats.glob) * _BinaryStats.total(self.stats.glob)
            self.num_inst = _BinaryStats.total(self.stats.local)
            self.global_num_inst = _BinaryStats.total(self.stats.glob)

    def reset(self):
        super().reset()
        self.stats.reset()

    def reset_local(self):
        super().reset_local()
        self.stats.reset_local()


@register
class F1(_BinaryMetric):
    """Binary F1 (positive class 1, pred = argmax axis 1)."""

    _score = staticmethod(_BinaryStats.fscore)

    def __init__(self, name="f1", output_names=None, label_names=None, average="macro"):
        super().__init__(name, output_names, label_names, average)


@register
class MCC(_BinaryMetric):
    """Binary Matthews correlation coefficient."""

    _score = staticmethod(_BinaryStats.mcc)

    def __init__(self, name="mcc", output_names=None, label_names=None, average="macro"):
        super().__init__(name, output_names, label_names, average)


@register
class Perplexity(EvalMetric):
    """exp(Σ −log max(1e-10, p[label]) / N); ignored labels leave N. No default ignore_label."""

    def __init__(self, ignore_label, axis=-1, name="perplexity", output_names=None,
                 label_names=None):
        super().__init__(name, ignore_label=ignore_label, output_names=output_names,
                         label_names=label_names, has_global_stats=True)
        self.ignore_label = ignore_label
        self.axis = axis

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        loss, num = 0.0, 0
        for label, pred in zip(labels, preds):
            if label.size != pred.size / pred.shape[-1]:
                raise ValueError(f"shape mismatch: {label.shape} vs. {pred.shape}")
            label = label.reshape(label.size)
            scores = numpy.moveaxis(pred, self.axis, -1).reshape(-1, pred.shape[self.axis])
            idx = numpy.clip(label.astype(numpy.int64), 0, scores.shape[1] - 1)
            picked = scores[numpy.arange(idx.size), idx]
            if self.ignore_label is not None:
                ignore = label == self.ignore_label
                num -= int(numpy.count_nonzero(ignore))
                picked = numpy.where(ignore, 1.0, picked)
            loss -= float(numpy.sum(numpy.log(numpy.maximum(1e-10, picked))))
            num += picked.size
        self._add(loss, num)

    def get(self):
        if self.num_inst == 0:
            return (self.name, float("nan"))
        return (self.name, math.exp(self.sum_metric / self.num_inst))

    def get_global(self):
        if self.global_num_inst == 0:
            return (self.name, float("nan"))
        return (self.name, math.exp(self.global_sum_metric / self.global_num_inst))


def _as_column(arr):
    """Regression metrics reshape 1-D arrays to (N, 1) (and then broadcast, as MXNet)."""
    return arr.reshape(arr.shape[0], 1) if arr.ndim == 1 else arr


class _BatchMeanMetric(EvalMetric):
    """[Q] MAE/MSE/RMSE: the average of per-batch means (num += 1 per array)."""

    def _batch_value(self, diff):
        raise NotImplementedError()

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            diff = _as_column(numpy.asarray(label)) - _as_column(numpy.asarray(pred))
            self._add(float(self._batch_value(diff)), 1)


@register
class MAE(_BatchMeanMetric):
    """Mean absolute error per batch."""

    def __init__(self, name="mae", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names,
                         has_global_stats=True)

    def _batch_value(self, diff):
        return numpy.abs(diff).mean()


@register
class MSE(_BatchMeanMetric):
    """Mean squared error per batch."""

    def __init__(self, name="mse", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names,
                         has_global_stats=True)

    def _batch_value(self, diff):
        return (diff ** 2.0).mean()


@register
class RMSE(_BatchMeanMetric):
    """Root mean squared error per batch."""

    def __init__(self, name="rmse", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names,
                         has_global_stats=True)

    def _batch_value(self, diff):
        return numpy.sqrt((diff ** 2.0).mean())


class _PickLogMetric(EvalMetric):
    """Σ −log(p[i, label_i] + eps); num += #samples."""

    def __init__(self, eps, name, output_names, label_names):
        super().__init__(name, eps=eps, output_names=output_names, label_names=label_names,
                         has_global_stats=True)
        self.eps = eps

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            label = numpy.asarray(label).ravel()
            if label.shape[0] != pred.shape[0]:
                raise ValueError(f"label count {label.shape[0]} != batch size {pred.shape[0]}")
            prob = pred[numpy.arange(label.shape[0]), numpy.int64(label)]
            self._add(float((-numpy.log(prob + self.eps)).sum()), label.shape[0])


@register
@alias("ce")
class CrossEntropy(_PickLogMetric):
    """Cross entropy of softmax outputs against class labels."""

    def __init__(self, eps=1e-12, name="cross-entropy", output_names=None, label_names=None):
        super().__init__(eps, name, output_names, label_names)


@register
@alias("nll_loss")
class NegativeLogLikelihood(_PickLogMetric):
    """Same formula as CrossEntropy, displayed as ``nll-loss``."""

    def __init__(self, eps=1e-12, name="nll-loss", output_names=None, label_names=None):
        super().__init__(eps, name, output_names, label_names)


@register
@alias("pearsonr")
class PearsonCorrelation(EvalMetric):
    """macro: mean of per-batch corrcoef; micro: Welford running (co)variances over all."""

    def __init__(self, name="pearsonr", output_names=None, label_names=None, average="macro"):
        self.average = average
        super().__init__(name, output_names=output_names, label_names=label_names,
                         has_global_stats=True)

    def reset_micro(self):
        self._sse_p = self._mean_p = self._sse_l = self._mean_l = 0.0
        self._pred_nums = self._label_nums = 0
        self._conv = 0.0

    def reset(self):
        super().reset()
        if self.average == "micro":
            self.reset_micro()

    @staticmethod
    def update_variance(new_values, count, mean, m_2):
        """Batched Welford update of (count, mean, sum of squared deviations)."""
        count += len(new_values)
        delta = new_values - mean
        mean += numpy.sum(delta / count)
        m_2 += numpy.sum(delta * (new_values - mean))
        return count, mean, m_2

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            check_label_shapes(label, pred, False, True)
            label = numpy.asarray(label).ravel().astype(numpy.float64)
            pred = numpy.asarray(pred).ravel().astype(numpy.float64)
            if self.average == "macro":
                self._add(float(numpy.corrcoef(pred, label)[0, 1]), 1)
                continue
            self.num_inst += 1
            self.global_num_inst += 1
            self._label_nums, self._mean_l, self._sse_l = self.update_variance(
                label, self._label_nums, self._mean_l, self._sse_l)
            self._conv += numpy.sum((label - self._mean_l) * (pred - self._mean_p))
            self._pred_nums, self._mean_p, self._sse_p = self.update_variance(
                pred, self._pred_nums, self._mean_p, self._sse_p)

    def _micro_value(self):
        n = self._label_nums
        return float(self._conv / ((n - 1) * numpy.sqrt(self._sse_p / (n - 1))
                                   * numpy.sqrt(self._sse_l / (n - 1))))

    def get(self):
        if self.num_inst == 0:
            return (self.name, float("nan"))
        if self.average == "macro":
            return (self.name, self.sum_metric / self.num_inst)
        return (self.name, self._micro_value())

    def get_global(self):
        if self.average == "macro":
            return super().get_global()
        return self.get()


@register
class PCC(EvalMetric):
    """Multiclass Matthews correlation from a confusion matrix that grows as needed."""

    def __init__(self, name="pcc", output_names=None, label_names=None,
                 has_global_stats=True):
        self.k = 2
        super().__init__(name=name, output_names=output_names, label_names=label_names,
                         has_global_stats=has_global_stats)

    def _grow(self, inc):
        self.lcm = numpy.pad(self.lcm, ((0, inc), (0, inc)), "constant")
        self.gcm = numpy.pad(self.gcm, ((0, inc), (0, inc)), "constant")
        self.k += inc

    @staticmethod
    def _calc_mcc(cmat):
        n = cmat.sum()
        x, y = cmat.sum(axis=1), cmat.sum(axis=0)
        cov_xx, cov_yy = numpy.sum(x * (n - x)), numpy.sum(y * (n - y))
        if cov_xx == 0 or cov_yy == 0:
            return float("nan")
        cov_xy = numpy.sum(cmat.diagonal() * n - x * y)
        return float(cov_xy / (cov_xx * cov_yy) ** 0.5)

    def update(self, labels, preds):
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            label = numpy.asarray(label).astype(numpy.int32).ravel()
            pred = pred.argmax(axis=1) if pred.shape != label.shape else pred
            pred = pred.astype(numpy.int32).ravel()
            n = max(int(pred.max()), int(label.max()))
            if n >= self.k:
                self._grow(n + 1 - self.k)
            bcm = numpy.zeros((self.k, self.k))
            numpy.add.at(bcm, (pred, label), 1)
            self.lcm += bcm
            self.gcm += bcm
        self.num_inst += 1
        self.global_num_inst += 1

    @property
    def sum_metric(self):
        return self._calc_mcc(self.lcm) * self.num_inst

    @sum_metric.setter
    def sum_metric(self, _value):
        """Derived from the confusion matrix; the base class's resets are ignored."""

    @property
    def global_sum_metric(self):
        return self._calc_mcc(self.gcm) * self.global_num_inst

    @global_sum_metric.setter
    def global_sum_metric(self, _value):
        """Derived from the confusion matrix."""

    def reset(self):
        self.global_num_inst = 0
        self.gcm = numpy.zeros((self.k, self.k))
        self.reset_local()

    def reset_local(self):
        self.num_inst = 0
        self.lcm = numpy.zeros((self.k, self.k))


@register
@alias("loss")
class Loss(EvalMetric):
    """Ignores labels: mean of the outputs (Σ pred / pred.size over all outputs)."""

    def __init__(self, name="loss", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names,
                         has_global_stats=True)

    def update(self, _, preds):
        if isinstance(preds, numpy.ndarray):
            preds = [preds]
        for pred in preds:
            self._add(float(numpy.sum(pred)), numpy.size(pred))


@register
class Torch(Loss):
    """Dummy metric for torch criterions (a Loss named ``torch``)."""

    def __init__(self, name="torch", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names)


@register
class Caffe(Loss):
    """Dummy metric for caffe criterions (a Loss named ``caffe``)."""

    def __init__(self, name="caffe", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names)


@register
class CustomMetric(EvalMetric):
    """``feval(label, pred)`` → value (num += 1) or (sum, count); lambdas named custom(<lambda>)."""

    def __init__(self, feval, name=None, allow_extra_outputs=False, output_names=None,
                 label_names=None):
        if name is None:
            name = feval.__name__
            if "<" in name:
                name = f"custom({name})"
        super().__init__(name, feval=feval, allow_extra_outputs=allow_extra_outputs,
                         output_names=output_names, label_names=label_names,
                         has_global_stats=True)
        self._feval = feval
        self._allow_extra_outputs = allow_extra_outputs

    def update(self, labels, preds):
        if not self._allow_extra_outputs:
            labels, preds = check_label_shapes(labels, preds, True)
        elif isinstance(labels, numpy.ndarray):
            labels, preds = [labels], [preds] if isinstance(preds, numpy.ndarray) else preds
        for pred, label in zip(preds, labels):
            reval = self._feval(numpy.asarray(label), numpy.asarray(pred))
            if isinstance(reval, tuple):
                self._add(reval[0], reval[1])
            else:
                self._add(reval, 1)

    def get_config(self):
        raise NotImplementedError("CustomMetric cannot be serialized")


def np(numpy_feval, name=None, allow_extra_outputs=False):
    """Wrap a numpy function ``f(label, pred)`` as a CustomMetric (keeps its __name__)."""

    def feval(label, pred):
        return numpy_feval(label, pred)

    feval.__name__ = numpy_feval.__name__
    return CustomMetric(feval, name, allow_extra_outputs)
