"""A rank that raises, dies or hangs stops the others with an error naming it (never a
hang); mismatched models are named at init; no mpiexec means one worker, with a warning."""

from __future__ import annotations

import numpy as np
import pytest
from mpi_helpers import alone, launch, worker

FAST = {"SYMGRAPH_DIST_TIMEOUT": "4"}
#: the overlapped allreduce (runtime/overlap.py) with its MPI progress thread polling
OVERLAPPED = {**FAST, "SYMGRAPH_OVERLAP_MIN_BYTES": "1024", "SYMGRAPH_OVERLAP_POLL_US": "200",
              "SYMGRAPH_OVERLAP_POLL_MIN_BYTES": "0"}


@pytest.mark.parametrize("env", [FAST, OVERLAPPED], ids=["blocking", "overlapped"])
def test_rank_that_raises_stops_the_others_naming_it(tmp_path, env):
    run = launch(worker("module", tmp_path / "f.npz", "--fault", "raise"), env=env)
    assert run.returncode != 0
    assert "PeerFailedError: rank 1 failed, so rank 0 stops" in run.stderr, run.output
    assert "ValueError: injected failure in batch 2 (on rank 1)" in run.stderr
    assert run.seconds < 60
    assert not (tmp_path / "f.npz").exists()


@pytest.mark.parametrize("env", [FAST, OVERLAPPED], ids=["blocking", "overlapped"])
def test_rank_that_hangs_times_out_naming_it(tmp_path, env):
    run = launch(worker("module", tmp_path / "f.npz", "--fault", "hang"), env=env)
    assert run.returncode != 0
    assert "DistributedTimeoutError: rank 0: gradient allreduce" in run.stderr, run.output
    assert "within 4 s; rank(s) [1] do not answer" in run.stderr
    assert run.seconds < 60


def test_rank_that_hangs_under_symgraph_launch_is_stopped_too(tmp_path):
    # launch keeps survivors of a failure alive; after the timeout the job is aborted,
    # so the stuck rank cannot keep mpiexec waiting
    run = launch(worker("module", tmp_path / "f.npz", "--fault", "hang"), env=FAST,
                 via_cli=True)
    assert run.returncode != 0
    assert "within 4 s; rank(s) [1] do not answer" in run.stderr, run.output
    assert run.seconds < 60


def test_rank_that_dies_is_named_under_symgraph_launch(tmp_path):
    run = launch(worker("module", tmp_path / "f.npz", "--fault", "die"), env=FAST,
                 via_cli=True)
    assert run.returncode != 0
    assert "rank(s) [1] do not answer (stuck or dead)" in run.stderr, run.output
    assert run.seconds < 60


def test_mismatched_parameter_shapes_are_named_at_init(tmp_path):
    run = launch(worker("module", tmp_path / "f.npz", "--fault", "mismatch"), env=FAST)
    assert run.returncode != 0
    assert "RankMismatchError: ranks were started with different graph or parameter " \
           "shapes: rank 1 has parameter fc1_bias=[65] where rank 0 has [64]" in run.stderr
    assert "fc1_weight=[65, 784] where rank 0 has [64, 784]" in run.stderr
    assert "rank 0 done" not in run.stdout


def test_without_mpiexec_trains_as_one_worker_with_a_warning(tmp_path):
    run = alone(worker("module", tmp_path / "one.npz", "--workers", "1"))
    assert run.returncode == 0, run.output
    assert "not started by mpiexec: training as a single worker" in run.stderr
    ref = alone(worker("module", tmp_path / "ref.npz", "--workers", "1", "--reference"))
    assert ref.returncode == 0, ref.output
    one, expected = np.load(tmp_path / "one.npz"), np.load(tmp_path / "ref.npz")
    for name in expected.files:
        np.testing.assert_allclose(one[name], expected[name], rtol=1e-6, atol=1e-7)
