"""What every framework's workload script shares: the workload table, the real data read
straight from the files with numpy (the peers' virtual environments have no symgraph), the
training-loop driver for frameworks without a Module API, and the result line.

Only the standard library and numpy are imported here, so MXNet's numpy 1.23.5, PyTorch's
and JAX's environments all load this file unchanged.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import struct
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Workload:
    """One benchmark row: the network, its data, and the training recipe every framework
    uses unchanged (batch, plain SGD at ``lr``, ``epochs`` over the training split, a
    validation pass over the test split after each epoch)."""

    key: str
    title: str
    data: str  # letter | mnist-flat | mnist | fashion | random-cifar
    net: str  # mlp-letter | mlp-mnist | lenet | lenet5 | resnet18
    batch: int
    lr: float
    epochs: int
    quick_train: int  # --quick: training samples
    quick_val: int


WORKLOADS = {w.key: w for w in (
    Workload("W1", "letter MLP 16-64-26, b32, SGD 0.1", "letter", "mlp-letter", 32, 0.1, 10,
             640, 320),
    Workload("W2", "MNIST MLP 784-128-64-10, b100, SGD 0.02", "mnist-flat", "mlp-mnist", 100,
             0.02, 3, 1000, 500),
    Workload("W3", "MNIST LeNet 20c5-50c5-500-10 tanh, b100, SGD 0.03", "mnist", "lenet", 100,
             0.03, 1, 500, 200),
    Workload("W4", "Fashion-MNIST LeNet-5 6c5-16c3-120-84-10 relu, b256, SGD 0.1", "fashion",
             "lenet5", 256, 0.1, 2, 512, 256),
    Workload("W5", "ResNet-18 v1 32x32x3, b64, SGD 0.05 (random data, speed only)",
             "random-cifar", "resnet18", 64, 0.05, 1, 128, 0),
)}

#: ResNet-18 on random data: this many training samples per epoch (5 steps: a 32x32 ResNet-18 step
#: costs 107 GFLOP, and five frameworks share two cores), no validation.
RANDOM_TRAIN = 320


@dataclass
class Split:
    train_x: np.ndarray
    train_y: np.ndarray  # float32 class indices, as MXNet's SoftmaxOutput takes them
    val_x: np.ndarray
    val_y: np.ndarray


# ---------------------------------------------------------------------------- data files
def data_root() -> str:
    root = os.environ.get("SYMGRAPH_DATA")
    if not root:
        raise SystemExit("set SYMGRAPH_DATA to the datasets folder (mnist/, fashion-mnist/, "
                         "letter-recognition/)")
    return root


def _find(subdir, name):
    for folder in (os.path.join(data_root(), subdir), data_root()):
        for candidate in (name + ".gz", name):
            path = os.path.join(folder, candidate)
            if os.path.isfile(path):
                return path
    raise SystemExit(f"{subdir}/{name}(.gz) not found under {data_root()}")


def read_idx(path) -> np.ndarray:
    """LeCun's IDX format (uint8 payloads only: MNIST and Fashion-MNIST)."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw[2] != 0x08:
        raise SystemExit(f"{path}: not a uint8 IDX file")
    ndim = raw[3]
    shape = struct.unpack_from(f">{ndim}I", raw, 4)
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _images(subdir, flat):
    out = []
    for kind in ("train", "t10k"):
        images = read_idx(_find(subdir, f"{kind}-images-idx3-ubyte"))
        labels = read_idx(_find(subdir, f"{kind}-labels-idx1-ubyte"))
        shape = (-1, 784) if flat else (-1, 1, 28, 28)
        out += [images.reshape(shape).astype(np.float32) / 255, labels.astype(np.float32)]
    return Split(*out)


def _letter():
    """UCI Letter, the usual 16000/4000 split (symgraph's cli_train.load_data)."""
    path = os.path.join(data_root(), "letter-recognition", "letter-recognition.data")
    with open(path, encoding="ascii") as f:
        rows = f.read().split()
    y = np.array([ord(r[0]) - ord("A") for r in rows], np.float32)
    x = np.array([r[2:].split(",") for r in rows], np.float32)
    return Split(x[:16000], y[:16000], x[16000:], y[16000:])


