"""Real MXNet-format files for the loader property tests, and the per-loader tally.

The files come from the project's own writers applied to a really trained net (a small
convolutional net on the letter data, one epoch of Adam on the real data), so mutations start
from the exact bytes a user's checkpoint holds. The tally (cases tried, rejected with a
SymgraphError, loaded, escaped as a builtin exception) is printed at the end of the run and,
with ``SYMGRAPH_FUZZ_REPORT=path``, written there as JSON for the closing table.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mutations import TALLY  # noqa: E402  (a unique module name: every folder has a conftest)

import symgraph as sg  # noqa: E402


def _letter_net():
    """Conv, pooling, reshape, leaky ReLU, dropout and FC: many attribute parsers."""
    net = sg.sym.Variable("data")
    net = sg.sym.Reshape(net, name="square", shape=(0, 1, 4, 4))
    net = sg.sym.Convolution(net, name="conv1", kernel=(3, 3), pad=(1, 1), num_filter=4)
    net = sg.sym.Activation(net, name="relu1", act_type="relu")
    net = sg.sym.Pooling(net, name="pool1", kernel=(2, 2), stride=(2, 2), pool_type="max")
    net = sg.sym.Flatten(net, name="flat")
    net = sg.sym.FullyConnected(net, name="fc1", num_hidden=32)
    net = sg.sym.LeakyReLU(net, name="leaky1", act_type="leaky", slope=0.1)
    net = sg.sym.Dropout(net, name="drop1", p=0.1)
    net = sg.sym.FullyConnected(net, name="fc2", num_hidden=26)
    return sg.sym.SoftmaxOutput(net, name="softmax")


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A trained Module and the checkpoint it wrote (symbol, params, optimizer states)."""
    from runtime.datasets import load_letter_recognition

    X, y = load_letter_recognition()
    X, y = X[:3200], y[:3200]
    sg.random.seed(0)
    mod = sg.mod.Module(_letter_net(), context=sg.cpu())
    mod.fit(sg.io.NDArrayIter(X, y, 32, shuffle=True), optimizer="adam",
            optimizer_params={"learning_rate": 0.01}, num_epoch=1)
    prefix = str(tmp_path_factory.mktemp("ckpt") / "letter")
    mod.save_checkpoint(prefix, 1, save_optimizer_states=True)
    updater = sg.optimizer.get_updater(sg.optimizer.create("adam", learning_rate=0.01))
    args, _ = mod.get_params()
    for i, name in enumerate(mod._param_names):  # Module's indices: parameter positions
        weight = np.array(args[name])
        updater(i, np.full_like(weight, 0.01), weight)
    return {"module": mod, "prefix": prefix, "epoch": 1,
            "updater_blob": updater.get_states(dump_optimizer=True),
            "updater_blob_plain": updater.get_states()}


def pytest_terminal_summary(terminalreporter):
    if not TALLY:
        return
    write = terminalreporter.write_line
    write("loader fuzz tally (cases / rejected with SymgraphError / loaded / escaped builtin):")
    for name in sorted(TALLY):
        t = TALLY[name]
        write(f"  {name:<28} {t['tried']:>7} {t['rejected']:>7} {t['loaded']:>7} "
              f"{t['escaped']:>7}")
    report = os.environ.get("SYMGRAPH_FUZZ_REPORT")
    if report:
        Path(report).write_text(json.dumps({k: dict(v) for k, v in TALLY.items()}, indent=1))
