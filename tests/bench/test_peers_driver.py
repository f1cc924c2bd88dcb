"""`make bench-peers` without the peers: the floor's FLOP counts against symgraph's own shape
inference, the table (medians, ratios, floor fractions, compile columns, missing and failed
peers) on synthetic records, the peers' data against symgraph's loaders, the shared
networks against symgraph's builders, and one real --quick run of symgraph's script through
the driver with a peer that is not installed. No timing is asserted."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

PEERS = os.path.join(os.path.dirname(__file__), "..", "..", "bench", "peers")
sys.path.insert(0, os.path.abspath(PEERS))

import peer_common as pc  # noqa: E402
import run_peers as rp  # noqa: E402
import symbols  # noqa: E402

import symgraph as sg  # noqa: E402

DATA = os.environ.get("SYMGRAPH_DATA")
needs_data = pytest.mark.skipif(not DATA or not os.path.isdir(os.path.join(DATA, "mnist")),
                                reason="set SYMGRAPH_DATA to the datasets folder")
INPUTS = {"mlp-letter": (1, 16), "mlp-mnist": (1, 784), "lenet": (1, 1, 28, 28),
          "lenet5": (1, 1, 28, 28), "resnet18": (1, 3, 32, 32)}


def inferred_flops(net):
    """Forward matmul/conv FLOPs per sample from symgraph's shape inference of the graph."""
    symbol = symbols.BUILDERS[net](sg.sym)
    internals = symbol.get_internals()
    _, shapes, _ = internals.infer_shape(data=INPUTS[net])
    shape = dict(zip(internals.list_outputs(), shapes))
    total = 0
    for node in json.loads(symbol.tojson())["nodes"]:
        if node["op"] in ("Convolution", "FullyConnected"):
            weight, out = shape[node["name"] + "_weight"], shape[node["name"] + "_output"]
            total += 2 * int(np.prod(weight)) * int(np.prod(out[2:]))
    return total


@pytest.mark.parametrize("net", sorted(INPUTS))
def test_forward_flops_match_the_graphs_shapes(net):
    assert rp.forward_flops(net) == inferred_flops(net)


def test_floor_is_sgemm_rate_over_three_forward_passes():
    # the issue's figures: 204 GF/s on 2 threads gives W2's floor of 311k samples/s
    assert rp.forward_flops("mlp-mnist") == 2 * (784 * 128 + 128 * 64 + 64 * 10)
    assert rp.floor_samples_per_s("mlp-mnist", 204.0) == pytest.approx(311_401, rel=1e-5)
    assert rp.floor_samples_per_s("lenet5", 204.0) == pytest.approx(146_729, rel=1e-5)


def record(framework, workload, rate, **extra):
    base = {"framework": framework, "workload": workload, "samples_per_s": rate,
            "accuracy": 0.9, "peak_rss_mb": 100.0, "cpu_util": 1.5, "compile_s": None,
            "compile_kind": None}
    return {**base, **extra}


def table_rows(table):
    """{(workload cell, framework): row}; the workload cell is empty after its first row."""
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]
    return {tuple(c.strip() for c in line.strip("|").split("|")[:2]): line for line in rows}


def test_table_medians_ratios_floor_and_missing_peers():
    floor_gflops = 1000 * 3 * rp.forward_flops("mlp-mnist") / 1e9  # W2's floor: 1000/s
    records = [record("symgraph", "W2", r, compile_s=c, compile_kind=k)
               for r, c, k in ((100, 2.0, "cold"), (120, 0.1, "warm"), (110, 0.3, "warm"))]
    records += [record("torch", "W2", r) for r in (50, 60, 55)]
    records += [record("torch.compile", "W2", r, compile_s=c, compile_kind="first step")
                for r, c in ((40, 30.0), (44, 5.0), (42, 7.0))]
    records += [{"framework": "mxnet", "workload": "W2", "error": "Segmentation fault"}]
    table = rp.build_table(records, {"jax": "pip install failed: no jax"},
                           (floor_gflops, 1.0),
                           ["symgraph", "mxnet", "torch", "torch.compile", "jax"], ["W2"])
    rows = table_rows(table)
    cells = {k: [c.strip() for c in v.strip("|").split("|")] for k, v in rows.items()}
    ours = cells[("W2 " + pc.WORKLOADS["W2"].title + " (floor 1.0k/s)", "symgraph")]
    assert ours[2:] == ["110.0 (100.0-120.0, 3 runs)", "1.00x", "11.0%", "0.9000", "100", "1.50",
                        "2.00", "0.20"]
    assert cells[("", "torch")][2:5] == ["55.0 (50.0-60.0, 3 runs)", "2.00x", "5.5%"]
    assert cells[("", "torch.compile")][3] == "2.62x"
    assert cells[("", "torch.compile")][-2:] == ["30.00", "6.00"]  # round 1 cold, others warm
    assert cells[("", "mxnet")][2] == "failed: Segmentation fault"
    assert cells[("", "jax")][2] == "not installed: pip install failed: no jax"
    assert set(cells[("", "jax")][3:]) == {"-"}


def test_a_workload_a_framework_never_ran_says_so():
    table = rp.build_table([record("symgraph", "W1", 10.0)], {}, (1.0, 1.0),
                           ["symgraph", "torch"], ["W1"])
    assert "| torch | not run |" in table


def test_missing_environment_is_reported_not_raised(tmp_path, monkeypatch):
    peer = rp.FRAMEWORKS[-1]
    monkeypatch.delenv("SYMGRAPH_PEER_JAX_PYTHON", raising=False)
    python, reason = rp.environment(peer, install=False, venvs=str(tmp_path))
    assert python is None and "no environment" in reason
    monkeypatch.setenv("SYMGRAPH_PEER_JAX_PYTHON", sys.executable)
    broken = rp.Peer("jax", "jax", (), "no_such_module_for_bench_peers", "run_jax.py")
    python, reason = rp.environment(broken, install=False)
    assert python is None and "import no_such_module_for_bench_peers failed" in reason


