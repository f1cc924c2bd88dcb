"""Module input that used to give wrong numbers silently (issue 10, section 3): each case
raises a SymgraphError naming the input or parameter and both shapes, as MXNet raises."""

import numpy as np
import pytest
from rt_helpers import letter_mlp

import symgraph as sg
from runtime.io import DataBatch, DataDesc, NDArrayIter


def data(n=60, features=16, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features)).astype(np.float32)
    return X, rng.integers(0, 26, size=n).astype(np.float32)


def bound(batch=20, features=16, **init):
    mod = sg.mod.Module(letter_mlp())
    mod.bind([("data", (batch, features))], [("softmax_label", (batch,))])
    mod.init_params(**init)
    return mod


# ---- a batch whose feature shape differs from the bound one ------------------------------------
def test_feature_shape_change_raises_naming_input_and_shapes():
    mod = bound()
    X, y = data(features=15)
    with pytest.raises(sg.ShapeError, match=r"input 'data' was bound with shape \(20, 16\), "
                                            r"the batch has shape \(20, 15\).*fc1_weight"):
        mod.forward(DataBatch([X[:20]], [y[:20]]))
    with pytest.raises(sg.ShapeError, match="only the batch size may change"):
        mod.predict(NDArrayIter(X, y, 20))
    with pytest.raises(ValueError):  # what MXNet users catch
        mod.reshape([("data", (20, 15))])


def test_batch_size_change_alone_still_reshapes():
    mod = bound()
    X, y = data()
    out = mod.predict(NDArrayIter(X, y, 7))
    whole = mod.predict(NDArrayIter(X, y, 20))
    np.testing.assert_allclose(out, whole, rtol=1e-5, atol=1e-7)
    mod.reshape([("data", (5, 16))], [("softmax_label", (5,))])
    assert mod.data_shapes[0].shape == (5, 16)


def test_fit_with_mismatched_eval_set_raises_before_training():
    X, y = data()
    Xv, yv = data(features=15, seed=1)
    mod = sg.mod.Module(letter_mlp())
    epochs = []
    with pytest.raises(sg.ShapeError, match=r"\(20, 15\)"):
        mod.fit(NDArrayIter(X, y, 20), eval_data=NDArrayIter(Xv, yv, 20), num_epoch=1,
                epoch_end_callback=lambda *a: epochs.append(a))
    assert epochs == []  # refused before the first epoch, not after it


def test_fit_with_other_eval_batch_size_runs():
    X, y = data()
    mod = sg.mod.Module(letter_mlp())
    mod.fit(NDArrayIter(X, y, 20), eval_data=NDArrayIter(X, y, 30), num_epoch=1)
    assert "accuracy" in mod.history[0]["validation"]


# ---- label names the data does not provide ---------------------------------------------------
def test_label_name_mismatch_raises_at_bind():
    X, y = data()
    mod = sg.mod.Module(letter_mlp(label="label"), label_names=["label"])
    with pytest.raises(sg.BindError, match=r"\['label'\] would never be fed"):
        mod.fit(NDArrayIter(X, y, 20), num_epoch=1)  # the iterator calls it softmax_label
    assert not mod.binded
    with pytest.raises(ValueError, match="label names do not match"):
        mod.bind([("data", (20, 16))], [("softmax_label", (20,))])


def test_label_name_given_to_a_param_slot_raises():
    X, y = data()
    with pytest.warns(UserWarning):
        mod = sg.mod.Module(letter_mlp(), label_names=["label"])
    with pytest.raises(sg.BindError, match=r"\['softmax_label'\] would be trained as param"):
        mod.fit(NDArrayIter(X, y, 20), num_epoch=1)


def test_inference_bind_without_labels_still_only_warns():
    mod = sg.mod.Module(letter_mlp())
    with pytest.warns(UserWarning, match="label_shapes don't match"):
        mod.bind([("data", (8, 16))], for_training=False)
    assert mod.binded


