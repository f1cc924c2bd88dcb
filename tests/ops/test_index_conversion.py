"""Float values read as indices (Embedding rows, one_hot positions, SoftmaxOutput labels,
take and pick)
are defined for NaN, infinities and huge values: native code converts with a saturating
truncation (NaN gives 0, inf the top of the range), never LLVM's undefined ``fptosi``, and
the numpy reference gives the same results."""

import numpy as np
import pytest

import symgraph as sg
from symgraph.ops.tensor import float_to_index
from symgraph.reference import evaluate

S = sg.sym
ODD = [np.nan, np.inf, -np.inf, 1e30, -1e30, 3.7, -0.5, 2.0 ** 63]


def native(net, values, is_train=False, **bind):
    shapes = {k: v.shape for k, v in values.items()}
    types = {k: v.dtype for k, v in values.items()}
    exe = net.simple_bind(sg.cpu(), type_dict=types, **bind, **shapes)
    for name, value in values.items():
        exe.arg_dict[name][:] = value
    outs = exe.forward(is_train=is_train)
    return exe, [o.copy() for o in outs]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float_to_index_saturates(dtype):
    got = float_to_index(np.array(ODD, dtype))
    top, bottom = 2 ** 63 - 1, -(2 ** 63)  # LLVM's fptosi.sat saturates at int64's bounds
    assert list(got[:3]) == [0, top, bottom] and list(got[5:7]) == [3, 0]
    assert got[3] == top and got[4] == bottom and got[7] == top


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_embedding_rows_of_odd_indices(dtype):
    data = np.array(ODD, dtype)
    weight = np.arange(10 * 3, dtype=dtype).reshape(10, 3)
    net = S.Embedding(S.Variable("data"), input_dim=10, output_dim=3, name="emb")
    values = {"data": data, "emb_weight": weight}
    exe, (out,) = native(net, values, grad_req={"emb_weight": "write"}, is_train=True)
    rows = [0, 9, 0, 9, 0, 3, 0, 9]  # NaN -> 0, +inf/huge -> last row, -inf -> row 0
    np.testing.assert_array_equal(out, weight[rows])
    np.testing.assert_array_equal(evaluate(net.outputs, values)[0], out)
    exe.backward(np.ones_like(out))
    np.testing.assert_array_equal(exe.grad_dict["emb_weight"][:, 0],
                                  np.bincount(rows, minlength=10))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_hot_of_odd_indices(dtype):
    data = np.array(ODD, dtype)
    net = S.one_hot(S.Variable("data"), depth=5)
    _, (out,) = native(net, {"data": data}, grad_req="null")
    hot = [0, None, None, None, None, 3, 0, None]  # NaN -> 0; out of range: no position
    want = np.array([np.eye(5)[h] if h is not None else np.zeros(5) for h in hot])
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(evaluate(net.outputs, {"data": data})[0], out)


@pytest.mark.parametrize("classes", [5, 80])  # the short-row emitter and the loop kernel
def test_softmax_output_gradient_of_odd_labels(classes):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(ODD), classes)).astype(np.float32)
    label = np.array(ODD, np.float32)
    net = S.SoftmaxOutput(S.Variable("data"), S.Variable("label"), name="sm")
    exe, (prob,) = native(net, {"data": x, "label": label}, is_train=True,
                          grad_req={"data": "write"})
    exe.backward()
    grad = exe.grad_dict["data"]
    onehot = np.zeros_like(prob)
    onehot[5, 3] = onehot[6, 0] = 1.0  # 3.7 and -0.5 (truncated: 0) name classes;
    # NaN, inf and out-of-range labels none
    np.testing.assert_allclose(grad, prob - onehot, rtol=1e-6, atol=1e-7)
    from symgraph.ops.nn import softmax_output_grad

    p = net.outputs[0].node.params
    np.testing.assert_allclose(softmax_output_grad(p, prob, label), grad, rtol=1e-6,
                               atol=1e-7)


# NaN -> 0, +inf and huge -> 2**63 - 1, -inf and -huge -> -2**63, then clip or wrap
SATURATED = [0, 2 ** 63 - 1, -(2 ** 63), 2 ** 63 - 1, -(2 ** 63), 3, 0, 2 ** 63 - 1]


def safe_rows(n, mode):
    return [i % n if mode == "wrap" else min(max(i, 0), n - 1) for i in SATURATED]


@pytest.mark.parametrize("mode", ["clip", "wrap"])
def test_take_of_odd_indices(mode):
    a = np.arange(5 * 3, dtype=np.float32).reshape(5, 3)
    idx = np.array(ODD, np.float32)
    net = S.take(S.Variable("a"), S.Variable("idx"), mode=mode)
    values = {"a": a, "idx": idx}
    exe, (out,) = native(net, values, grad_req={"a": "write", "idx": "null"}, is_train=True)
    rows = safe_rows(5, mode)
    np.testing.assert_array_equal(out, a[rows])
    np.testing.assert_array_equal(evaluate(net.outputs, values)[0], out)
    exe.backward(np.ones_like(out))
    np.testing.assert_array_equal(exe.grad_dict["a"][:, 0], np.bincount(rows, minlength=5))


@pytest.mark.parametrize("mode", ["clip", "wrap"])
def test_pick_of_odd_indices(mode):
    data = np.arange(len(ODD) * 5, dtype=np.float32).reshape(len(ODD), 5)
    index = np.array(ODD, np.float32)
    net = S.pick(S.Variable("data"), S.Variable("index"), axis=1, mode=mode)
    values = {"data": data, "index": index}
    _, (out,) = native(net, values, grad_req="null")
    np.testing.assert_array_equal(out, data[np.arange(len(ODD)), safe_rows(5, mode)])
    np.testing.assert_array_equal(evaluate(net.outputs, values)[0], out)