def test_padded_batches_wrap_and_validation_counts_each_sample_once():
    batches = pc.padded_batches(10, 4)
    assert [b.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 1]]
    y = (np.arange(10) % 3).astype(np.float32)
    split = pc.Split(y[:, None], y, np.arange(10, dtype=np.float32)[:, None], y)

    def predict(x):  # wrong on sample 0 only, which the last batch repeats as padding
        pred = (x[:, 0] % 3).astype(np.int64)
        return np.where(x[:, 0] == 0, 1, pred)
    assert pc.validate(split, 4, predict) == pytest.approx(0.9)


@needs_data
def test_peer_data_is_symgraphs_data():
    from runtime import datasets
    from runtime.cli.train import load_data

    w1 = pc.load(pc.WORKLOADS["W1"], quick=False)
    (x, y), (vx, vy) = load_data("letter")
    for got, want in ((w1.train_x, x), (w1.train_y, y), (w1.val_x, vx), (w1.val_y, vy)):
        np.testing.assert_array_equal(got, want)
    w2 = pc.load(pc.WORKLOADS["W2"], quick=True)
    (x, y), _ = load_data("mnist")
    np.testing.assert_array_equal(w2.train_x, x[:len(w2.train_x)].reshape(-1, 784))
    np.testing.assert_array_equal(w2.train_y, y[:len(w2.train_y)])
    w4 = pc.load(pc.WORKLOADS["W4"], quick=True)
    images, labels = datasets.load_fashion_mnist(kind="test")
    np.testing.assert_array_equal(w4.val_x, images[:len(w4.val_x), None].astype(np.float32)
                                  / 255)
    np.testing.assert_array_equal(w4.val_y, labels[:len(w4.val_y)])


@pytest.mark.parametrize("net", ["mlp-letter", "mlp-mnist", "lenet", "lenet5"])
def test_shared_symbols_are_symgraphs_networks(net):
    """MXNet's script builds these from symbols.py; symgraph's reuses its own builders."""
    from run_symgraph import build

    ours, shared = build(net), symbols.BUILDERS[net](sg.sym)
    shape = INPUTS[net]
    assert ours.list_arguments() == shared.list_arguments()
    assert ours.infer_shape(data=shape)[0] == shared.infer_shape(data=shape)[0]


@needs_data
@pytest.mark.jit
def test_quick_symgraph_run_through_the_driver(tmp_path, monkeypatch):
    monkeypatch.setattr(rp, "VENVS", str(tmp_path / "no-venvs"))
    monkeypatch.delenv("SYMGRAPH_PEER_MXNET_PYTHON", raising=False)
    table_path, log = tmp_path / "table.md", tmp_path / "runs.jsonl"
    assert rp.main(["--quick", "--workloads", "W1", "--frameworks", "symgraph,mxnet",
                    "--no-install", "--table", str(table_path), "--log", str(log)]) == 0
    header, line = log.read_text().splitlines()
    assert len(json.loads(header)["sgemm_gflops"]) == 2
    run = json.loads(line)
    assert run["framework"] == "symgraph" and "error" not in run, run
    assert run["samples"] == pc.WORKLOADS["W1"].quick_train and run["epochs"] == 1
    assert 0 <= run["accuracy"] <= 1 and run["compile_kind"] == "cold"
    assert run["samples_per_s"] > 0 and run["peak_rss_mb"] > 0
    rows = table_rows(table_path.read_text())
    assert "not installed: no environment" in rows[("", "mxnet")]
    assert "1.00x" in next(v for k, v in rows.items() if k[1] == "symgraph")


def test_table_rebuilt_from_an_interrupted_runs_log(tmp_path):
    log, table = tmp_path / "runs.jsonl", tmp_path / "table.md"
    lines = [{"sgemm_gflops": [2.0, 1.0], "n": 4096, "unavailable": {"jax": "pip failed"}}]
    lines += [{**record("symgraph", "W2", r), "round": i} for i, r in enumerate((30, 10), 1)]
    lines += [{**record("torch", "W2", 10.0), "round": 1}]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert rp.main(["--from-log", str(log), str(log), "--table", str(table), "--workloads", "W2",
                    "--frameworks", "symgraph,torch,jax"]) == 0
    rows = table_rows(table.read_text())
    assert "| 20.0 (10.0-30.0, 4 runs) | 1.00x |" in next(v for k, v in rows.items()
                                                 if k[1] == "symgraph")
    assert "| 2.00x |" in rows[("", "torch")]
    assert "not installed: pip failed" in rows[("", "jax")]
    assert "2 round(s)" in table.read_text()


@needs_data
@pytest.mark.jit
def test_module_accuracy_counts_only_the_real_validation_samples():
    """Trained to always answer class 0; of 40 validation samples in batches of 32 the
    first 24 say class 5. Real accuracy 16/40; counting the padded tail (the first 24
    again) would give 16/64."""
    from run_symgraph import build

    w1 = pc.WORKLOADS["W1"]
    full = pc.load(w1, quick=True)
    val_y = np.zeros(40, np.float32)
    val_y[:24] = 5
    split = pc.Split(full.train_x, np.zeros_like(full.train_y), full.val_x[:40], val_y)
    _, _, _, accuracy = pc.fit_module(sg, build(w1.net), split, pc.Workload(
        **{**pc.asdict(w1), "epochs": 2}))
    assert accuracy == pytest.approx(16 / 40)
