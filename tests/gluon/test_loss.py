"""Losses: per-sample values against numpy; the gradient of softmax cross-entropy."""

import numpy as np
import pytest

from symgraph import autograd, gluon, nd

RNG = np.random.default_rng(0)
PRED = RNG.standard_normal((4, 5)).astype(np.float32)
LABEL = np.array([0, 3, 4, 1], dtype=np.int32)


def _log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def test_softmax_cross_entropy_sparse_dense_and_weight():
    loss = gluon.loss.SoftmaxCrossEntropyLoss()(nd.array(PRED), nd.array(LABEL, dtype="int32"))
    expect = -_log_softmax(PRED)[np.arange(4), LABEL]
    assert loss.shape == (4,)
    np.testing.assert_allclose(loss.asnumpy(), expect, rtol=1e-5)
    onehot = np.eye(5, dtype=np.float32)[LABEL]
    dense = gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=False, weight=2.0)
    np.testing.assert_allclose(dense(nd.array(PRED), nd.array(onehot)).asnumpy(), 2 * expect,
                               rtol=1e-5)
    logits = gluon.loss.SoftmaxCrossEntropyLoss(from_logits=True)
    np.testing.assert_allclose(logits(nd.array(_log_softmax(PRED)), nd.array(LABEL)).asnumpy(),
                               expect, rtol=1e-5)


def test_softmax_cross_entropy_gradient_is_softmax_minus_onehot():
    x = nd.array(PRED)
    x.attach_grad()
    with autograd.record():
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(x, nd.array(LABEL))
    loss.backward()
    p = np.exp(_log_softmax(PRED))
    np.testing.assert_allclose(x.grad.asnumpy(), p - np.eye(5)[LABEL], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name,ref", [
    ("L2Loss", lambda p, y: (0.5 * (p - y) ** 2).mean(axis=1)),
    ("L1Loss", lambda p, y: np.abs(p - y).mean(axis=1)),
    ("HuberLoss", lambda p, y: np.where(np.abs(p - y) > 1, np.abs(p - y) - 0.5,
                                        0.5 * (p - y) ** 2).mean(axis=1)),
    ("SigmoidBinaryCrossEntropyLoss", lambda p, y: (np.maximum(p, 0) - p * y +
                                                    np.log1p(np.exp(-np.abs(p)))).mean(axis=1)),
])
def test_regression_and_binary_losses(name, ref):
    label = RNG.uniform(0, 1, PRED.shape).astype(np.float32) * 2
    out = getattr(gluon.loss, name)()(nd.array(PRED), nd.array(label))
    np.testing.assert_allclose(out.asnumpy(), ref(PRED, label), rtol=1e-4, atol=1e-6)


def test_kl_div_loss():
    target = np.exp(_log_softmax(RNG.standard_normal((4, 5)))).astype(np.float32)
    out = gluon.loss.KLDivLoss(from_logits=False)(nd.array(PRED), nd.array(target))
    expect = (target * (np.log(target + 1e-12) - _log_softmax(PRED))).mean(axis=1)
    np.testing.assert_allclose(out.asnumpy(), expect, rtol=1e-4)