def _random_cifar(train):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((train, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, train).astype(np.float32)
    return Split(x, y, x[:0], y[:0])


def load(workload: Workload, quick: bool) -> Split:
    if workload.data == "random-cifar":
        return _random_cifar(workload.quick_train if quick else RANDOM_TRAIN)
    if workload.data == "letter":
        split = _letter()
    else:
        split = _images("fashion-mnist" if workload.data == "fashion" else "mnist",
                        workload.data == "mnist-flat")
    if quick:
        split = Split(split.train_x[:workload.quick_train], split.train_y[:workload.quick_train],
                      split.val_x[:workload.quick_val], split.val_y[:workload.quick_val])
    return split


# ---------------------------------------------------------------------------- batching
def padded_batches(n, batch, order=None):
    """Index arrays of full batches over ``n`` samples; the last one wraps around to the
    start (MXNet NDArrayIter's default ``last_batch_handle='pad'``), so every framework
    runs the same number of equal-shape steps."""
    order = np.arange(n) if order is None else order
    count = -(-n // batch)
    wrapped = np.concatenate([order, order[:count * batch - n]]) if count * batch > n else order
    return [wrapped[i * batch:(i + 1) * batch] for i in range(count)]


def fit_loop(split, workload, step, predict, finish=None, seed=0):
    """The loop for frameworks without a Module (PyTorch, JAX): per epoch a shuffled pass of
    ``step(x, y)`` over padded batches, then ``predict(x) -> class indices`` over the
    validation split; ``finish()`` waits for queued work (JAX runs asynchronously) before
    the clock stops. Returns (wall s, CPU s, final validation accuracy or None)."""
    rng = np.random.default_rng(seed)
    n = len(split.train_x)
    accuracy = None
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(workload.epochs):
        for idx in padded_batches(n, workload.batch, rng.permutation(n)):
            step(split.train_x[idx], split.train_y[idx])
        if len(split.val_x):
            accuracy = validate(split, workload.batch, predict)
    if finish is not None:
        finish()
    return time.perf_counter() - wall, time.process_time() - cpu, accuracy


def validate(split, batch, predict):
    """Accuracy over the validation split; the wrapped tail of the last batch is not
    counted (as MXNet's score skips a batch's ``pad``)."""
    n = len(split.val_x)
    correct = 0
    for i, idx in enumerate(padded_batches(n, batch)):
        real = min(batch, n - i * batch)
        pred = np.asarray(predict(split.val_x[idx]))[:real]
        correct += int((pred == split.val_y[idx[:real]]).sum())
    return correct / n


# ---------------------------------------------------------------------------- results
def parse_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--workload", required=True, choices=sorted(WORKLOADS))
    p.add_argument("--quick", action="store_true", help="a small slice, one epoch")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="torch only: torch.compile")
    p.add_argument("--epochs", type=int, help="instead of the workload's own count")
    args = p.parse_args()
    workload = WORKLOADS[args.workload]
    if args.epochs:
        workload = Workload(**{**asdict(workload), "epochs": args.epochs})
    if args.quick:
        workload = Workload(**{**asdict(workload), "epochs": 1})
    return args, workload


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def emit(framework, workload, split, wall, cpu, accuracy, compile_s=None, compile_kind=None,
         **extra):
    """The one JSON line the driver reads (last line of stdout)."""
    samples = len(split.train_x) * workload.epochs
    result = {"framework": framework, "workload": workload.key, "samples": samples,
              "epochs": workload.epochs, "fit_s": wall, "samples_per_s": samples / wall,
              "cpu_util": cpu / wall, "accuracy": accuracy, "peak_rss_mb": peak_rss_mb(),
              "compile_s": compile_s, "compile_kind": compile_kind, **extra}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------- Module API
def fit_module(lib, symbol, split, workload):
    """MXNet's Module recipe with ``lib`` = ``mxnet`` or ``symgraph`` (same
    namespaces): bind, Xavier init and the optimizer first (timed apart as the compile),
    then ``fit`` with the validation pass each epoch. Returns (compile s, fit wall s,
    fit CPU s, final validation accuracy or None)."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", "Parameters already initialized")
    warnings.filterwarnings("ignore", "optimizer already initialized")
    quiet = logging.getLogger("bench_peers")
    quiet.setLevel(logging.ERROR)
    train = lib.io.NDArrayIter(split.train_x, split.train_y, workload.batch, shuffle=True,
                               label_name="softmax_label")
    val = (lib.io.NDArrayIter(split.val_x, split.val_y, workload.batch,
                              label_name="softmax_label") if len(split.val_x) else None)
    mod = lib.mod.Module(symbol, context=lib.cpu(), logger=quiet)
    optimizer = {"optimizer": "sgd", "optimizer_params": {"learning_rate": workload.lr}}
    start = time.perf_counter()
    mod.bind(data_shapes=train.provide_data, label_shapes=train.provide_label)
    mod.init_params(lib.init.Xavier())
    mod.init_optimizer(**optimizer)
    compile_s = time.perf_counter() - start
    wall, cpu = time.perf_counter(), time.process_time()
    mod.fit(train, eval_data=val, eval_metric="acc", num_epoch=workload.epochs, **optimizer)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return compile_s, wall, cpu, _module_accuracy(mod, val, split)


def _module_accuracy(mod, val, split):
    """Over the real validation samples only: Module.score would also count the wrapped
    tail of a padded last batch (MXNet's does), PyTorch's and JAX's loops do not."""
    if val is None:
        return None
    val.reset()
    pred = mod.predict(val).asnumpy().argmax(axis=1)
    return float((pred == split.val_y).mean())
