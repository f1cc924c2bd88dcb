"""Seed 000's LeNet on Fashion-MNIST: the non-hybridized Gluon loop against Module.fit's
step (same network, batch 256, SGD lr 0.1), side by side; plus the Python cost of a traced
step with a warm cache (the median over steps of everything but ``runner._execute``: the
executor call with its batch copy; the fused update stays in). bench_gluon_step.py measures
that cost on a network small enough for the native work not to hide it."""

from __future__ import annotations

import time

import numpy as np

import symgraph as sg
from runtime.ndarray import runner
from symgraph import autograd, gluon, init
from symgraph.gluon import nn

STEPS, BATCH = 40, 256
REPEATS = 3  # epochs timed per side, the fastest kept (a shared machine's noise is one-sided)


def _data():
    train = gluon.data.vision.FashionMNIST(train=True)
    x = (train._data[:STEPS * BATCH].transpose(0, 3, 1, 2).astype(np.float32) / 255 - 0.13)
    return x / 0.31, train._label[:STEPS * BATCH].astype(np.float32)


def gluon_loop(x, y):
    net = nn.Sequential()
    net.add(nn.Conv2D(6, 5, activation="relu"), nn.MaxPool2D(2, 2),
            nn.Conv2D(16, 3, activation="relu"), nn.MaxPool2D(2, 2),
            nn.Dense(120, activation="relu"), nn.Dense(84, activation="relu"), nn.Dense(10))
    net.initialize(init=init.Xavier())
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    batches = [(sg.nd.array(x[i:i + BATCH]), sg.nd.array(y[i:i + BATCH]))
               for i in range(0, len(x), BATCH)]
    native = [0.0]
    original = runner._execute
    python = []

    def timed(*args):
        start = time.perf_counter()
        original(*args)
        native[0] += time.perf_counter() - start

    def epoch():
        for data, label in batches:
            start, native[0] = time.perf_counter(), 0.0
            with autograd.record():
                loss = loss_fn(net(data), label)
            loss.backward()
            trainer.step(BATCH)
            python.append(time.perf_counter() - start - native[0])

    epoch()  # compile
    runner._execute = timed
    try:
        python.clear()
        total = min(_timed(epoch) for _ in range(REPEATS))
    finally:
        runner._execute = original
    # the median step: a 70 ms native step makes the mean of a small remainder noisy
    return total / STEPS, float(np.median(python))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def module_fit(x, y):
    s = sg.sym
    net = s.Variable("data")
    net = s.Activation(s.Convolution(net, num_filter=6, kernel=(5, 5)), act_type="relu")
    net = s.Pooling(net, kernel=(2, 2), stride=(2, 2), pool_type="max")
    net = s.Activation(s.Convolution(net, num_filter=16, kernel=(3, 3)), act_type="relu")
    net = s.Pooling(net, kernel=(2, 2), stride=(2, 2), pool_type="max")
    net = s.Activation(s.FullyConnected(net, num_hidden=120), act_type="relu")
    net = s.Activation(s.FullyConnected(net, num_hidden=84), act_type="relu")
    net = s.SoftmaxOutput(s.FullyConnected(net, num_hidden=10), name="softmax")
    it = sg.io.NDArrayIter(x, y, batch_size=BATCH)
    mod = sg.mod.Module(net)
    mod.fit(it, num_epoch=1, optimizer="sgd", optimizer_params={"learning_rate": 0.1},
            initializer=sg.init.Xavier())  # compile + warm up
    return min(_timed(lambda: mod.fit(it, num_epoch=1, optimizer="sgd",
                                      optimizer_params={"learning_rate": 0.1},
                                      initializer=sg.init.Xavier(), force_init=False))
               for _ in range(REPEATS)) / STEPS


def main():
    x, y = _data()
    step, python = gluon_loop(x, y)
    fit = module_fit(x, y)
    print(f"{'what':<44}{'ms/step':>10}")
    print(f"{'Gluon loop (traced, not hybridized)':<44}{step * 1e3:>10.2f}")
    print(f"{'Module.fit':<44}{fit * 1e3:>10.2f}")
    print(f"{'ratio Gluon / Module (target <= 1.2)':<44}{step / fit:>10.2f}")
    print(f"{'Gluon Python per step, warm, median (us)':<44}{python * 1e6:>10.1f}")


if __name__ == "__main__":
    main()
