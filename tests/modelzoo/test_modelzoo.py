"""MXNet 1.9.1 Gluon model-zoo exports load and match MXNet's own numbers.

Each case in ``data/`` was written by ``make_references.py`` (run with MXNet, never needed
here): the symbol file and parameters ``export()`` wrote, and MXNet's outputs and input
gradients of ``sum(out * head)`` in inference mode (moving statistics) and in training
mode (batch statistics), plus the moving statistics after that training forward.  The
files are loaded exactly as a user would: ``sg.model.load_checkpoint`` and
``sg.mod.Module``.  A missing op fails with symgraph's own error; no case is skipped.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import symgraph as sg

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
NAMES = sorted(os.listdir(DATA))  # in the repository: a missing folder is an error

pytestmark = [pytest.mark.modelzoo, pytest.mark.jit]

#: float32 rounding through up to a hundred layers: the largest deviation relative to the
#: largest reference magnitude.
TOLERANCE = 2e-4


def test_every_architecture_has_a_case():
    assert NAMES == sorted(["alexnet", "densenet121", "inceptionv3", "mobilenet0.25",
                            "mobilenet1.0", "mobilenetv2_1.0", "resnet18_v1", "resnet18_v2",
                            "resnet50_v1", "squeezenet1.1", "vgg11_bn"])


def _reference(name):
    ref = sg.nd.load(os.path.join(DATA, name, "reference.nd"))
    ref["data"] = ref["data"].astype(np.float32)
    return ref


def _checkpoint(name):
    return sg.model.load_checkpoint(os.path.join(DATA, name, "model"), 0)


def _without_dropout(symbol):
    """The same graph with every Dropout's p set to 0: MXNet's random masks cannot be
    reproduced, so the training references were made with rate 0 (see the generator)."""
    spec = json.loads(symbol.tojson())
    for node in spec["nodes"]:
        if node["op"] == "Dropout":
            node["attrs"]["p"] = "0"
    return sg.sym.load_json(json.dumps(spec))


def _module(symbol, shape, arg_params, aux_params):
    mod = sg.mod.Module(symbol, data_names=["data"], label_names=None)
    mod.bind(data_shapes=[("data", shape)], for_training=True, inputs_need_grad=True)
    mod.set_params(arg_params, aux_params)
    return mod


def _run(mod, ref, is_train):
    mod.forward(sg.io.DataBatch([ref["data"]]), is_train=is_train)
    out = np.array(mod.get_outputs()[0])
    mod.backward([ref["head"]])
    return out, np.array(mod.get_input_grads()[0])


def assert_close(actual, expected, what, tolerance=TOLERANCE):
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = float(np.max(np.abs(expected)))
    worst = float(np.max(np.abs(actual - expected)))
    assert worst <= tolerance * scale, (
        f"{what}: max |symgraph - MXNet| = {worst:.3g}, {worst / scale:.3g} of the largest "
        f"value {scale:.3g} (tolerance {tolerance:.3g})")


@pytest.mark.parametrize("name", NAMES)
def test_inference_matches_mxnet(name):
    ref = _reference(name)
    symbol, arg_params, aux_params = _checkpoint(name)
    mod = _module(symbol, ref["data"].shape, arg_params, aux_params)
    out, grad = _run(mod, ref, is_train=False)
    assert_close(out, ref["infer_out"], f"{name} inference output")
    if "infer_grad" in ref:
        assert_close(grad, ref["infer_grad"], f"{name} inference input gradient")


@pytest.mark.parametrize("name", NAMES)
def test_training_mode_matches_mxnet(name):
    ref = _reference(name)
    symbol, arg_params, aux_params = _checkpoint(name)
    mod = _module(_without_dropout(symbol), ref["data"].shape, arg_params, aux_params)
    out, grad = _run(mod, ref, is_train=True)
    assert_close(out, ref["train_out"], f"{name} training-mode output")
    # MXNet's own float32 and float64 gradients differ by train_grad_rounding (BatchNorm's
    # training gradient through deep narrow nets is ill-conditioned): allow twice that.
    rounding = float(ref["train_grad_rounding"][0])
    assert_close(grad, ref["train_grad"], f"{name} training-mode input gradient",
                 max(TOLERANCE, 2 * rounding))
    _, aux_after = mod.get_params()
    expected = {k.split(":", 1)[1]: v for k, v in ref.items() if k.startswith("aux_after:")}
    assert sorted(aux_after) == sorted(expected)
    for aux_name, value in expected.items():
        assert_close(np.array(aux_after[aux_name]), value, f"{name} {aux_name} after one step")
