"""Training commands: fit, predict, score (through ``sg.mod.Module``, MXNet's API).

Built-in examples (``--model``) exist so that ``symgraph fit --data letter`` works with no
files at all; any ``*-symbol.json`` whose inputs are ``data``/``softmax_label`` works too.
"""

from __future__ import annotations

import logging
import math
import os
import sys

import numpy as np

from runtime.cli.common import load_symbol

DATASETS = ("letter", "mnist")
MODELS = ("mlp-letter", "mlp-mnist", "lenet")


# ---- models and data -------------------------------------------------------------------
def _mlp(hidden, classes):
    import symgraph as sg

    net = sg.sym.Variable("data")
    for i, units in enumerate(hidden, 1):
        net = sg.sym.FullyConnected(net, num_hidden=units, name=f"fc{i}")
        net = sg.sym.Activation(net, act_type="relu", name=f"relu{i}")
    net = sg.sym.FullyConnected(net, num_hidden=classes, name=f"fc{len(hidden) + 1}")
    return sg.sym.SoftmaxOutput(net, name="softmax")


def _lenet():
    """LeNet-5 as in MXNet's examples (needs Convolution and Pooling to be registered)."""
    import symgraph as sg

    s = sg.sym
    net = s.Variable("data")
    for i, filters in enumerate((20, 50), 1):
        net = s.Convolution(net, kernel=(5, 5), num_filter=filters, name=f"conv{i}")
        net = s.Activation(net, act_type="tanh", name=f"tanh{i}")
        net = s.Pooling(net, pool_type="max", kernel=(2, 2), stride=(2, 2), name=f"pool{i}")
    net = s.Flatten(net, name="flatten")
    net = s.Activation(s.FullyConnected(net, num_hidden=500, name="fc1"), act_type="tanh")
    return s.SoftmaxOutput(s.FullyConnected(net, num_hidden=10, name="fc2"), name="softmax")


def build_model(name: str):
    if name == "mlp-letter":
        return _mlp([64], 26)
    if name == "mlp-mnist":
        return _mlp([128, 64], 10)
    try:
        return _lenet()
    except AttributeError as err:
        raise RuntimeError(f"model 'lenet' needs ops this build lacks ({err})") from None


def load_data(name: str):
    """((X_train, y_train), (X_val, y_val)) float32; letter uses the UCI 16000/4000 split."""
    from runtime import datasets

    if name == "letter":
        X, y = datasets.load_letter_recognition()
        return (X[:16000], y[:16000]), (X[16000:], y[16000:])
    if name == "mnist":
        splits = []
        for kind in ("train", "test"):
            images, labels = datasets.load_mnist(kind=kind)
            X = images.reshape(-1, 1, 28, 28).astype(np.float32) / 255
            splits.append((X, labels.astype(np.float32)))
        return tuple(splits)
    raise ValueError(f"unknown dataset {name!r} (choose from {', '.join(DATASETS)})")


def _module_class():
    import symgraph as sg

    try:
        return sg.mod.Module
    except (ImportError, AttributeError) as err:
        raise RuntimeError(f"sg.mod.Module is not available in this build ({err})") from None


def _iter(X, y, batch_size, shuffle=False):
    from runtime.io import NDArrayIter

    return NDArrayIter(X, y, batch_size=batch_size, shuffle=shuffle,
                       label_name="softmax_label")


# ---- progress ------------------------------------------------------------------------------
class _Bar:
    """A one-line progress bar on stderr (TTY only; logs stay clean otherwise)."""

    def __init__(self, total: int, width: int = 30):
        self.total, self.width = max(total, 1), width

    def __call__(self, param):
        done = min(param.nbatch + 1, self.total)
        fill = int(self.width * done / self.total)
        metric = ""
        if param.eval_metric is not None:
            metric = " ".join(f"{n}={v:.4f}" for n, v in param.eval_metric.get_name_value())
        sys.stderr.write(f"\rEpoch {param.epoch} [{'#' * fill}{'.' * (self.width - fill)}] "
                         f"{done}/{self.total} {metric}")
        if done == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _batch_callback(n_train, batch_size):
    from runtime.callback import Speedometer

    if sys.stderr.isatty():
        return _Bar(math.ceil(n_train / batch_size))
    return Speedometer(batch_size, 50)


# ---- fit -------------------------------------------------------------------------------
def _fit_args(p):
    source = p.add_mutually_exclusive_group()
    source.add_argument("--symbol", help="a MODEL-symbol.json to train")
    source.add_argument("--model", choices=MODELS, help="a built-in example network")
    p.add_argument("--data", choices=DATASETS, default="letter")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--optimizer", default="sgd")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=None, help="for sgd/nag")
    p.add_argument("--prefix", help="checkpoint prefix: writes PREFIX-symbol.json, "
                                    "PREFIX-%%04d.params after every epoch")
    p.add_argument("--history", metavar="FILE.svg",
                   help="plot train/validation accuracy per epoch (needs matplotlib)")


def _at_least_one(name, value):
    if value < 1:
        raise ValueError(f"{name} must be >= 1 (got {value})")


