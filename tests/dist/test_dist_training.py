"""N ranks with batch B == one process with batch N x B (MNIST MLP), through Module.fit,
a Gluon Trainer (SGD+momentum and Adam) and the Horovod API; rank 0 logs the global
metric once. Module.fit runs both gradient paths: one allreduce of the whole bucket after
backward (``SYMGRAPH_OVERLAP_PARTS=1``) and the bucket's pieces allreduced while backward
goes on (runtime/overlap.py; ``SYMGRAPH_OVERLAP_MIN_BYTES`` lowered so that the test's
small MLP is cut too)."""

from __future__ import annotations

import numpy as np
import pytest
from dist_worker import STEPS
from mpi_helpers import alone, launch, worker

pytestmark = pytest.mark.slow
BLOCKING = {"SYMGRAPH_OVERLAP_PARTS": "1"}
OVERLAPPED = {"SYMGRAPH_OVERLAP_MIN_BYTES": "1024"}


def _counter(path, name) -> int:
    """A counter rank 0 saved beside the parameters (tests/dist/dist_worker.py)."""
    return int(np.load(path)[f"__{name}"])


def _reference(tmp_path_factory, case, optimizer="sgd", net="mlp"):
    out = tmp_path_factory.mktemp("ref") / f"{case}-{optimizer}-{net}.npz"
    run = alone(worker(case, out, "--reference", "--optimizer", optimizer, "--net", net))
    assert run.returncode == 0, run.output
    return np.load(out)


def _check_same(dist, ref):
    def params(npz):
        return sorted(k for k in npz.files if k != "accuracy" and not k.startswith("__"))

    names = params(ref)
    assert names and names == params(dist)
    for name in names:
        assert not np.allclose(ref[name], 0)
        np.testing.assert_allclose(dist[name], ref[name], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.fixture(scope="module")
def module_reference(tmp_path_factory):
    return _reference(tmp_path_factory, "module")


@pytest.mark.parametrize("path", ["blocking", "overlapped"])
def test_module_fit_dist_sync_matches_one_process(tmp_path, module_reference, path):
    run = launch(worker("module", tmp_path / "d.npz"),
                 env=BLOCKING if path == "blocking" else OVERLAPPED)
    assert run.returncode == 0, run.output
    out = tmp_path / "d.npz"
    assert _counter(out, "overlapped_steps") == (0 if path == "blocking" else STEPS)
    assert _counter(out, "progress_polls") == 0  # the test's pieces are sent eagerly
    dist = np.load(tmp_path / "d.npz")
    _check_same(dist, module_reference)
    # the epoch's train metric is the global batch's, logged once (by rank 0)
    lines = [ln for ln in run.stdout.splitlines() if "Epoch[0] Train-accuracy=" in ln]
    assert len(lines) == 1, run.stdout
    logged = float(lines[0].rsplit("=", 1)[1])
    assert logged == pytest.approx(float(module_reference["accuracy"]), abs=1e-6)
    assert "rank 0 done" in run.stdout and "rank 1 done" in run.stdout


def test_four_ranks_oversubscribed_match_one_process(tmp_path):
    # 4 ranks on a 2-core machine (MPICH accepts more ranks than cores)
    ref_out = tmp_path / "ref4.npz"
    ref = alone(worker("module", ref_out, "--reference", "--workers", 4))
    assert ref.returncode == 0, ref.output
    # overlapped, with the MPI progress thread polling even the test's small pieces
    run = launch(worker("module", tmp_path / "d4.npz", "--workers", 4), n=4, via_cli=True,
                 env={**OVERLAPPED, "SYMGRAPH_OVERLAP_POLL_MIN_BYTES": "0",
                      "SYMGRAPH_OVERLAP_POLL_US": "200"})
    assert run.returncode == 0, run.output
    out = tmp_path / "d4.npz"
    assert _counter(out, "overlapped_steps") == STEPS and _counter(out, "progress_polls") > 0
    _check_same(np.load(tmp_path / "d4.npz"), np.load(ref_out))


def test_module_fit_lenet_adam_matches_one_process(tmp_path):
    ref_out = tmp_path / "lenet-ref.npz"
    ref = alone(worker("module", ref_out, "--reference", "--net", "lenet",
                       "--optimizer", "adam"))
    assert ref.returncode == 0, ref.output
    run = launch(worker("module", tmp_path / "lenet.npz", "--net", "lenet",
                        "--optimizer", "adam"))
    assert run.returncode == 0, run.output
    # LeNet is cut with the default sizes
    assert _counter(tmp_path / "lenet.npz", "overlapped_steps") == STEPS
    dist, expected = np.load(tmp_path / "lenet.npz"), np.load(ref_out)
    assert "conv0_weight" in expected.files
    _check_same(dist, expected)


def test_launch_cli_runs_the_same_training(tmp_path, module_reference):
    run = launch(worker("module", tmp_path / "d.npz"), via_cli=True)
    assert run.returncode == 0, run.output
    _check_same(np.load(tmp_path / "d.npz"), module_reference)


def test_horovod_api_module_matches_one_process(tmp_path, module_reference):
    # hvd.broadcast_parameters + hvd.DistributedOptimizer + Module.fit(kvstore=None)
    run = launch(worker("horovod", tmp_path / "h.npz"))
    assert run.returncode == 0, run.output
    _check_same(np.load(tmp_path / "h.npz"), module_reference)


def test_horovod_distributed_trainer_matches_one_process(tmp_path, tmp_path_factory):
    ref = _reference(tmp_path_factory, "gluon", "sgd")
    run = launch(worker("gluon", tmp_path / "hg.npz", "--hvd"))
    assert run.returncode == 0, run.output
    _check_same(np.load(tmp_path / "hg.npz"), ref)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_gluon_trainer_dist_sync_matches_one_process(tmp_path, tmp_path_factory, optimizer):
    ref = _reference(tmp_path_factory, "gluon", optimizer)
    run = launch(worker("gluon", tmp_path / "g.npz", "--optimizer", optimizer))
    assert run.returncode == 0, run.output
    _check_same(np.load(tmp_path / "g.npz"), ref)


def test_gluon_trainer_lenet_adam_matches_one_process(tmp_path, tmp_path_factory):
    ref = _reference(tmp_path_factory, "gluon", "adam", "lenet")
    run = launch(worker("gluon", tmp_path / "gl.npz", "--optimizer", "adam", "--net", "lenet"))
    assert run.returncode == 0, run.output
    _check_same(np.load(tmp_path / "gl.npz"), ref)
