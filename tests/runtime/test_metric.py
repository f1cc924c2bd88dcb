"""Metrics (§7): names, formulas, local/global stats, create() forms, quirks."""

from __future__ import annotations

import json
import math
from collections import OrderedDict

import numpy as np
import pytest

from runtime import metric as M

RNG = np.random.default_rng(0)


def _probs(n, k):
    p = RNG.random((n, k))
    return p / p.sum(axis=1, keepdims=True)


def test_accuracy_argmax_and_counts():
    m = M.create("acc")
    assert m.name == "accuracy" and np.isnan(m.get()[1])
    pred = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], np.float32)
    label = np.array([1, 1, 1], np.float32)
    m.update([label], [pred])
    assert m.get() == ("accuracy", pytest.approx(2 / 3))
    assert m.num_inst == 3
    m.update([np.array([0.0, 1.0])], [np.array([0.0, 1.0])])  # same shape: no argmax
    assert m.get()[1] == pytest.approx(4 / 5)
    with pytest.raises(ValueError, match="Shape of labels 1 does not match shape of "
                                         "predictions 2"):
        m.update([label], [pred, pred])


def test_accuracy_accumulates_over_many_updates():
    m = M.Accuracy()
    labels = OrderedDict(softmax_label=RNG.integers(0, 10, 128).astype(np.float32))
    preds = OrderedDict(softmax_output=RNG.random((128, 10), dtype=np.float32))
    right = int((preds["softmax_output"].argmax(1) == labels["softmax_label"]).sum())
    n = 2000
    for _ in range(n):
        m.update_dict(labels, preds)
    assert (m.sum_metric, m.num_inst) == (n * right, n * 128)


def test_local_vs_global_stats_and_reset():
    m = M.Accuracy()
    m.update([np.array([1])], [np.array([[0.0, 1.0]])])
    m.reset_local()
    m.update([np.array([1])], [np.array([[1.0, 0.0]])])
    assert m.get()[1] == 0.0 and m.get_global()[1] == 0.5
    assert m.get_name_value() == [("accuracy", 0.0)]
    assert m.get_global_name_value() == [("accuracy", 0.5)]
    m.reset()
    assert np.isnan(m.get_global()[1])
    assert str(M.create("mse")) == "EvalMetric: {'mse': nan}"


def test_update_dict_respects_names():
    m = M.Accuracy(output_names=["b_output"], label_names=["b_label"])
    m.update_dict({"a_label": np.array([0]), "b_label": np.array([1])},
                  {"a_output": np.array([[1.0, 0.0]]), "b_output": np.array([[0.0, 1.0]])})
    assert m.get()[1] == 1.0


def test_top_k():
    m = M.create("top_k_acc", top_k=2)
    assert m.name == "top_k_accuracy_2"
    pred = np.array([[0.1, 0.5, 0.4], [0.6, 0.3, 0.1], [0.2, 0.3, 0.5]])
    m.update([np.array([2, 2, 0])], [pred])
    assert m.get()[1] == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        M.TopKAccuracy()


def _ref_f1(label, pred_cls):
    tp = np.sum((pred_cls == 1) & (label == 1))
    fp = np.sum((pred_cls == 1) & (label == 0))
    fn = np.sum((pred_cls == 0) & (label == 1))
    p = tp / (tp + fp) if tp + fp else 0
    r = tp / (tp + fn) if tp + fn else 0
    return 2 * p * r / (p + r) if p + r else 0


def test_f1_macro_and_micro_and_binary_only():
    batches = [(RNG.integers(0, 2, 20), _probs(20, 2)) for _ in range(3)]
    macro, micro = M.F1(), M.create("f1", average="micro")
    for lab, pr in batches:
        macro.update([lab], [pr])
        micro.update([lab], [pr])
    per_batch = [_ref_f1(lab, pr.argmax(1)) for lab, pr in batches]
    assert macro.get()[1] == pytest.approx(np.mean(per_batch))
    all_l = np.concatenate([b[0] for b in batches])
    all_p = np.concatenate([b[1].argmax(1) for b in batches])
    assert micro.get()[1] == pytest.approx(_ref_f1(all_l, all_p))
    with pytest.raises(ValueError, match="binary"):
        M.F1().update([np.array([0, 1, 2])], [_probs(3, 3)])


def test_mcc():
    lab = np.array([1, 1, 0, 0, 1, 0])
    pr = np.eye(2)[[1, 0, 0, 0, 1, 1]]
    m = M.create("mcc")
    m.update([lab], [pr])
    tp, tn, fp, fn = 2, 2, 1, 1
    want = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert m.get() == ("mcc", pytest.approx(want))


def test_perplexity_requires_ignore_label_and_formula():
    with pytest.raises(TypeError):
        M.create("perplexity")
    p = _probs(6, 4)
    lab = np.array([0, 1, 2, 3, 1, 0])
    m = M.create("perplexity", ignore_label=None)
    m.update([lab], [p])
    want = math.exp(-np.mean(np.log(p[np.arange(6), lab])))
    assert m.get()[1] == pytest.approx(want)
    m2 = M.Perplexity(ignore_label=0)
    m2.update([lab], [p])
    keep = lab != 0
    want = math.exp(-np.sum(np.log(p[np.arange(6), lab][keep])) / keep.sum())
    assert m2.get()[1] == pytest.approx(want)