# ---- parameters whose shapes or names do not fit ---------------------------------------------
def test_set_params_transposed_weight_raises():
    mod = bound()
    arg, aux = mod.get_params()
    arg["fc1_weight"] = arg["fc1_weight"].T.copy()
    for allow_missing in (False, True):
        with pytest.raises(sg.ShapeError, match=r"set_params: parameter 'fc1_weight' has "
                                                r"shape \(16, 64\), the symbol needs "
                                                r"\(64, 16\)"):
            mod.set_params(arg, aux, allow_missing=allow_missing)


def test_set_params_does_not_broadcast():
    mod = bound()
    arg, aux = mod.get_params()
    arg["fc1_weight"] = np.ones((1, 16), np.float32)  # numpy would broadcast it silently
    with pytest.raises(sg.ShapeError, match=r"\(1, 16\)"):
        mod.set_params(arg, aux)


def test_init_params_with_misfitting_arg_params_raises():
    mod = sg.mod.Module(letter_mlp())
    mod.bind([("data", (20, 16))], [("softmax_label", (20,))])
    with pytest.raises(sg.ShapeError, match=r"init_params: parameter 'fc2_bias' has shape "
                                            r"\(10,\), the symbol needs \(26,\)"):
        mod.init_params(arg_params={"fc2_bias": np.zeros(10, np.float32)},
                        allow_missing=True)


def test_extra_params_raise_unless_allow_extra():
    mod = bound()
    arg, aux = mod.get_params()
    extra = dict(arg, conv1_weight=np.zeros((20, 1, 5, 5), np.float32))
    with pytest.raises(sg.ParameterError, match='Find name "conv1_weight"'):
        mod.set_params(extra, aux)
    with pytest.raises(sg.ParameterError, match="conv1_weight"):
        mod.set_params(extra, aux, allow_missing=True)
    mod.set_params(extra, aux, allow_extra=True)
    np.testing.assert_array_equal(mod.get_params()[0]["fc1_weight"], arg["fc1_weight"])


def lenet_params():
    """Parameter shapes of the CLI's LeNet for MNIST: conv layers plus fc1/fc2 that share
    the letter MLP's names with other shapes."""
    shapes = {"conv1_weight": (20, 1, 5, 5), "conv1_bias": (20,), "conv2_weight": (50, 20, 5, 5),
              "conv2_bias": (50,), "fc1_weight": (500, 800), "fc1_bias": (500,),
              "fc2_weight": (10, 500), "fc2_bias": (10,)}
    return {n: np.full(s, 0.5, np.float32) for n, s in shapes.items()}


def save_checkpoint(prefix, arg_params):
    letter_mlp().save(f"{prefix}-symbol.json")
    sg.nd.save(f"{prefix}-0001.params", {f"arg:{k}": v for k, v in arg_params.items()})


def test_load_and_bind_with_other_models_params_raises(tmp_path):
    prefix = str(tmp_path / "letter")
    save_checkpoint(prefix, {k: v for k, v in lenet_params().items()
                             if not k.startswith("conv")})
    mod = sg.mod.Module.load(prefix, 1)
    with pytest.raises(sg.ShapeError, match=r"letter-0001.params: parameter 'fc1_weight' has "
                                            r"shape \(500, 800\), the symbol needs \(64, 16\)"):
        mod.bind([("data", (20, 16))], [("softmax_label", (20,))])
    save_checkpoint(prefix, lenet_params())
    with pytest.raises(sg.ParameterError, match='Find name "conv1_bias"'):
        sg.mod.Module.load(prefix, 1).bind([("data", (20, 16))], [("softmax_label", (20,))])


def test_load_and_bind_with_missing_params_raises(tmp_path):
    prefix = str(tmp_path / "letter")
    arg, _ = bound().get_params()
    save_checkpoint(prefix, {k: v for k, v in arg.items() if k != "fc2_bias"})
    mod = sg.mod.Module.load(prefix, 1)
    with pytest.raises(sg.ParameterError, match="no value for the arguments fc2_bias"):
        mod.bind([("data", (20, 16))], [("softmax_label", (20,))])


def test_load_and_bind_with_fitting_params_round_trips(tmp_path):
    prefix = str(tmp_path / "letter")
    arg, _ = bound().get_params()
    save_checkpoint(prefix, arg)
    mod = sg.mod.Module.load(prefix, 1)
    mod.bind([("data", (20, 16))], [("softmax_label", (20,))])
    for name, value in arg.items():
        np.testing.assert_array_equal(mod.get_params()[0][name], value)


