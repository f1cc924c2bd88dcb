"""sg.viz: MXNet-exact plot_network/print_summary, plot_compiled, plot_history."""

from __future__ import annotations

import importlib.util
import xml.etree.ElementTree as ET

import graphviz
import pytest

import symgraph as sg
from runtime import viz

HAS_DOT = graphviz.version is not None
try:
    graphviz.version()
except graphviz.ExecutableNotFound:
    HAS_DOT = False
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="graphviz 'dot' binary not installed")
HAS_MPL = importlib.util.find_spec("matplotlib") is not None


def letter_mlp():
    net = sg.sym.Variable("data")
    net = sg.sym.FullyConnected(net, num_hidden=64, name="fc1")
    net = sg.sym.Activation(net, act_type="relu", name="relu1")
    net = sg.sym.FullyConnected(net, num_hidden=26, name="fc2")
    return sg.sym.SoftmaxOutput(net, name="softmax")


def conv_like():
    """Conv-shaped net of registered ops (Convolution/Pooling are not registered yet):
    4-D data, Reshape, LeakyReLU, Concat of two branches, Flatten, FC."""
    data = sg.sym.Variable("data")
    x = sg.sym.Reshape(data, shape=(0, 2, 8), name="reshape0")
    a = sg.sym.LeakyReLU(x, act_type="leaky", slope=0.1, name="leaky0")
    b = sg.sym.Activation(x, act_type="tanh", name="tanh0")
    x = sg.sym.Concat(a, b, dim=1, name="concat0")
    x = sg.sym.Flatten(x, name="flatten0")
    x = sg.sym.FullyConnected(x, num_hidden=10, name="fc")
    return sg.sym.SoftmaxOutput(x, name="softmax")


def svg_text(dot, tmp_path, name) -> str:
    path = dot.render(filename=name, directory=str(tmp_path), format="svg", cleanup=True)
    root = ET.parse(path).getroot()  # must be well-formed XML
    assert root.tag.endswith("svg")
    return "".join(root.itertext())


# ---- plot_network ----------------------------------------------------------------------
def test_plot_network_source_matches_mxnet():
    dot = viz.plot_network(letter_mlp(), shape={"data": (32, 16)})
    assert isinstance(dot, graphviz.Digraph)
    assert dot.name == "plot" and dot.format == "pdf"
    src = dot.source
    assert 'fc1 [label="FullyConnected\n64" fillcolor="#fb8072"' in src
    assert 'relu1 [label="Activation\nrelu" fillcolor="#ffffb3"' in src
    assert "data [label=data fillcolor=\"#8dd3c7\"" in src and "shape=oval" in src
    assert 'softmax [label=softmax fillcolor="#fccde5"' in src  # cm[7]: not 'Softmax'
    assert 'fc1 -> data [label=16 arrowtail=open dir=back]' in src
    assert 'relu1 -> fc1 [label=64 arrowtail=open dir=back]' in src
    assert "fc1_weight" not in src  # hidden, edges dropped


def test_plot_network_dtype_and_shown_weights():
    dot = viz.plot_network(letter_mlp(), shape={"data": (8, 16)}, dtype={"data": "float32"},
                           hide_weights=False, node_attrs={"shape": "ellipse"})
    src = dot.source
    assert 'fc1 -> data [label="16(float32)"' in src
    # MXNet drops the first dim of every shape, weights too: (64, 16) -> "16"
    assert 'fc1 -> fc1_weight [label="16(float32)"' in src  # weight edge kept
    assert "\tfc1_weight [" not in src  # ...but no styled node for it
    assert "shape=ellipse" in src


def test_plot_network_no_shape_labels_empty():
    src = viz.plot_network(letter_mlp()).source
    assert 'fc2 -> relu1 [label="" arrowtail=open dir=back]' in src


@needs_dot
def test_letter_mlp_svg(tmp_path):
    text = svg_text(viz.plot_network(letter_mlp(), shape={"data": (32, 16)}), tmp_path, "mlp")
    for word in ("FullyConnected", "64", "26", "Activation", "relu", "data", "softmax"):
        assert word in text


@needs_dot
def test_conv_like_svg(tmp_path):
    dot = viz.plot_network(conv_like(), shape={"data": (4, 16)})
    assert 'leaky0 [label="LeakyReLU\nleaky"' in dot.source
    assert 'concat0 [label=concat0 fillcolor="#fdb462"' in dot.source
    assert 'flatten0 -> concat0 [label="4x8"' in dot.source
    text = svg_text(dot, tmp_path, "conv")
    for word in ("LeakyReLU", "leaky", "tanh", "concat0", "flatten0", "reshape0", "2x8"):
        assert word in text