def test_regression_metrics_average_batch_means_quirk():
    l1, p1 = np.array([1.0, 2.0]), np.array([1.5, 2.0])
    l2, p2 = np.array([0.0, 0.0, 0.0, 0.0]), np.array([1.0, 1.0, 1.0, 1.0])
    mae, mse, rmse = M.create("mae"), M.create("mse"), M.create("rmse")
    for m in (mae, mse, rmse):
        m.update([l1], [p1])
        m.update([l2], [p2])
        assert m.num_inst == 2
    assert mae.get()[1] == pytest.approx((0.25 + 1.0) / 2)
    assert mse.get()[1] == pytest.approx((0.125 + 1.0) / 2)
    assert rmse.get()[1] == pytest.approx((math.sqrt(0.125) + 1.0) / 2)


def test_cross_entropy_and_nll():
    p = _probs(5, 3)
    lab = np.array([0, 2, 1, 1, 0])
    want = np.mean(-np.log(p[np.arange(5), lab] + 1e-12))
    for name, display in (("ce", "cross-entropy"), ("nll_loss", "nll-loss"),
                          ("CrossEntropy", "cross-entropy")):
        m = M.create(name)
        m.update([lab], [p])
        assert m.get() == (display, pytest.approx(want)) and m.num_inst == 5


def test_pearson_macro_and_micro():
    a, b = RNG.random(50), RNG.random(50)
    c, d = RNG.random(30), RNG.random(30)
    macro = M.create("pearsonr")
    micro = M.PearsonCorrelation(average="micro")
    for m in (macro, micro):
        m.update([a], [a + b])
        m.update([c], [c * 2 + d])
    assert macro.get()[1] == pytest.approx(
        (np.corrcoef(a + b, a)[0, 1] + np.corrcoef(c * 2 + d, c)[0, 1]) / 2)
    want = np.corrcoef(np.concatenate([a + b, c * 2 + d]), np.concatenate([a, c]))[0, 1]
    assert micro.get()[1] == pytest.approx(want)


def test_pcc_multiclass_grows():
    lab = np.array([0, 1, 2, 3, 3, 2])
    pred = np.eye(4)[[0, 1, 2, 3, 2, 2]]
    m = M.create("pcc")
    m.update([lab], [pred])
    assert m.k == 4
    cm = np.zeros((4, 4))
    for i, j in zip(pred.argmax(1), lab):
        cm[i, j] += 1
    n, x, y = cm.sum(), cm.sum(1), cm.sum(0)
    want = np.sum(np.diag(cm) * n - x * y) / math.sqrt(np.sum(x * (n - x)) * np.sum(y * (n - y)))
    assert m.get()[1] == pytest.approx(want)


def test_loss_ignores_labels():
    m = M.create("loss")
    m.update(None, [np.array([1.0, 2.0, 3.0]), np.array([[4.0]])])
    assert m.get() == ("loss", pytest.approx(10 / 4))
    assert M.create("torch").name == "torch" and M.create("caffe").name == "caffe"


def test_composite():
    m = M.create(["acc", "mse"])
    assert isinstance(m, M.CompositeEvalMetric)
    m.update([np.array([1.0])], [np.array([[0.0, 1.0]])])
    names, values = m.get()
    assert names == ["accuracy", "mse"]
    assert m.get_name_value()[0] == ("accuracy", 1.0)
    assert m.get_metric(1).name == "mse"
    with pytest.raises(ValueError):
        m.get_metric(5)
    assert M.create("composite").name == "composite"


def test_custom_metric_and_np():
    m = M.create(lambda label, pred: float(np.sum(label == pred)))
    assert m.name == "custom(<lambda>)"

    def my_score(label, pred):
        return (float(np.abs(label - pred).sum()), label.size)

    c = M.create(my_score)
    assert c.name == "my_score"
    c.update([np.array([1.0, 2.0])], [np.array([1.0, 4.0])])
    assert c.get()[1] == 1.0
    n = M.np(lambda lab, pr: 0.5, name="half")
    n.update([np.zeros(2), np.zeros(2)], [np.zeros(2), np.zeros(2)])
    assert n.get() == ("half", 0.5) and n.num_inst == 2
    with pytest.raises(ValueError):
        n.update([np.zeros(2)], [np.zeros(2), np.zeros(2)])
    extra = M.np(lambda lab, pr: 1.0, allow_extra_outputs=True)
    extra.update([np.zeros(2)], [np.zeros(2), np.zeros(2)])
    assert extra.num_inst == 1


def test_create_forms():
    assert M.create("ACC").name == "accuracy"
    acc = M.Accuracy(axis=-1)
    assert M.create(acc) is acc
    assert M.create('["top_k_accuracy", {"top_k": 3}]').name == "top_k_accuracy_3"
    assert M.create({"metric": "mae"}).name == "mae"
    cfg = M.Accuracy(axis=2, name="acc2").get_config()
    assert cfg["metric"] == "Accuracy" and cfg["axis"] == 2
    rebuilt = M.create(json.dumps(cfg))
    assert rebuilt.name == "acc2" and rebuilt.axis == 2
    with pytest.raises(ValueError):
        M.create("nope")
