"""Convolution beyond the op table: the numpy reference against a direct loop (the
definition MXNet documents), native results against it, im2col/col2im adjointness, shape
and attribute errors, and a LeNet trained end to end through one native call."""

from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
from symgraph.compose import create
from symgraph.errors import OpAttributeError, ShapeError
from symgraph.reference import evaluate

S = sg.sym


def naive_conv(x, w, b, stride, pad, dilate, groups):
    """out[n, f, i, j] = b[f] + sum x[n, g*Cg + c, i*s - p + ki*d, j*s - p + kj*d] w[f, c, ki, kj]
    over in-bounds taps: MXNet's cross-correlation written as plain loops."""
    n_img, _, height, width = x.shape
    filters, cg, kh, kw = w.shape
    oh = (height + 2 * pad[0] - (dilate[0] * (kh - 1) + 1)) // stride[0] + 1
    ow = (width + 2 * pad[1] - (dilate[1] * (kw - 1) + 1)) // stride[1] + 1
    out = np.zeros((n_img, filters, oh, ow))
    for n, f, i, j in np.ndindex(out.shape):
        group = f // (filters // groups)
        total = 0.0 if b is None else b[f]
        for c, ki, kj in np.ndindex(cg, kh, kw):
            h = i * stride[0] - pad[0] + ki * dilate[0]
            v = j * stride[1] - pad[1] + kj * dilate[1]
            if 0 <= h < height and 0 <= v < width:
                total += x[n, group * cg + c, h, v] * w[f, c, ki, kj]
        out[n, f, i, j] = total
    return out


CONFIGS = [  # (data shape, kernel, stride, pad, dilate, num_group, num_filter, no_bias)
    ((2, 3, 7, 9), (3, 5), (2, 1), (1, 2), (1, 1), 1, 4, False),
    ((1, 2, 6, 5), (1, 1), (1, 1), (0, 0), (1, 1), 1, 3, True),
    ((2, 4, 8, 7), (3, 3), (2, 2), (1, 1), (2, 1), 2, 6, False),
    ((3, 6, 5, 6), (2, 2), (1, 3), (0, 1), (1, 1), 3, 3, False),
    ((2, 5, 7, 6), (3, 3), (2, 1), (1, 1), (1, 1), 5, 10, False),  # depthwise, multiplier 2
]


def build(kernel, stride, pad, dilate, groups, filters, no_bias):
    return S.Convolution(S.Variable("data"), kernel=kernel, stride=stride, pad=pad,
                         dilate=dilate, num_group=groups, num_filter=filters, no_bias=no_bias,
                         name="conv")


def draw(rng, sym, shape):
    arg_shapes, _, _ = sym.infer_shape(data=shape)
    return {n: rng.standard_normal(s) for n, s in zip(sym.list_arguments(), arg_shapes)}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "x".join(map(str, c[1])))
def test_reference_and_native_match_direct_loops(config):
    shape, kernel, stride, pad, dilate, groups, filters, no_bias = config
    sym = build(kernel, stride, pad, dilate, groups, filters, no_bias)
    values = draw(np.random.default_rng(0), sym, shape)
    expected = naive_conv(values["data"], values["conv_weight"], values.get("conv_bias"),
                          stride, pad, dilate, groups)
    reference = evaluate(sym.outputs, values)[0]
    np.testing.assert_allclose(reference, expected, rtol=1e-12, atol=1e-12)
    exe = sym.simple_bind(sg.cpu(), data=shape, type_dict={"data": "float64"})
    for name, value in values.items():
        exe.arg_dict[name][:] = value
    np.testing.assert_allclose(exe.forward()[0], expected, rtol=1e-12, atol=1e-12)


