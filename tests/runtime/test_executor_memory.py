"""The executor memory model: arguments, gradients and aux states live outside the arena
(in the caller's arrays or the executor's own block and gradient bucket), shared without
copies by bind, simple_bind(shared_exec=...), reshape and Module; arrays that cannot be
shared are refused with a fix; Dropout seeds follow sg.random.seed."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from rt_helpers import letter_mlp

import symgraph as sg
from runtime.datasets import load_letter_recognition
from runtime.io import NDArrayIter
from symgraph.errors import ExecutorError, SymgraphError

SHAPES = {"data": (32, 16), "fc1_weight": (64, 16), "fc1_bias": (64,),
          "fc2_weight": (26, 64), "fc2_bias": (26,), "softmax_label": (32,)}
PARAMS = ("fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias")


@pytest.fixture(scope="module")
def letter():
    X, y = load_letter_recognition()
    return X[:32], y[:32]


def arrays(letter, seed=0):
    rng = np.random.default_rng(seed)
    out = {n: (rng.standard_normal(s) * 0.2).astype(np.float32) for n, s in SHAPES.items()}
    out["data"], out["softmax_label"] = letter[0].copy(), letter[1].copy()
    return out


def reference(values):
    """Forward and gradients of the MLP in numpy (SoftmaxOutput's gradient: p - onehot)."""
    x, label = values["data"].astype(np.float64), values["softmax_label"].astype(int)
    h = x @ values["fc1_weight"].T + values["fc1_bias"]
    a = np.maximum(h, 0)
    z = a @ values["fc2_weight"].T + values["fc2_bias"]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d = p.copy()
    d[np.arange(len(label)), label] -= 1
    da = (d @ values["fc2_weight"]) * (h > 0)
    return p, {"fc2_weight": d.T @ a, "fc2_bias": d.sum(0), "fc1_weight": da.T @ x,
               "fc1_bias": da.sum(0)}


# ---- bind shares the caller's arrays ------------------------------------------------------
def test_bind_writes_gradients_into_the_callers_arrays(letter):
    values = arrays(letter)
    grads = {n: np.full(SHAPES[n], np.nan, np.float32) for n in PARAMS}
    exe = letter_mlp().bind(sg.cpu(), args=values, args_grad=grads)
    exe.forward(is_train=True)
    exe.backward()
    probs, want = reference(values)
    np.testing.assert_allclose(exe.outputs[0], probs, rtol=1e-4, atol=1e-5)
    for name in PARAMS:
        assert exe.grad_dict[name] is grads[name]
        np.testing.assert_allclose(grads[name], want[name], rtol=1e-3, atol=1e-4)


def test_bind_sees_later_writes_to_args(letter):
    values = arrays(letter)
    exe = letter_mlp().bind(sg.cpu(), args=values)
    exe.forward()
    first = exe.outputs[0].copy()
    values["fc2_bias"][:] = 0
    values["fc2_bias"][3] = 50.0  # class 3 now wins every row
    values["data"][:] *= 0.5
    exe.forward()
    probs, _ = reference(values)
    np.testing.assert_allclose(exe.outputs[0], probs, rtol=1e-4, atol=1e-5)
    assert not np.allclose(first, exe.outputs[0])
    assert np.all(exe.outputs[0].argmax(1) == 3)


def test_bind_with_lists_positional_and_none_grads(letter):
    values = arrays(letter)
    names = letter_mlp().list_arguments()
    grads = [None if n in ("data", "softmax_label") else np.zeros(SHAPES[n], np.float32)
             for n in names]
    exe = letter_mlp().bind(sg.cpu(), args=[values[n] for n in names], args_grad=grads)
    assert sorted(exe.grad_dict) == sorted(PARAMS)
    exe.forward(is_train=True)
    exe.backward()
    _, want = reference(values)
    np.testing.assert_allclose(grads[names.index("fc1_weight")], want["fc1_weight"],
                               rtol=1e-3, atol=1e-4)
    assert exe.grad_bucket is None  # the caller's arrays are not one bucket


def _bind_error(letter, **change):
    values, grads = arrays(letter), {n: np.zeros(SHAPES[n], np.float32) for n in PARAMS}
    for key, value in change.items():
        kind, name = key.split("__")
        (values if kind == "arg" else grads)[name] = value
    with pytest.raises(ExecutorError) as info:
        letter_mlp().bind(sg.cpu(), args=values, args_grad=grads)
    return str(info.value)


def test_unshareable_arrays_are_refused_with_a_fix(letter):
    message = _bind_error(letter, grad__fc1_weight=np.zeros((64, 16), np.float64))
    assert "args_grad['fc1_weight']" in message and "float64" in message
    assert "np.require" in message and "float32" in message
    message = _bind_error(letter, grad__fc1_weight=np.zeros((16, 64), np.float32).T)
    assert "not C-contiguous" in message and "np.require" in message
    raw = np.zeros(64 * 16 * 4 + 1, np.uint8)[1:]
    misaligned = np.frombuffer(raw.data, np.float32).reshape(64, 16)
    assert not misaligned.flags.aligned
    message = _bind_error(letter, grad__fc1_weight=misaligned)
    assert "not aligned" in message
    frozen = np.zeros((64, 16), np.float32)
    frozen.flags.writeable = False
    assert "read-only" in _bind_error(letter, arg__fc1_weight=frozen)
    assert "shape (16, 64)" in _bind_error(letter, grad__fc1_weight=np.zeros((16, 64),
                                                                             np.float32))


def test_overlapping_arrays_are_refused(letter):
    values = arrays(letter)
    grads = {n: np.zeros(SHAPES[n], np.float32) for n in PARAMS}
    grads["fc1_weight"] = values["fc1_weight"]  # the gradient would overwrite the weight
    with pytest.raises(SymgraphError, match="share memory"):
        letter_mlp().bind(sg.cpu(), args=values, args_grad=grads)
    block = np.zeros(64 * 16 + 64, np.float32)
    values["fc1_weight"] = block[:1024].reshape(64, 16)
    values["fc1_bias"] = block[1000:1064]  # overlaps the weight's last 24 elements
    with pytest.raises(ExecutorError, match="fc1_weight.*fc1_bias|fc1_bias.*fc1_weight"):
        letter_mlp().bind(sg.cpu(), args=values)


# ---- one set of parameters, one gradient bucket -------------------------------------------
def test_grad_bucket_holds_every_parameter_gradient(letter):
    exe = letter_mlp().simple_bind(sg.cpu(), data=(32, 16), softmax_label=(32,))
    values = arrays(letter)
    for name, arr in exe.arg_dict.items():
        arr[:] = values[name]
    bucket = exe.grad_bucket
    assert bucket.ndim == 1 and bucket.dtype == np.float32 and bucket.flags.c_contiguous
    for name in PARAMS:
        assert np.shares_memory(exe.grad_dict[name], bucket)
    for name in ("data", "softmax_label"):  # inputs' gradients are not allreduced
        assert not np.shares_memory(exe.grad_dict[name], bucket)
    assert bucket.size * 4 < sum(np.prod(SHAPES[n]) * 4 + 64 for n in PARAMS)
    for name in PARAMS:
        exe.grad_dict[name][:] = np.nan
    exe.forward_backward()
    _, want = reference(values)
    total = sum(float(want[n].sum()) for n in PARAMS)
    assert abs(float(bucket.sum()) - total) < 1e-3 * max(1.0, abs(total))
    bucket[:] = 0  # an allreduce writes the bucket: the optimizer sees it in grad_dict
    assert all(not exe.grad_dict[n].any() for n in PARAMS)


def test_reshape_and_shared_exec_share_parameters_and_bucket(letter):
    net = letter_mlp()
    exe = net.simple_bind(sg.cpu(), data=(32, 16), softmax_label=(32,))
    small = exe.reshape(data=(8, 16), softmax_label=(8,))
    other = net.simple_bind(sg.cpu(), data=(4, 16), softmax_label=(4,), shared_exec=exe)
    for new in (small, other):
        for name in PARAMS:
            assert new.arg_dict[name] is exe.arg_dict[name]
            assert new.grad_dict[name] is exe.grad_dict[name]
        assert new.grad_bucket is exe.grad_bucket
        assert not np.shares_memory(new.arg_dict["data"], exe.arg_dict["data"])
    exe.arg_dict["fc2_bias"][:] = np.arange(26)
    small.arg_dict["data"][:] = letter[0][:8]
    small.forward()
    want, _ = reference({**{n: exe.arg_dict[n] for n in PARAMS}, "data": letter[0][:8],
                         "softmax_label": letter[1][:8]})
    np.testing.assert_allclose(small.outputs[0], want, rtol=1e-4, atol=1e-5)


def test_module_executors_share_one_set_of_parameters(letter):
    X, y = load_letter_recognition()
    mod = sg.mod.Module(letter_mlp())
    it = NDArrayIter(X[:100], y[:100], batch_size=32)
    mod.fit(it, num_epoch=1, optimizer_params={"learning_rate": 0.1})
    mod.reshape([("data", (7, 16))], [("softmax_label", (7,))])
    mod.predict(NDArrayIter(X[:50], y[:50], batch_size=10))
    executors = [b.exe for b in mod._exec_cache.values()]
    assert len(executors) == 3
    first = executors[0]
    for exe in executors[1:]:
        for name in PARAMS:
            assert exe.arg_dict[name] is first.arg_dict[name]
        assert exe.grad_bucket is first.grad_bucket
    # a step on one executor is seen by the others without a copy
    mod.reshape([("data", (32, 16))], [("softmax_label", (32,))])
    mod.forward_backward(next(iter(it)))
    before = executors[1].arg_dict["fc1_weight"].copy()
    mod.update()
    assert not np.array_equal(executors[1].arg_dict["fc1_weight"], before)


# ---- Dropout seeds ------------------------------------------------------------------------
def dropout_net():
    return sg.sym.Dropout(sg.sym.Variable("data"), p=0.5, name="drop")


def masks(exe, steps=2):
    exe.arg_dict["data"][:] = 1.0
    out = []
    for _ in range(steps):
        exe.forward(is_train=True)
        out.append(exe.outputs[0].copy())
    return np.stack(out)


def test_dropout_masks_follow_the_seed_and_differ_between_executors():
    net = dropout_net()
    sg.random.seed(11)
    a, b = (net.simple_bind(sg.cpu(), data=(40, 30)) for _ in range(2))
    ma, mb = masks(a), masks(b)
    assert not np.array_equal(ma, mb)
    assert not np.array_equal(ma[0], ma[1])  # each step draws a new mask
    assert set(np.unique(ma).tolist()) == {0.0, 2.0}
    sg.random.seed(11)
    again = net.simple_bind(sg.cpu(), data=(40, 30))
    np.testing.assert_array_equal(masks(again), ma)
    sg.random.seed(12)
    assert not np.array_equal(masks(net.simple_bind(sg.cpu(), data=(40, 30))), ma)


_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    import symgraph as sg
    net = sg.sym.Dropout(sg.sym.Variable("data"), p=0.5, name="drop")
    def mask():
        exe = net.simple_bind(sg.cpu(), data=(20, 20))
        exe.arg_dict["data"][:] = 1.0
        exe.forward(is_train=True)
        return "".join("1" if v else "0" for v in exe.outputs[0].ravel())
    unseeded = mask()
    sg.random.seed(5)
    print(unseeded, mask())
""")


def test_dropout_masks_differ_between_processes_unless_seeded(tmp_path):
    runs = [subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True,
                           check=True).stdout.split() for _ in range(2)]
    (free1, seeded1), (free2, seeded2) = runs
    assert free1 != free2
    assert seeded1 == seeded2
