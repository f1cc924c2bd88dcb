"""An ungrouped convolution compiles to one batched matmul per pass, image by image, with
the image's im2col block made in its prologue (col2im in the data gradient's tail): the
bias and a following activation run in the forward matmul's epilogue (no NCHW placement
pass, no separate activation), the two gradients read dy as it is (no transposes), and
no buffer holds the columns of the whole batch.  Numbers: against the numpy reference
on padded, strided, dilated, non-square cases, forward and both gradients."""

import numpy as np
import pytest

import symgraph as sg
from codegen.kernels.matmul import MatmulKernel
from symgraph.reference import evaluate

pytestmark = pytest.mark.jit
S = sg.sym


def _net(**attrs):
    x = S.Convolution(S.Variable("data"), name="conv", num_filter=7, **attrs)
    return S.Activation(x, act_type="tanh", name="act")


def _bind(net, shape):
    reqs = {n: "write" for n in net.list_arguments()}
    return net.simple_bind(sg.cpu(), grad_req=reqs, data=shape)


def _kernels(exe, phase):
    return [(call.kernel, call.node_names)
            for call in exe._compiled.full().program.program.phases[phase]]


def test_forward_is_one_batched_matmul_with_im2col_bias_and_activation():
    exe = _bind(_net(kernel=(3, 3)), (4, 3, 9, 8))
    calls = _kernels(exe, "forward")
    assert len(calls) == 1
    (mm, names), = calls
    assert isinstance(mm, MatmulKernel) and mm.batch == 4 and mm.bias == "row"
    assert mm.epilogue is not None and set(names) == {"conv", "act"}
    assert (mm.M, mm.N, mm.K) == (7, 7 * 6, 3 * 9) and mm.prologue is not None
    item = next(p for p in mm.params if p.name == "scratch_item")
    assert item.size == mm.K * mm.N * mm.chunks  # one image's columns per chunk


def test_gradients_are_batched_matmuls_without_transposes():
    exe = _bind(_net(kernel=(3, 3)), (4, 3, 9, 8))
    calls = _kernels(exe, "backward")
    mms = [k for k, _ in calls if isinstance(k, MatmulKernel)]
    assert sorted((k.M, k.N, k.K, k.sums_items) for k in mms) == \
        [(7, 27, 42, True), (27, 42, 7, False)]
    assert all(k.batch == 4 for k in mms)
    assert {k.sums_items: (k.prologue is not None, k.tail is not None) for k in mms} == \
        {True: (True, False), False: (False, True)}
    assert not any("transpose" in ",".join(names) for _, names in calls)
    summed, = (k for k in mms if k.sums_items)
    assert summed.groups == 4  # four images: one partial sum each, added after
    # tanh's gradient, the two matmuls, the partial sums' addition, the bias gradient's sum
    assert len(calls) == 5


@pytest.mark.parametrize("attrs", [
    dict(kernel=(3, 2), stride=(2, 1), pad=(1, 2), dilate=(1, 2)),
    dict(kernel=(1, 1)),
    dict(kernel=(4, 3), pad=(1, 1), no_bias=True),
])
def test_padded_strided_conv_matches_the_reference(attrs):
    net = _net(**attrs)
    exe = _bind(net, (3, 5, 11, 9))
    rng = np.random.default_rng(4)
    feed = {n: rng.standard_normal(a.shape) * 0.5 for n, a in exe.arg_dict.items()}
    for name, value in feed.items():
        exe.arg_dict[name][:] = value
    out = exe.forward(is_train=True)[0]
    head = rng.standard_normal(out.shape)
    exe.backward(out_grads=[head.astype(np.float32)])
    np.testing.assert_allclose(out, evaluate(net.outputs, feed)[0], rtol=1e-4, atol=1e-5)
    wrt = net.list_arguments()
    grads = evaluate(S.grad(net, wrt).outputs,
                     {**feed, "act_output_head_grad": head})
    for name, ref in zip(wrt, grads):
        np.testing.assert_allclose(exe.grad_dict[name], ref, rtol=1e-3,
                                   atol=1e-4 * np.abs(ref).max(), err_msg=name)


def test_pointwise_conv_reads_the_images_as_they_are():
    """A 1x1 stride-1 convolution's image is its own column block: no im2col prologue, no
    col2im tail, in any of the three products (the numbers: the 1x1 case above)."""
    exe = _bind(_net(kernel=(1, 1)), (3, 5, 4, 6))
    mms = [k for phase in ("forward", "backward") for k, _ in _kernels(exe, phase)
           if isinstance(k, MatmulKernel)]
    assert len(mms) == 3 and all(k.batch == 3 for k in mms)
    assert all(k.prologue is None and k.tail is None for k in mms)
    assert not any(p.name == "scratch_item" for k in mms for p in k.params)