def test_im2col_and_col2im_are_adjoint():
    """<im2col(x), c> == <x, col2im(c)>, natively: the gradient rule relies on it."""
    attrs = {"kernel": (3, 2), "stride": (2, 1), "pad": (1, 1), "dilate": (1, 2)}
    x, c = S.Variable("x"), S.Variable("c")
    cols = S.Group([create("_im2col", (x,), attrs), create("_col2im", (c, x), attrs)])
    shape = (2, 3, 6, 7)
    (_, c_shape), _, _ = cols.infer_shape(x=shape)
    assert c_shape == (3 * 3 * 2, 2 * 3 * 7)  # OH = (6+2-3)//2+1, OW = 7+2-3+1
    rng = np.random.default_rng(1)
    xv, cv = rng.standard_normal(shape), rng.standard_normal(c_shape)
    exe = cols.simple_bind(sg.cpu(), grad_req="null", x=shape, c=c_shape,
                           type_dict={"x": "float64", "c": "float64"})
    exe.arg_dict["x"][:], exe.arg_dict["c"][:] = xv, cv
    patches, image = exe.forward()
    assert np.isclose(np.sum(patches * cv), np.sum(xv * image), rtol=1e-12)
    ref_patches, ref_image = evaluate(cols.outputs, {"x": xv, "c": cv})
    np.testing.assert_allclose(patches, ref_patches, rtol=0, atol=0)
    np.testing.assert_allclose(image, ref_image, rtol=1e-12, atol=1e-12)


# ---- errors ----------------------------------------------------------------------------------
def infer_error(sym, **shapes):
    with pytest.raises(ShapeError) as info:
        sym.infer_shape(**shapes)
    return str(info.value)


def test_too_small_input_names_node_op_and_shapes():
    sym = S.Convolution(S.Variable("data"), kernel=(5, 5), num_filter=2, name="conv1")
    message = infer_error(sym, data=(1, 1, 4, 9))
    for part in ("Convolution node 'conv1'", "(1, 1, 4, 9)", "(5, 5)"):
        assert part in message


def test_channels_not_divisible_by_groups():
    sym = S.Convolution(S.Variable("data"), kernel=(1, 1), num_filter=4, num_group=2, name="c")
    message = infer_error(sym, data=(1, 3, 4, 4))
    assert "Convolution node 'c'" in message and "num_group=2" in message


def test_given_weight_shape_contradicts_data():
    sym = S.Convolution(S.Variable("data"), kernel=(3, 3), num_filter=4, name="c")
    message = infer_error(sym, data=(1, 3, 8, 8), c_weight=(4, 2, 3, 3))
    assert "weight" in message and "(4, 2, 3, 3)" in message and "(4, 3, 3, 3)" in message


def test_data_must_be_4d():
    sym = S.Convolution(S.Variable("data"), kernel=(3, 3), num_filter=4, name="c")
    assert "4-D" in infer_error(sym, data=(3, 8, 8))


@pytest.mark.parametrize("attrs,needle", [
    ({"kernel": (3, 3, 3)}, "2-D"),
    ({"kernel": (3, 3), "num_group": 3}, "divisible"),
    ({"kernel": (3, 3), "layout": "NHWC"}, "NCHW"),
    ({"kernel": (3, 3), "stride": (0, 1)}, "stride"),
])
def test_bad_attributes(attrs, needle):
    with pytest.raises(OpAttributeError, match=needle):
        S.Convolution(S.Variable("data"), num_filter=4, name="c", **attrs)


def test_defaults_and_ignored_attributes():
    sym = S.Convolution(S.Variable("data"), kernel=(3, 3), num_filter=8, workspace=512,
                        cudnn_tune="fastest", cudnn_off=True, layout="NCHW", name="c")
    args, outs, _ = sym.infer_shape(data=(2, 3, 10, 12))
    assert args == [(2, 3, 10, 12), (8, 3, 3, 3), (8,)] and outs == [(2, 8, 8, 10)]
    assert sym.list_arguments() == ["data", "c_weight", "c_bias"]