def test_duplicate_names_warn():
    x = sg.sym.Variable("x")
    twice = sg.sym.Activation(sg.sym.Activation(x, act_type="relu", name="a"),
                              act_type="relu", name="a")
    with pytest.warns(RuntimeWarning, match="Repeated names: a"):
        viz.plot_network(twice)


def test_convolution_and_pooling_labels():
    conv = {"op": "Convolution", "name": "c",
            "attrs": {"kernel": "(5, 5)", "num_filter": "20"}}
    assert viz._op_style(conv) == ("Convolution\n5x5/1, 20", viz.PALETTE[1])
    conv["attrs"]["stride"] = "(2, 2)"
    assert viz._op_style(conv)[0] == "Convolution\n5x5/2x2, 20"
    pool = {"op": "Pooling", "name": "p", "attrs": {"pool_type": "max"}}
    assert viz._op_style(pool) == ("Pooling\nmax, []/1", viz.PALETTE[4])
    assert viz._op_style({"op": "BatchNorm", "name": "bn0"}) == ("bn0", viz.PALETTE[3])


# ---- print_summary ---------------------------------------------------------------------
def test_print_summary_letter_mlp(capsys):
    viz.print_summary(letter_mlp(), shape={"data": (32, 16)})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "_" * 120 and lines[2] == "=" * 120
    assert lines[1].startswith("Layer (type)") and "Output Shape" in lines[1]
    assert lines[1].index("Output Shape") == 52 and lines[1].index("Param #") == 76
    rows = {ln.split()[0]: ln.split() for ln in lines if "(" in ln.split()[0]}
    assert rows["data(null)"][1:] == ["16", "0"]
    assert rows["fc1(FullyConnected)"][1:] == ["64", "1088", "data"]
    assert rows["fc2(FullyConnected)"][1:] == ["26", "1690", "relu1"]
    assert rows["softmax(SoftmaxOutput)"][1:] == ["26", "0", "fc2"]
    assert lines[-2] == "Total params: 2778" and lines[-3] == "=" * 120


def test_print_summary_without_shape_counts_like_mxnet(capsys):
    viz.print_summary(letter_mlp(), line_length=80)
    out = capsys.readouterr().out
    assert "Total params: 90" in out  # in-size unknown -> num_hidden only (64 + 26)
    assert out.splitlines()[0] == "_" * 80


# ---- plot_compiled ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def letter_executor():
    return letter_mlp().simple_bind(data=(32, 16))


def test_compiled_view_attributes_every_node_kernel(letter_executor):
    from runtime.viz.compiled_model import analyze

    view = analyze(letter_executor)
    assert view.notes == []  # one trace record per native call
    owners = {name: c for c in view.calls for name in c.nodes}
    assert {"fc1", "relu1", "fc2", "softmax"} <= set(owners)
    # relu is fused into fc1's matmul epilogue, its gradient into the dX matmul
    assert owners["relu1"] is owners["fc1"] and owners["fc1"].nodes == ("fc1", "relu1")
    fused_grad = owners["relu1_backward_elemwise_grad"]
    assert fused_grad.nodes[0].endswith("_backward_dot") and fused_grad.stage == "backward"
    relu_out = [e for e in fused_grad.entries if e is not None and e.node.name == "relu1"]
    assert relu_out, "the relu gradient epilogue reads the forward output"
    grad = owners["softmax_backward_softmax_output_grad"]
    assert grad.stage == "backward"
    assert [e.node.name for e in grad.entries[:2]] == ["softmax", "softmax_label"]
    assert grad.offsets[0] == letter_executor.compiled.outputs[0].offset


@needs_dot
def test_plot_compiled_svg(letter_executor, tmp_path):
    dot = viz.plot_compiled(letter_executor)
    assert dot.format == "svg"
    src = dot.source
    assert "subgraph cluster_kernel" in src and "style=\"filled,dashed\"" in src
    text = svg_text(dot, tmp_path, "compiled")
    for word in ("_softmax_output_grad", "softmax_backward_softmax_output_grad",
                 "FullyConnected", "32x26 float32", "grad fc1_weight", "k_"):
        assert word in text, word
    root = ET.parse(tmp_path / "compiled.svg").getroot()
    clusters = [g for g in root.iter() if g.get("class") == "cluster"]
    assert len(clusters) >= 8