def _batch_size_for(batch_size, samples, what):
    """fit needs batch_size <= the samples (MXNet's NDArrayIter asserts it); predict and
    score only pad, so a larger request is cut to the data and never sized past it.
    ``batch_size >= 1`` is checked by the caller before it loads the data."""
    if batch_size > samples and what == "training":
        raise ValueError(f"--batch-size {batch_size} is larger than the training set "
                         f"({samples} samples)")
    return min(batch_size, max(samples, 1))


def _fit(args):
    _at_least_one("--epochs", args.epochs)
    _at_least_one("--batch-size", args.batch_size)
    logging.basicConfig(level=logging.INFO)
    if args.symbol:
        symbol = load_symbol(args.symbol)
    else:
        symbol = build_model(args.model or f"mlp-{args.data}")
    (X, y), (Xv, yv) = load_data(args.data)
    batch_size = _batch_size_for(args.batch_size, len(X), "training")
    params = {"learning_rate": args.lr}
    if args.momentum is not None:
        params["momentum"] = args.momentum
    mod = _module_class()(symbol, data_names=("data",), label_names=("softmax_label",))
    mod.fit(_iter(X, y, batch_size, shuffle=True),
            eval_data=_iter(Xv, yv, min(batch_size, len(Xv))), optimizer=args.optimizer,
            optimizer_params=params, num_epoch=args.epochs,
            batch_end_callback=_batch_callback(len(X), batch_size),
            epoch_end_callback=_checkpoint(args.prefix))
    if args.history:
        from runtime.viz.history import plot_history

        plot_history(getattr(mod, "history", []), fname=args.history)
        print(f"wrote {args.history}")


def _checkpoint(prefix):
    if not prefix:
        return None
    from runtime.callback import do_checkpoint

    directory = os.path.dirname(prefix)
    if directory and not os.path.isdir(directory):
        raise FileNotFoundError(f"--prefix directory does not exist: {directory}")
    return do_checkpoint(prefix)


# ---- predict / score -------------------------------------------------------------------
def _load_args(p):
    p.add_argument("prefix", help="checkpoint prefix (PREFIX-symbol.json, PREFIX-NNNN.params)")
    p.add_argument("--epoch", type=int, required=True)
    p.add_argument("--batch-size", type=int, default=100)


def _load_module(prefix, epoch, batch_size, sample_shape, with_label):
    for path in (f"{prefix}-symbol.json", f"{prefix}-{epoch:04d}.params"):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no such checkpoint file: {path}")
    mod = _module_class().load(prefix, epoch, data_names=("data",),
                               label_names=("softmax_label",) if with_label else ())
    label_shapes = [("softmax_label", (batch_size,))] if with_label else None
    mod.bind(data_shapes=[("data", (batch_size,) + tuple(sample_shape))],
             label_shapes=label_shapes, for_training=False)
    return mod


def _read_input(path):
    from runtime.cli.input import read_input

    return read_input(path)


def _predict_args(p):
    _load_args(p)
    p.add_argument("--input", required=True, help="X.npy or X.csv (one sample per row)")
    p.add_argument("-o", "--output", required=True, help="preds.npy or preds.csv")


def _predict(args):
    if not args.output.endswith((".npy", ".csv")):
        raise ValueError(f"-o {args.output!r}: expected a .npy or .csv file")
    _at_least_one("--batch-size", args.batch_size)
    X = _read_input(args.input)  # at least one sample per row (cli_input checks)
    batch_size = _batch_size_for(args.batch_size, len(X), "input")
    mod = _load_module(args.prefix, args.epoch, batch_size, X.shape[1:], False)
    from runtime.io import NDArrayIter

    out = mod.predict(NDArrayIter(X, None, batch_size=batch_size))
    preds = np.asarray(out.asnumpy() if hasattr(out, "asnumpy") else out)
    if args.output.endswith(".npy"):
        np.save(args.output, preds)
    else:
        np.savetxt(args.output, preds.reshape(len(preds), -1), delimiter=",", fmt="%.7g")
    print(f"wrote {args.output} ({'x'.join(map(str, preds.shape))})")


def _score_args(p):
    _load_args(p)
    p.add_argument("--data", choices=DATASETS, default="letter",
                   help="scores on the validation split of this dataset")
    p.add_argument("--metric", default="acc")


def _score(args):
    _at_least_one("--batch-size", args.batch_size)
    _, (Xv, yv) = load_data(args.data)
    batch_size = _batch_size_for(args.batch_size, len(Xv), "validation")
    mod = _load_module(args.prefix, args.epoch, batch_size, Xv.shape[1:], True)
    for name, value in mod.score(_iter(Xv, yv, batch_size), args.metric):
        print(f"{name}={value:.6f}")


COMMANDS = {
    "fit": (_fit_args, _fit, "train a symbol JSON or a built-in example on a dataset"),
    "predict": (_predict_args, _predict, "run a checkpoint on X.npy/X.csv, write predictions"),
    "score": (_score_args, _score, "evaluate a checkpoint on a dataset's validation split"),
}