# ---- LeNet -----------------------------------------------------------------------------------
def lenet():
    net = S.Variable("data")
    for i, filters in enumerate((20, 50), 1):
        net = S.Convolution(data=net, kernel=(5, 5), num_filter=filters, name=f"conv{i}")
        net = S.Activation(net, act_type="tanh", name=f"tanh{i}")
        net = S.Pooling(data=net, pool_type="max", kernel=(2, 2), stride=(2, 2),
                        name=f"pool{i}")
    net = S.Flatten(net, name="flatten")
    net = S.Activation(S.FullyConnected(net, num_hidden=500, name="fc1"), act_type="tanh",
                       name="tanh3")
    return S.SoftmaxOutput(S.FullyConnected(net, num_hidden=10, name="fc2"), name="softmax")


def test_lenet_forward_backward_natively_matches_reference():
    sym = lenet()
    exe = sym.simple_bind(sg.cpu(), data=(8, 1, 28, 28))
    shapes = {n: a.shape for n, a in exe.arg_dict.items()}
    assert shapes["conv2_weight"] == (50, 20, 5, 5) and shapes["fc1_weight"] == (500, 800)
    rng = np.random.default_rng(2)
    values = {n: rng.standard_normal(s) * 0.1 for n, s in shapes.items()}
    values["softmax_label"] = rng.integers(0, 10, 8).astype(np.float64)
    for name, value in values.items():
        exe.arg_dict[name][:] = value
    probs = exe.forward_backward()[0]
    feed = {n: exe.arg_dict[n].astype(np.float64) for n in values}
    np.testing.assert_allclose(probs, evaluate(sym.outputs, feed)[0], rtol=1e-4, atol=1e-5)
    wrt = [n for n in sym.list_arguments() if n not in ("data", "softmax_label")]
    ref_grads = evaluate(S.grad(sym, wrt).outputs, feed)
    for name, ref in zip(wrt, ref_grads):
        scale = np.abs(ref).max()
        np.testing.assert_allclose(exe.grad_dict[name], ref, rtol=1e-3, atol=1e-4 * scale,
                                   err_msg=name)


def test_grouped_kernel_count_does_not_grow_with_groups():
    """One kernel per phase step over all groups (32 groups used to give 205 kernels), and
    the numbers still match the direct loops and the reference gradient."""
    counts = {}
    for groups in (2, 8, 32):
        sym = S.MakeLoss(S.sum(S.Convolution(S.Variable("data"), kernel=(3, 3), pad=(1, 1),
                                             stride=(1, 2), num_filter=32, num_group=groups,
                                             name="conv")))
        shape = (2, 32, 6, 9)
        exe = sym.simple_bind(sg.cpu(), data=shape, type_dict={"data": "float64"})
        values = draw(np.random.default_rng(groups), sym, shape)
        for name, value in values.items():
            exe.arg_dict[name][:] = value
        counts[groups] = len(exe.compiled.program.program.kernels)
        conv = S.Convolution(S.Variable("data"), kernel=(3, 3), pad=(1, 1), stride=(1, 2),
                             num_filter=32, num_group=groups, name="conv")
        expected = naive_conv(values["data"], values["conv_weight"], values["conv_bias"],
                              (1, 2), (1, 1), (1, 1), groups)
        np.testing.assert_allclose(evaluate(conv.outputs, values)[0], expected, rtol=1e-12,
                                   atol=1e-12)
        exe.forward(is_train=True)
        exe.backward()
        grads = evaluate(S.grad(sym, ["data", "conv_weight"]).outputs, values)
        for name, grad in zip(["data", "conv_weight"], grads):
            np.testing.assert_allclose(exe.grad_dict[name], grad, rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(exe.grad_dict["conv_bias"], np.full(32, 2 * 6 * 5.0))
    assert counts[2] == counts[8] == counts[32] <= 10, counts


def test_grouped_gradient_op_rejects_a_mismatched_dy():
    from symgraph.compose import create

    attrs = {"kernel": (3, 3), "num_group": 2, "num_filter": 4}
    sym = create("_grouped_conv_weight_grad", (S.Variable("dy"), S.Variable("x")), attrs)
    with pytest.raises(ShapeError, match=r"not the output of a 2-group convolution"):
        sym.infer_shape(dy=(2, 4, 5, 5), x=(2, 4, 6, 6))