# ---- rendering without dot -------------------------------------------------------------
def test_missing_dot_message(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no 'dot' anywhere
    dot = viz.plot_network(letter_mlp())
    with pytest.raises(viz.DotNotFoundError) as info:
        dot.render(directory=str(tmp_path))
    message = str(info.value)
    for hint in ("apt-get install graphviz", "brew install graphviz", "conda install graphviz"):
        assert hint in message
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        dot.pipe(format="svg")


# ---- plot_history ----------------------------------------------------------------------
HISTORY = [{"epoch": i, "train": {"accuracy": 0.5 + 0.1 * i},
            "validation": {"accuracy": 0.45 + 0.1 * i}, "time": 1.0} for i in range(3)]


@pytest.mark.skipif(not HAS_MPL, reason="matplotlib (extra 'plot') not installed")
def test_plot_history_svg(tmp_path):
    fname = tmp_path / "hist.svg"
    viz.plot_history(HISTORY, fname=str(fname))
    root = ET.parse(fname).getroot()
    assert root.tag.endswith("svg")
    text = fname.read_text()
    assert "train-accuracy" in text and "validation-accuracy" in text
    with pytest.raises(ValueError, match="no 'mse' values"):
        viz.plot_history(HISTORY, metric="mse")


def test_plot_history_without_matplotlib(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("no matplotlib")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"pip install symgraph-compiler\[plot\]"):
        viz.plot_history(HISTORY)


# ---- Convolution / Pooling (registered ops) -----------------------------------------------
def lenet():
    """MXNet's LeNet example: conv 5x5x20 -> tanh -> pool -> conv 5x5x50 -> tanh -> pool
    -> fc 500 -> tanh -> fc 10 -> softmax."""
    net = sg.sym.Variable("data")
    for i, filters in enumerate((20, 50), 1):
        net = sg.sym.Convolution(net, kernel=(5, 5), num_filter=filters, name=f"conv{i}")
        net = sg.sym.Activation(net, act_type="tanh", name=f"tanh{i}")
        net = sg.sym.Pooling(net, pool_type="max", kernel=(2, 2), stride=(2, 2),
                             name=f"pool{i}")
    net = sg.sym.Flatten(net, name="flatten")
    net = sg.sym.FullyConnected(net, num_hidden=500, name="fc1")
    net = sg.sym.Activation(net, act_type="tanh", name="tanh3")
    net = sg.sym.FullyConnected(net, num_hidden=10, name="fc2")
    return sg.sym.SoftmaxOutput(net, name="softmax")


@needs_dot
def test_lenet_svg_has_conv_and_pool_labels(tmp_path):
    dot = viz.plot_network(lenet(), shape={"data": (1, 1, 28, 28)})
    src = dot.source
    assert 'conv1 [label="Convolution\n5x5/1, 20" fillcolor="#fb8072"' in src
    assert 'pool1 [label="Pooling\nmax, 2x2/2x2" fillcolor="#80b1d3"' in src
    assert 'pool1 -> tanh1 [label="20x24x24"' in src  # conv1's inferred output shape
    assert 'conv2 -> pool1 [label="20x12x12"' in src
    text = svg_text(dot, tmp_path, "lenet")
    for word in ("Convolution", "5x5/1, 20", "5x5/1, 50", "Pooling", "max, 2x2/2x2",
                 "50x4x4", "FullyConnected"):
        assert word in text


def test_print_summary_lenet_counts_like_mxnet(capsys):
    viz.print_summary(lenet(), shape={"data": (1, 1, 28, 28)})
    lines = capsys.readouterr().out.splitlines()
    rows = {ln.split()[0]: ln.split() for ln in lines if "(" in ln.split()[0]}
    assert rows["conv1(Convolution)"][1:] == ["20x24x24", "520", "data"]  # 20*1*5*5 + 20
    assert rows["pool1(Pooling)"][1:] == ["20x12x12", "0", "tanh1"]
    assert rows["conv2(Convolution)"][1:] == ["50x8x8", "25050", "pool1"]  # 50*20*25 + 50
    assert rows["fc1(FullyConnected)"][1:] == ["500", "400500", "flatten"]
    assert rows["fc2(FullyConnected)"][1:] == ["10", "5010", "tanh3"]
    assert lines[-2] == "Total params: 431080"
