"""LeNet's epoch time on MNIST through Module.fit: the recipe of tutorials/mnist_symbol.md
(20c5-50c5-500-10, tanh, batch 100, SGD lr 0.03), on the real 60,000 training images.

The conv-net issue asks for this figure in `make bench`; it is the time users wait, so it is
a whole epoch (bind and compile excluded, reported apart), not an extrapolated slice.
Run with one context on one thread, with one context whose kernels split over two threads
(codegen/threadpool.py), and with ``context=[cpu(0), cpu(1)]`` (one executor per core on
half the batch, runtime/device_group.py). ``BENCH_LENET_EPOCHS`` (default 1) sets how many
epochs each; the median is quoted."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import logging  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import symgraph as sg  # noqa: E402
from codegen import threadpool  # noqa: E402
from runtime.cli.train import build_model  # noqa: E402

BATCH = 100


def fit_lenet(context, epochs, data, threads=1):
    """(median s/epoch, the epochs' times, bind+compile s, test accuracy) of one fit."""
    train_x, train_y, test_x, test_y = (data[k] for k in ("train_data", "train_label",
                                                          "test_data", "test_label"))
    sg.random.seed(7)
    train = sg.io.NDArrayIter(train_x, train_y, BATCH, shuffle=True)
    quiet = logging.getLogger("bench_lenet")
    quiet.setLevel(logging.ERROR)
    mod = sg.mod.Module(build_model("lenet"), context=context, logger=quiet)
    start = time.perf_counter()
    with threadpool.compiling_for(threads):
        mod.bind(data_shapes=train.provide_data, label_shapes=train.provide_label)
    bind_s = time.perf_counter() - start
    history = []
    mod.fit(train, num_epoch=epochs, optimizer="sgd", optimizer_params={"learning_rate": 0.03},
            initializer=sg.init.Xavier(), history=history)
    times = [h["time"] for h in history]
    accuracy = mod.score(sg.io.NDArrayIter(test_x, test_y, BATCH), "acc")[0][1]
    return statistics.median(times), times, bind_s, accuracy


def main():
    logging.getLogger().setLevel(logging.WARNING)
    epochs = int(os.environ.get("BENCH_LENET_EPOCHS", "1"))
    data = sg.datasets.get_mnist()  # the tutorial's images: (N, 1, 28, 28) / 255
    threadpool.set_num_threads(2)
    runs = {"one context": fit_lenet(sg.cpu(), epochs, data),
            "one context, 2 threads": fit_lenet(sg.cpu(), epochs, data, threads=2),
            "context=[cpu(0), cpu(1)]": fit_lenet([sg.cpu(0), sg.cpu(1)], epochs, data)}
    base = runs["one context"][0]
    print(f"## LeNet on MNIST, Module.fit (batch {BATCH}, 60,000 samples/epoch, "
          f"{epochs} epoch(s) each)\n")
    print("| run | s/epoch (median) | samples/s | speed-up | epochs (s) | bind+compile s "
          "| test acc. |")
    print("|---|---|---|---|---|---|---|")
    for name, (seconds, times, bind_s, accuracy) in runs.items():
        print(f"| {name} | {seconds:.1f} | {60000 / seconds:,.0f} | {base / seconds:.2f}x | "
              f"{', '.join(f'{t:.1f}' for t in times)} | {bind_s:.2f} | {accuracy:.4f} |")


if __name__ == "__main__":
    main()
