"""Train the letter-recognition MLP with Module.fit, exactly as an MXNet 1.x script would.

UCI Letter Recognition (shipped with symgraph, works offline): 16,000 training and 4,000
validation samples, batch 32, fc1(64) -> relu -> fc2(26) -> SoftmaxOutput, SGD lr 0.1.
Logs MXNet's ``Epoch[%d] ...`` lines to stdout and writes to ``--out``:

* ``letter-symbol.json`` and ``letter-%04d.params`` (the last epoch's parameters);
* ``letter-mlp.svg`` when ``sg.viz.plot_network`` and Graphviz's ``dot`` are available.

Usage: ``python examples/train_letter.py [--epochs 8] [--out out] [--seed 0]``
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import symgraph as sg  # noqa: E402  (after the path fix so the script runs from a checkout)
from runtime.datasets import load_letter_recognition  # noqa: E402

BATCH_SIZE = 32
LEARNING_RATE = 0.1
PREFIX = "letter"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8, help="number of epochs (default 8)")
    parser.add_argument("--out", default="out", help="output folder (default ./out)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    return parser.parse_args(argv)


def build_mlp():
    """The tutorial's network: one hidden layer of 64 ReLUs, 26-way softmax."""
    net = sg.sym.Variable("data")
    net = sg.sym.FullyConnected(net, name="fc1", num_hidden=64)
    net = sg.sym.Activation(net, name="relu1", act_type="relu")
    net = sg.sym.FullyConnected(net, name="fc2", num_hidden=26)
    return sg.sym.SoftmaxOutput(net, name="softmax")


def make_iters():
    """80/20 split in file order (16000/4000); the training iterator shuffles."""
    X, y = load_letter_recognition()
    ntrain = int(0.8 * len(X))
    train = sg.io.NDArrayIter(X[:ntrain], y[:ntrain], BATCH_SIZE, shuffle=True)
    val = sg.io.NDArrayIter(X[ntrain:], y[ntrain:], BATCH_SIZE)
    return train, val


def plot(net, out):
    """Draw the network as SVG when both the viz module and Graphviz's dot are present."""
    try:
        from runtime.viz import plot_network
    except ImportError as err:
        print(f"skipping the network plot: sg.viz is not available ({err})")
        return
    if shutil.which("dot") is None:
        print("skipping the network plot: Graphviz 'dot' is not installed")
        return
    dot = plot_network(net, title="letter-mlp", save_format="svg")
    dot.render(filename="letter-mlp", directory=out, cleanup=True, quiet=True)
    print(f"wrote {os.path.join(out, 'letter-mlp.svg')}")


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s",
                        force=True)
    os.makedirs(args.out, exist_ok=True)
    sg.random.seed(args.seed)
    train, val = make_iters()
    net = build_mlp()
    mod = sg.mod.Module(net, context=sg.cpu())
    tic = time.time()
    mod.fit(train, eval_data=val, eval_metric="acc", optimizer="sgd",
            optimizer_params={"learning_rate": LEARNING_RATE}, num_epoch=args.epochs)
    elapsed = time.time() - tic
    accuracy = dict(mod.score(val, "acc"))["accuracy"]
    per_epoch = sum(row["time"] for row in mod.history) / max(len(mod.history), 1)
    print(f"validation accuracy after {args.epochs} epochs: {accuracy:.4f}")
    print(f"training time: {per_epoch:.3f} s/epoch (fit total {elapsed:.2f} s, "
          "incl. compile and validation)")
    mod.save_checkpoint(os.path.join(args.out, PREFIX), args.epochs)
    plot(net, args.out)
    return accuracy


if __name__ == "__main__":
    main()
