"""Random graphs composed from op-table ops: exported, run in onnxruntime, imported back;
all three agree with symgraph's reference within float32 rounding."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_helpers import F32, assert_close, export_and_run, reference

import symgraph as sg
from runtime.onnx import import_model

S = sg.sym
SHAPE = (3, 4, 5)

# steps on a (3, 4, 5) value; each keeps the shape so any sequence composes
UNARY_STEPS = [
    lambda x: S.tanh(x), lambda x: S.sigmoid(x), lambda x: S.softsign(x),
    lambda x: S.relu(x), lambda x: S.negative(x), lambda x: S.abs(x),
    lambda x: S.Activation(x, act_type="softrelu"),
    lambda x: S.LeakyReLU(x, act_type="leaky", slope=0.1),
    lambda x: S.LeakyReLU(x, act_type="elu", slope=0.5),
    lambda x: S.LeakyReLU(x, act_type="selu"), lambda x: S.LeakyReLU(x, act_type="gelu"),
    lambda x: x * 1.5, lambda x: x + 0.25, lambda x: 2.0 - x, lambda x: S.clip(x, -1.0, 1.0),
    lambda x: S.softmax(x, axis=1), lambda x: S.log_softmax(x, axis=-1),
    lambda x: S.transpose(S.transpose(x, axes=(2, 0, 1)), axes=(1, 2, 0)),
    lambda x: S.Reshape(S.Reshape(x, shape=(-3, -2)), shape=(3, 4, 5)),
    lambda x: S.SwapAxis(S.SwapAxis(x, dim1=0, dim2=2), dim1=0, dim2=2),
    lambda x: S.broadcast_like(S.mean(x, axis=1, keepdims=True), x),
    lambda x: S.sqrt(S.square(x) + 1.0),
]


def _binary_step(rng, x, fresh):
    kind = rng.integers(4)
    if kind == 0:
        return S.elemwise_mul(x, fresh((3, 4, 5)))
    if kind == 1:
        return S.broadcast_add(x, fresh((1, 4, 1)))
    if kind == 2:
        return S.Concat(*S.split(x, num_outputs=2, axis=1)[::-1], dim=1)
    return S.broadcast_maximum(x, fresh((3, 1, 5)))


def random_graph(seed: int):
    rng = np.random.default_rng(seed)
    shapes = {"data": SHAPE}

    def fresh(shape):
        name = f"v{len(shapes)}"
        shapes[name] = shape
        return S.Variable(name)

    x = S.Variable("data")
    for _ in range(rng.integers(4, 9)):
        if rng.random() < 0.3:
            x = _binary_step(rng, x, fresh)
        else:
            x = UNARY_STEPS[rng.integers(len(UNARY_STEPS))](x)
    head = S.FullyConnected(x, fresh((6, 20)), fresh((6,)), num_hidden=6)
    values = {k: rng.standard_normal(v).astype(F32) for k, v in shapes.items()}
    return S.Group([head, S.sum(x, axis=(0, 2))]), values


@pytest.mark.parametrize("seed", range(12))
def test_random_graph(tmp_path, seed):
    symbol, values = random_graph(seed)
    want = reference(symbol, values)
    _, got = export_and_run(tmp_path, symbol, {}, values)
    back, arg_params, aux_params = import_model(tmp_path / "model.onnx")
    again = reference(back, {**values, **arg_params, **aux_params})
    for k, w in enumerate(want):
        assert_close(got[k], w, f"seed {seed} onnxruntime output {k}")
        assert_close(np.asarray(again[k]), w, f"seed {seed} imported output {k}")
