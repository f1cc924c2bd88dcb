"""JAX (CPU) on one workload with the whole training step - forward, backward, the SGD
update of every parameter and BatchNorm's running statistics - under one ``jax.jit``
(parameters donated), plus a jitted prediction; prints one JSON result line.

Plain ``jax.numpy``/``jax.lax`` (no Flax/Optax, so nothing but ``jax``/``jaxlib`` to
install). Weights Glorot-uniform, biases zero, BatchNorm gamma 1 / beta 0 (MXNet's
``Xavier()``); mean cross-entropy (SoftmaxOutput with ``rescale_grad=1/batch``). The first
calls of the step (on a copy of the parameters) and of the prediction are timed as the
compile, before the fit."""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import peer_common as pc  # noqa: E402
from jax import lax  # noqa: E402
from symbols import RESNET18_STAGES  # noqa: E402

RNG = np.random.default_rng(0)


def glorot(shape):
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return jnp.asarray(RNG.uniform(-limit, limit, shape).astype(np.float32))


# ---- layers: each returns (init params, apply(params, x, state, train) -> (y, state)) ----
def dense(cin, cout):
    params = {"w": glorot((cout, cin)), "b": jnp.zeros(cout)}
    return params, lambda p, x: x @ p["w"].T + p["b"]


def conv(x, w, stride=1, pad=0):
    return lax.conv_general_dilated(x, w, (stride, stride), [(pad, pad), (pad, pad)],
                                    dimension_numbers=("NCHW", "OIHW", "NCHW"))


def max_pool(x):
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")


def cross_entropy(logits, y):
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


# ---- networks: (params, bn state, forward(params, state, x, train) -> (logits, state)) ----
def mlp(sizes):
    layers = [dense(a, b) for a, b in zip(sizes, sizes[1:])]
    params = [p for p, _ in layers]

    def forward(params, state, x, train):
        for i, (p, (_, apply)) in enumerate(zip(params, layers)):
            x = apply(p, x)
            if i < len(layers) - 1:
                x = jax.nn.relu(x)
        return x, state
    return params, {}, forward


def conv_net(convs, fcs, act):
    """Conv(+bias)-act-2x2 max pool stages, flatten, dense layers with ``act`` between."""
    params = {"conv": [{"w": glorot((cout, cin, k, k)), "b": jnp.zeros(cout)}
                       for cin, cout, k in convs],
              "fc": [dense(a, b)[0] for a, b in zip(fcs, fcs[1:])]}

    def forward(params, state, x, train):
        for p in params["conv"]:
            x = max_pool(act(conv(x, p["w"]) + p["b"][None, :, None, None]))
        x = x.reshape(len(x), -1)
        for i, p in enumerate(params["fc"]):
            x = x @ p["w"].T + p["b"]
            if i < len(params["fc"]) - 1:
                x = act(x)
        return x, state
    return params, {}, forward


def batch_norm(p, s, x, train, momentum=0.9, eps=1e-5):
    if train:
        mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
        s = {"mean": momentum * s["mean"] + (1 - momentum) * mean,
             "var": momentum * s["var"] + (1 - momentum) * var}
    else:
        mean, var = s["mean"], s["var"]
    scale = p["gamma"] * lax.rsqrt(var + eps)
    return x * scale[None, :, None, None] + (p["beta"] - mean * scale)[None, :, None, None], s


def resnet18(classes=10):
    def conv_bn(cin, cout, k):
        return ({"w": glorot((cout, cin, k, k)), "gamma": jnp.ones(cout),
                 "beta": jnp.zeros(cout)}, {"mean": jnp.zeros(cout), "var": jnp.ones(cout)})

    blocks, width = [], 64  # (stride, project?) per block, static
    params, state = {"stem": glorot((64, 3, 3, 3)), "blocks": []}, {"blocks": []}
    for channels, stride in RESNET18_STAGES:
        for cin, s in ((width, stride), (channels, 1)):
            project = s != 1 or cin != channels
            names = ("a", "b", "p") if project else ("a", "b")
            shapes = {"a": (cin, channels, 3), "b": (channels, channels, 3),
                      "p": (cin, channels, 1)}
            made = {n: conv_bn(*shapes[n]) for n in names}
            params["blocks"].append({n: m[0] for n, m in made.items()})
            state["blocks"].append({n: m[1] for n, m in made.items()})
            blocks.append((s, project))
        width = channels
    params["fc"] = dense(width, classes)[0]

    def forward(params, state, x, train):
        x = conv(x, params["stem"], 1, 1)
        new_states = []
        for (stride, project), p, s in zip(blocks, params["blocks"], state["blocks"]):
            ns = {}
            body, ns["a"] = batch_norm(p["a"], s["a"], conv(x, p["a"]["w"], stride, 1), train)
            body, ns["b"] = batch_norm(p["b"], s["b"], conv(jax.nn.relu(body), p["b"]["w"],
                                                            1, 1), train)
            shortcut = x
            if project:
                shortcut, ns["p"] = batch_norm(p["p"], s["p"], conv(x, p["p"]["w"], stride),
                                               train)
            x = jax.nn.relu(body + shortcut)
            new_states.append(ns)
        x = x.mean(axis=(2, 3))
        return x @ params["fc"]["w"].T + params["fc"]["b"], {"blocks": new_states}
    return params, state, forward


BUILDERS = {"mlp-letter": lambda: mlp((16, 64, 26)), "mlp-mnist": lambda: mlp((784, 128, 64, 10)),
            "lenet": lambda: conv_net(((1, 20, 5), (20, 50, 5)), (800, 500, 10), jnp.tanh),
            "lenet5": lambda: conv_net(((1, 6, 5), (6, 16, 3)), (400, 120, 84, 10), jax.nn.relu),
            "resnet18": resnet18}


def main():
    args, workload = pc.parse_args(__doc__)
    split = pc.load(workload, args.quick)
    params, state, forward = BUILDERS[workload.net]()
    lr = workload.lr

    def loss(params, state, x, y):
        logits, state = forward(params, state, x, True)
        return cross_entropy(logits, y), state

    def train_step(params, state, x, y):
        grads, state = jax.grad(loss, has_aux=True)(params, state, x, y.astype(jnp.int32))
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), state

    train_step = jax.jit(train_step, donate_argnums=(0, 1))
    infer = jax.jit(lambda params, state, x: jnp.argmax(forward(params, state, x, False)[0], 1))
    holder = {"params": params, "state": state}

    def step(x, y):
        holder["params"], holder["state"] = train_step(holder["params"], holder["state"], x, y)

    def predict(x):
        return infer(holder["params"], holder["state"], x)

    def finish():
        jax.block_until_ready(holder["params"])

    idx = pc.padded_batches(len(split.train_x), workload.batch)[0]
    copies = jax.tree_util.tree_map(jnp.copy, (params, state))
    start = time.perf_counter()
    jax.block_until_ready(train_step(*copies, split.train_x[idx], split.train_y[idx]))
    if len(split.val_x):
        jax.block_until_ready(predict(split.train_x[idx]))
    compile_s = time.perf_counter() - start
    wall, cpu, accuracy = pc.fit_loop(split, workload, step, predict, finish)
    pc.emit("jax", workload, split, wall, cpu, accuracy, compile_s, "first step",
            version=jax.__version__)


if __name__ == "__main__":
    main()
