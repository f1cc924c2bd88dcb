"""Pooling beyond the op table: reference and native code against direct loops over each
window (MXNet's definitions), the first-maximum gradient rule on ties, padding that never
wins a max, and the attribute/shape errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import symgraph as sg
from symgraph.errors import OpAttributeError, ShapeError
from symgraph.reference import evaluate

S = sg.sym


def out_dim(size, k, s, p, convention):
    span = size + 2 * p - k
    return 1 + (math.ceil(span / s) if convention == "full" else span // s)


def naive_pool(x, dy, kind, kernel, stride, pad, convention="valid", include_pad=True):
    """(y, dx) window by window: clipped windows, divisor per count_include_pad, and the
    max gradient sent to the first maximal cell in row-major order."""
    n_img, chans, height, width = x.shape
    oh = out_dim(height, kernel[0], stride[0], pad[0], convention)
    ow = out_dim(width, kernel[1], stride[1], pad[1], convention)
    y, dx = np.zeros((n_img, chans, oh, ow)), np.zeros_like(x)
    for n, c, i, j in np.ndindex(y.shape):
        h0, w0 = i * stride[0] - pad[0], j * stride[1] - pad[1]
        h1, w1 = min(h0 + kernel[0], height + pad[0]), min(w0 + kernel[1], width + pad[1])
        count = (h1 - h0) * (w1 - w0)
        h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, height), min(w1, width)
        window = x[n, c, h0:h1, w0:w1]
        if kind == "max" and window.size == 0:  # a 'full' overhang wholly in the padding
            y[n, c, i, j] = np.finfo(x.dtype).min  # MXNet's initial value, no gradient
            continue
        if kind == "max":
            y[n, c, i, j] = window.max()
            a, b = np.unravel_index(np.argmax(window), window.shape)
            dx[n, c, h0 + a, w0 + b] += dy[n, c, i, j]
            continue
        divisor = 1 if kind == "sum" else (count if include_pad else window.size)
        divisor = max(divisor, 1)  # empty 'full' overhang: 0, where MXNet computes 0/0
        y[n, c, i, j] = window.sum() / divisor
        dx[n, c, h0:h1, w0:w1] += dy[n, c, i, j] / divisor
    return y, dx


CONFIGS = [  # (kind, kernel, stride, pad, convention, count_include_pad)
    ("max", (2, 2), (2, 2), (0, 0), "valid", True),
    ("max", (3, 2), (2, 3), (1, 1), "full", True),
    ("avg", (3, 3), (2, 2), (1, 1), "valid", True),
    ("avg", (2, 3), (2, 2), (0, 0), "valid", True),  # windows inside: the one-pass kernel
    ("max", (3, 3), (3, 3), (0, 0), "valid", True),  # non-overlapping: the tiled gradient
    ("avg", (3, 3), (2, 2), (1, 1), "full", True),
    ("avg", (2, 3), (2, 2), (1, 1), "full", False),
    ("sum", (3, 1), (1, 1), (1, 0), "valid", True),
]


def native(sym, x, dy, dtype="float64"):
    exe = sym.simple_bind(sg.cpu(), data=x.shape, type_dict={"data": dtype})
    exe.arg_dict["data"][:] = x
    y = exe.forward(is_train=True)[0].copy()
    exe.backward(out_grads=[dy])
    return y, exe.grad_dict["data"]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c[0]}-{c[4]}-{c[5]}")
def test_reference_and_native_match_direct_loops(config):
    kind, kernel, stride, pad, convention, include = config
    sym = S.Pooling(S.Variable("data"), pool_type=kind, kernel=kernel, stride=stride, pad=pad,
                    pooling_convention=convention, count_include_pad=include, name="pool")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 8))
    _, (out_shape,), _ = sym.infer_shape(data=x.shape)
    dy = rng.standard_normal(out_shape)
    y, dx = naive_pool(x, dy, kind, kernel, stride, pad, convention, include)
    assert out_shape == y.shape
    ref_y = evaluate(sym.outputs, {"data": x})[0]
    ref_dx = evaluate(S.grad(sym, ["data"]).outputs, {"data": x, "pool_output_head_grad": dy})[0]
    for got_y, got_dx in ((ref_y, ref_dx), native(sym, x, dy)):
        np.testing.assert_allclose(got_y, y, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got_dx, dx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["max", "avg", "sum"])
def test_global_pool_ignores_kernel_and_covers_the_plane(kind):
    sym = S.Pooling(S.Variable("data"), pool_type=kind, kernel=(2, 2), global_pool=True)
    x = np.random.default_rng(4).standard_normal((2, 3, 5, 6))
    _, outs, _ = sym.infer_shape(data=x.shape)
    assert outs == [(2, 3, 1, 1)]
    expected = {"max": x.max(axis=(2, 3)), "avg": x.mean(axis=(2, 3)),
                "sum": x.sum(axis=(2, 3))}[kind]
    y, _ = native(sym, x, np.ones((2, 3, 1, 1)))
    np.testing.assert_allclose(y[:, :, 0, 0], expected, rtol=1e-12)


def test_max_gradient_goes_to_the_first_maximum_only():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 1] = x[0, 0, 1, 2] = 5.0  # a tie inside the second and across windows
    sym = S.Pooling(S.Variable("data"), pool_type="max", kernel=(2, 2), stride=(1, 1))
    dy = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    _, dx = native(sym, x, dy)
    expected = naive_pool(x, dy, "max", (2, 2), (1, 1), (0, 0))[1]
    np.testing.assert_array_equal(dx, expected)
    assert dx[0, 0, 1, 1] == 1 + 2 + 4 + 5  # every window holding (1, 1) picks it first
    assert dx[0, 0, 1, 2] == 3 + 6  # only windows that do not contain (1, 1)


def test_padding_never_wins_a_max():
    x = -1.0 - np.random.default_rng(5).uniform(size=(1, 2, 3, 3))
    sym = S.Pooling(S.Variable("data"), pool_type="max", kernel=(3, 3), pad=(1, 1))
    y, dx = native(sym, x, np.ones((1, 2, 3, 3)))
    assert (y < -1.0).all()
    assert dx.sum() == pytest.approx(18.0)  # all gradient lands inside the input


@pytest.mark.parametrize("attrs,needle", [
    ({"pool_type": "lp", "kernel": (2, 2)}, "lp"),
    ({"pooling_convention": "same", "kernel": (2, 2)}, "same"),
    ({"pool_type": "max"}, "kernel is required"),
    ({"kernel": (2,)}, "2-D"),
    ({"kernel": (2, 2), "layout": "NHWC"}, "NCHW"),
])
def test_bad_attributes(attrs, needle):
    with pytest.raises(OpAttributeError, match=needle):
        S.Pooling(S.Variable("data"), name="p", **attrs)


def test_shape_errors_name_node_and_shapes():
    sym = S.Pooling(S.Variable("data"), kernel=(5, 5), name="pool1")
    with pytest.raises(ShapeError) as info:
        sym.infer_shape(data=(1, 2, 4, 9))
    assert "Pooling node 'pool1'" in str(info.value) and "(1, 2, 4, 9)" in str(info.value)
    with pytest.raises(ShapeError, match="4-D"):
        sym.infer_shape(data=(2, 9, 9))
