"""Module over a context list: one executor per context on its slice of the batch, run at
once, giving MXNet's data-parallel numbers (gradients summed, one update with 1/B_total;
BatchNorm's statistics per slice, moving statistics averaged over the devices)."""

import threading

import numpy as np
import pytest
from rt_helpers import letter_mlp

import symgraph as sg
from runtime.device_group import DeviceGroup, split_sizes

pytestmark = pytest.mark.jit

CPUS = [sg.cpu(0), sg.cpu(1)]


def _data(batch, features=16, classes=26, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, features)).astype(np.float32)
    return x, rng.integers(0, classes, batch).astype(np.float32)


def _trained(context, net, x, y, batch, steps=4, work_load_list=None, optimizer="sgd",
             **bind):
    sg.random.seed(3)
    it = sg.io.NDArrayIter(x, y, batch_size=batch)
    mod = sg.mod.Module(net, context=context, work_load_list=work_load_list)
    mod.bind(data_shapes=it.provide_data, label_shapes=it.provide_label, **bind)
    mod.init_params(sg.init.Xavier())
    mod.init_optimizer(optimizer=optimizer,
                       optimizer_params={"learning_rate": 0.1, "momentum": 0.9})
    for batch_ in list(it)[:steps]:
        mod.forward_backward(batch_)
        mod.update()
    return mod


def _close(a, b, tol=2e-5):
    for name in a:
        np.testing.assert_allclose(a[name].asnumpy(), b[name].asnumpy(), rtol=tol, atol=tol,
                                   err_msg=name)


def test_split_sizes_follow_mxnet():
    assert split_sizes(100, [1, 1]) == [50, 50]
    assert split_sizes(7, [1, 1]) == [4, 3]
    assert split_sizes(8, [1, 3]) == [2, 6]
    assert split_sizes(10, [1, 1, 1]) == [3, 3, 4]


@pytest.mark.parametrize("work_load", [None, [1, 3]])
def test_two_contexts_train_like_one(work_load):
    x, y = _data(48)
    one = _trained(sg.cpu(), letter_mlp(24, 26), x, y, batch=12)
    two = _trained(CPUS, letter_mlp(24, 26), x, y, batch=12, work_load_list=work_load)
    assert isinstance(two._bound.exe, DeviceGroup)
    _close(one.get_params()[0], two.get_params()[0])
    np.testing.assert_allclose(two.get_outputs()[0].asnumpy(), one.get_outputs()[0].asnumpy(),
                               rtol=1e-5, atol=1e-6)


def test_fit_and_score_with_context_list_match_one_context():
    x, y = _data(60, seed=1)

    def fitted(context):
        sg.random.seed(5)
        mod = sg.mod.Module(letter_mlp(20, 26), context=context)
        train = sg.io.NDArrayIter(x, y, batch_size=10)
        mod.fit(train, num_epoch=2, optimizer="adam", optimizer_params={"learning_rate": 0.01},
                initializer=sg.init.Xavier())
        return mod, mod.score(sg.io.NDArrayIter(x, y, batch_size=7), "acc")[0][1]

    one, one_acc = fitted(sg.cpu())
    two, two_acc = fitted(CPUS)
    _close(one.get_params()[0], two.get_params()[0], tol=1e-4)
    assert one_acc == two_acc


def test_other_batch_size_shares_parameters():
    x, y = _data(24)
    mod = _trained(CPUS, letter_mlp(24, 26), x, y, batch=12)
    before = mod.get_params()[0]
    mod.forward(sg.io.DataBatch([x[:5]], [y[:5]]), is_train=False)
    assert isinstance(mod._bound.exe, DeviceGroup) and mod.get_outputs()[0].shape == (5, 26)
    single = sg.mod.Module(letter_mlp(24, 26))
    single.bind(data_shapes=[("data", (5, 16))], label_shapes=[("softmax_label", (5,))],
                for_training=False)
    single.set_params(*mod.get_params())
    single.forward(sg.io.DataBatch([x[:5]], [y[:5]]), is_train=False)
    np.testing.assert_allclose(mod.get_outputs()[0].asnumpy(),
                               single.get_outputs()[0].asnumpy(), rtol=1e-6)
    _close(before, mod.get_params()[0], tol=0)


def test_input_grads_and_grad_add_concatenate_and_accumulate():
    x, y = _data(10)
    batch = sg.io.DataBatch([x], [y])
    mods = []
    for context in (sg.cpu(), CPUS):
        mod = sg.mod.Module(letter_mlp(24, 26), context=context)
        mod.bind(data_shapes=[("data", (10, 16))], label_shapes=[("softmax_label", (10,))],
                 inputs_need_grad=True, grad_req="add")
        sg.random.seed(1)
        mod.init_params(sg.init.Xavier())
        for _ in range(2):
            mod.forward_backward(batch)
        mods.append(mod)
    one, two = mods
    np.testing.assert_allclose(two.get_input_grads()[0].asnumpy(),
                               one.get_input_grads()[0].asnumpy(), rtol=1e-5, atol=1e-7)
    for name in ("fc1_weight", "fc2_bias"):
        np.testing.assert_allclose(two._bound.exe.grad_dict[name],
                                   one._bound.exe.grad_dict[name], rtol=1e-5, atol=1e-6)


def _bn_net():
    net = sg.sym.FullyConnected(sg.sym.Variable("data"), num_hidden=6, name="fc")
    net = sg.sym.BatchNorm(net, fix_gamma=False, name="bn")
    return sg.sym.SoftmaxOutput(net, name="softmax")


def test_batchnorm_uses_per_slice_statistics_and_averages_moving_ones():
    x, y = _data(8, features=5, classes=6, seed=2)
    two = sg.mod.Module(_bn_net(), context=CPUS)
    two.bind(data_shapes=[("data", (8, 5))], label_shapes=[("softmax_label", (8,))])
    sg.random.seed(4)
    two.init_params(sg.init.Xavier())
    args, aux = two.get_params()
    two.forward(sg.io.DataBatch([x], [y]), is_train=True)
    halves, means = [], []
    for rows in (slice(0, 4), slice(4, 8)):
        one = sg.mod.Module(_bn_net())
        one.bind(data_shapes=[("data", (4, 5))], label_shapes=[("softmax_label", (4,))])
        one.set_params(args, aux)
        one.forward(sg.io.DataBatch([x[rows]], [y[rows]]), is_train=True)
        halves.append(one.get_outputs()[0].asnumpy())
        means.append(one.get_params()[1]["bn_moving_mean"].asnumpy())
    np.testing.assert_allclose(two.get_outputs()[0].asnumpy(), np.concatenate(halves),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(two.get_params()[1]["bn_moving_mean"].asnumpy(),
                               np.mean(means, axis=0), rtol=1e-5, atol=1e-7)


def test_extra_executors_run_on_pool_threads():
    x, y = _data(12)
    mod = _trained(CPUS, letter_mlp(24, 26), x, y, batch=12, steps=1)
    group = mod._bound.exe
    seen = []
    second = group.exes[1]
    original = second.forward_backward

    def spy(*args, **kwargs):
        seen.append(threading.current_thread().name)
        return original(*args, **kwargs)

    second.forward_backward = spy
    mod.forward_backward(sg.io.DataBatch([x], [y]))
    assert seen and seen[0].startswith("symgraph-device")