def test_executor_copy_params_from_names_param_and_shapes():
    exe = letter_mlp().simple_bind(sg.cpu(), data=(20, 16))
    with pytest.raises(sg.SymgraphError, match=r"'fc1_weight' has shape \(16, 64\), expected "
                                               r"\(64, 16\)"):
        exe.copy_params_from({"fc1_weight": np.zeros((16, 64))})
    with pytest.raises(sg.ParameterError, match='"nope"'):
        exe.copy_params_from({"nope": np.zeros(3)})


def test_force_rebind_with_other_features_raises():
    mod = bound()
    with pytest.raises(sg.ShapeError, match=r"'fc1_weight' has shape \(64, 16\), the symbol "
                                            r"needs \(64, 15\)"):
        mod.bind([("data", (20, 15))], [("softmax_label", (20,))], force_rebind=True)


# ---- labels of other dtypes ------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "float16"])
def test_labels_of_any_dtype_are_converted(dtype):
    X, y = data()
    reference = sg.mod.Module(letter_mlp())
    reference.bind([("data", (20, 16))], [("softmax_label", (20,))])
    reference.init_params(sg.init.Xavier())
    arg, aux = reference.get_params()
    mod = sg.mod.Module(letter_mlp())
    mod.bind([DataDesc("data", (20, 16))], [DataDesc("softmax_label", (20,), dtype)])
    mod.set_params(arg, aux)
    for m, labels in ((reference, y[:20]), (mod, y[:20].astype(dtype))):
        m.init_optimizer(optimizer_params={"learning_rate": 0.5})
        m.forward_backward(DataBatch([X[:20]], [labels]))
        m.update()
    for name in arg:
        np.testing.assert_array_equal(mod.get_params()[0][name], reference.get_params()[0][name])


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "float16"])
def test_simple_bind_label_dtypes(dtype):
    exe = letter_mlp().simple_bind(sg.cpu(), data=(4, 16), type_dict={"softmax_label": dtype})
    exe.arg_dict["softmax_label"][:] = np.array([3, 0, 25, 7], dtype=dtype)
    exe.forward(is_train=True)
    exe.backward()
    grad = exe.grad_dict["fc2_bias"]
    expected = 4 / 26 - np.bincount([3, 0, 25, 7], minlength=26)  # zero weights: uniform
    np.testing.assert_allclose(grad, expected, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["int32", "uint8", "float16"])
def test_embedding_and_one_hot_indices_of_any_dtype(dtype):
    d = sg.sym.Variable("data")
    net = sg.sym.Group([sg.sym.Embedding(d, input_dim=5, output_dim=3, name="emb"),
                        sg.sym.one_hot(d, depth=5)])
    exe = net.simple_bind(sg.cpu(), data=(4,), type_dict={"data": dtype}, grad_req="null")
    exe.arg_dict["emb_weight"][:] = np.arange(15).reshape(5, 3)
    exe.arg_dict["data"][:] = np.array([4, 0, 2, 1], dtype=dtype)
    emb, hot = exe.forward()
    np.testing.assert_array_equal(emb, np.arange(15).reshape(5, 3)[[4, 0, 2, 1]])
    np.testing.assert_array_equal(hot, np.eye(5)[[4, 0, 2, 1]])


def test_executor_reshape_refuses_changing_unspecified_params():
    exe = letter_mlp().simple_bind(sg.cpu(), data=(20, 16))
    exe.arg_dict["fc1_weight"][:] = 0.25
    with pytest.raises(sg.ShapeError, match=r"unspecified argument 'fc1_weight' changed from "
                                            r"\(64, 16\) to \(64, 15\)"):
        exe.reshape(data=(20, 15), softmax_label=(20,))
    smaller = exe.reshape(data=(5, 16), softmax_label=(5,))
    np.testing.assert_array_equal(smaller.arg_dict["fc1_weight"], exe.arg_dict["fc1_weight"])
    other = exe.reshape(partial_shaping=True, data=(20, 15), softmax_label=(20,))
    assert other.arg_dict["fc1_weight"].shape == (64, 15)
