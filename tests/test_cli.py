"""The ``symgraph`` command end to end, in subprocesses (exit codes, one-line errors)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import symgraph as sg
from runtime import ndarray_io

ROOT = Path(__file__).resolve().parents[1]
HAS_DOT = shutil.which("dot") is not None


def run(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("SYMGRAPH_DATA", "/work/shared/datasets")
    return subprocess.run([sys.executable, "-m", "runtime.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd or ROOT, env=env,
                          timeout=300)


def assert_one_line_error(proc, code):
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("symgraph: error: "), proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    net = sg.sym.FullyConnected(sg.sym.Variable("data"), num_hidden=64, name="fc1")
    net = sg.sym.Activation(net, act_type="relu", name="relu1")
    net = sg.sym.FullyConnected(net, num_hidden=26, name="fc2")
    sg.sym.SoftmaxOutput(net, name="softmax").save(str(tmp / "letter-symbol.json"))
    ndarray_io.save(str(tmp / "w.params"), {"arg:fc1_weight": np.ones((64, 16), np.float32),
                                            "arg:fc1_bias": np.zeros(64, np.float32)})
    (tmp / "bad-symbol.json").write_text("{not json")
    return tmp


@pytest.mark.parametrize("command", ["", "plot", "summary", "inspect", "ir", "fit",
                                     "predict", "score"])
def test_help(command):
    proc = run(*([command] if command else []), "--help")
    assert proc.returncode == 0 and "usage: symgraph" in proc.stdout


@pytest.mark.skipif(not HAS_DOT, reason="graphviz 'dot' binary not installed")
def test_plot_svg(files):
    out = files / "net.svg"
    proc = run("plot", files / "letter-symbol.json", "--shape", "data=32,16", "-o", out)
    assert proc.returncode == 0, proc.stderr
    text = "".join(ET.parse(out).getroot().itertext())
    assert "FullyConnected" in text and "relu" in text and "64" in text


def test_summary(files):
    proc = run("summary", files / "letter-symbol.json", "--shape", "data=32,16")
    assert proc.returncode == 0, proc.stderr
    assert "fc1(FullyConnected)" in proc.stdout and "1088" in proc.stdout
    assert "Total params: 2778" in proc.stdout


def test_inspect(files):
    proc = run("inspect", files / "w.params")
    assert proc.returncode == 0, proc.stderr
    assert "arg:fc1_weight" in proc.stdout and "64x16" in proc.stdout
    assert "float32" in proc.stdout and "total 1088 elements, 4352 bytes" in proc.stdout


@pytest.mark.parametrize("stage,needle", [("graph", "_softmax_output_grad"),
                                          ("loop", "matmul"), ("llvm", "define")])
def test_ir(files, stage, needle):
    proc = run("ir", files / "letter-symbol.json", "--shape", "data=32,16", "--grad",
               "--stage", stage)
    assert proc.returncode == 0, proc.stderr
    assert needle in proc.stdout


def test_ir_without_grad_has_no_backward(files):
    proc = run("ir", files / "letter-symbol.json", "--shape", "data=8,16")
    assert proc.returncode == 0 and "_backward_" not in proc.stdout


@pytest.mark.parametrize("args,code,needle", [
    (["summary", "missing-symbol.json"], 1, "no such symbol file"),
    (["summary", "{tmp}/bad-symbol.json"], 1, "malformed symbol JSON"),
    (["ir", "{tmp}/letter-symbol.json", "--shape", "data=32,16",
      "--shape", "fc1_weight=10,3"], 1, "fc1"),
    (["summary", "{tmp}/letter-symbol.json", "--shape", "nope=3"], 1, "not inputs"),
    (["summary", "{tmp}/letter-symbol.json", "--shape", "data=a,b"], 1, "integers"),
    (["inspect", "{tmp}/bad-symbol.json"], 1, "truncated"),
    (["inspect", "missing.params"], 1, "no such params file"),
    (["plot", "{tmp}/letter-symbol.json"], 2, "--output"),
    (["ir", "{tmp}/letter-symbol.json", "--stage", "asm", "--shape", "data=1,16"], 2, "asm"),
    (["frobnicate"], 2, "invalid choice"),
    ([], 2, "COMMAND"),
    (["predict", "{tmp}/nothing", "--epoch", "1", "--input", "{tmp}/w.params", "-o",
      "{tmp}/p.npy"], 1, "expected a .npy or .csv"),
    (["score", "{tmp}/nothing", "--epoch", "3"], 1, "no such checkpoint file"),
])
def test_bad_input_one_line(files, args, code, needle):
    proc = run(*[a.format(tmp=files) for a in args])
    assert needle in assert_one_line_error(proc, code)


def test_debug_shows_traceback(files):
    proc = run("summary", "missing-symbol.json", "--debug")
    assert proc.returncode == 1 and "Traceback" in proc.stderr


@pytest.mark.slow
def test_fit_predict_score(tmp_path):
    prefix = tmp_path / "letter"
    proc = run("fit", "--model", "mlp-letter", "--data", "letter", "--epochs", "1",
               "--batch-size", "100", "--lr", "0.1", "--prefix", prefix)
    assert proc.returncode == 0, proc.stderr
    assert "Epoch[0] Train-accuracy=" in proc.stderr  # not a TTY: MXNet log lines
    assert "Epoch[0] Validation-accuracy=" in proc.stderr
    assert (tmp_path / "letter-symbol.json").is_file()
    assert (tmp_path / "letter-0001.params").is_file()

    proc = run("score", prefix, "--epoch", "1", "--data", "letter")
    assert proc.returncode == 0, proc.stderr
    accuracy = float(proc.stdout.strip().split("=")[1])
    assert 0.1 < accuracy <= 1.0

    X = np.random.default_rng(0).integers(0, 16, (7, 16)).astype(np.float32)
    np.save(tmp_path / "X.npy", X)
    np.savetxt(tmp_path / "X.csv", X[:3], delimiter=",")
    proc = run("predict", prefix, "--epoch", "1", "--input", tmp_path / "X.npy",
               "-o", tmp_path / "p.npy")
    assert proc.returncode == 0, proc.stderr
    preds = np.load(tmp_path / "p.npy")
    assert preds.shape == (7, 26) and np.allclose(preds.sum(axis=1), 1, atol=1e-4)
    proc = run("predict", prefix, "--epoch", "1", "--input", tmp_path / "X.csv",
               "-o", tmp_path / "p.csv")
    assert proc.returncode == 0, proc.stderr
    assert np.allclose(np.loadtxt(tmp_path / "p.csv", delimiter=","), preds[:3], atol=1e-5)

    proc = run("predict", prefix, "--epoch", "1", "--input", tmp_path / "missing.npy",
               "-o", tmp_path / "p.npy")
    assert "no such input file" in assert_one_line_error(proc, 1)


def test_fit_symbol_file(files, tmp_path):
    proc = run("fit", "--symbol", files / "letter-symbol.json", "--epochs", "1",
               "--batch-size", "500")
    assert proc.returncode == 0, proc.stderr
    assert "Epoch[0] Validation-accuracy=" in proc.stderr


def test_fit_bad_arguments(files):
    assert_one_line_error(run("fit", "--epochs", "0"), 1)
    assert_one_line_error(run("fit", "--data", "cifar"), 2)
    assert_one_line_error(run("fit", "--symbol", files / "bad-symbol.json"), 1)


# ---- user-level argument and input errors (issue 10: --batch-size, misfitting checkpoints) ----
@pytest.mark.parametrize("args,needle", [
    (["--batch-size", "0"], "--batch-size must be >= 1 (got 0)"),
    (["--batch-size", "-3"], "--batch-size must be >= 1 (got -3)"),
    (["--batch-size", str(10 ** 9)], "--batch-size 1000000000 is larger than the training set "
                                     "(16000 samples)"),
    (["--epochs", "0"], "--epochs must be >= 1 (got 0)"),
])
def test_fit_batch_size_errors_speak_of_the_argument(args, needle):
    assert needle in assert_one_line_error(run("fit", "--epochs", "1", *args), 1)


def test_fit_over_the_memory_limit_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("SYMGRAPH_MEMORY_LIMIT", "64K")
    line = assert_one_line_error(run("fit", "--epochs", "1", "--batch-size", "4000"), 1)
    assert "needs" in line and "memory limit of 64.0 KiB (from SYMGRAPH_MEMORY_LIMIT)" in line
    monkeypatch.setenv("SYMGRAPH_MEMORY_LIMIT", "lots")
    line = assert_one_line_error(run("fit", "--epochs", "1"), 1)
    assert "SYMGRAPH_MEMORY_LIMIT='lots'" in line


@pytest.fixture(scope="module")
def misfit_checkpoint(files):
    """The letter MLP's symbol with parameters of another network (fc1 of LeNet)."""
    prefix = files / "misfit"
    (files / "misfit-symbol.json").write_text((files / "letter-symbol.json").read_text())
    shapes = {"fc1_weight": (500, 800), "fc1_bias": (500,), "fc2_weight": (26, 64),
              "fc2_bias": (26,)}
    ndarray_io.save(str(files / "misfit-0001.params"),
                    {f"arg:{k}": np.zeros(s, np.float32) for k, s in shapes.items()})
    return prefix


def test_score_and_predict_refuse_misfitting_params(misfit_checkpoint, files):
    needle = "parameter 'fc1_weight' has shape (500, 800), the symbol needs (64, 16)"
    proc = run("score", misfit_checkpoint, "--epoch", "1", "--data", "letter")
    assert needle in assert_one_line_error(proc, 1)
    np.save(files / "X16.npy", np.zeros((5, 16), np.float32))
    proc = run("predict", misfit_checkpoint, "--epoch", "1", "--input", files / "X16.npy",
               "-o", files / "p.npy")
    assert needle in assert_one_line_error(proc, 1)
    assert not (files / "p.npy").exists()


def test_predict_batch_size_zero(misfit_checkpoint, files):
    np.save(files / "X16.npy", np.zeros((5, 16), np.float32))
    proc = run("predict", misfit_checkpoint, "--epoch", "1", "--input", files / "X16.npy",
               "-o", files / "p.npy", "--batch-size", "0")
    assert "--batch-size must be >= 1" in assert_one_line_error(proc, 1)


def test_predict_zero_dim_input(misfit_checkpoint, files):
    np.save(files / "scalar.npy", np.float32(3.0))
    proc = run("predict", misfit_checkpoint, "--epoch", "1", "--input", files / "scalar.npy",
               "-o", files / "p.npy")
    assert "holds a single number (a 0-d array); predict needs one sample per row" in \
        assert_one_line_error(proc, 1)
