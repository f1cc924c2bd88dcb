"""`symgraph launch`: the flags each MPI needs, one thread per rank, the exit status."""

from __future__ import annotations

import sys

from mpi_helpers import ROOT, launch

from runtime.cli.launch import build_command, launch_env


def test_open_mpi_flags_as_root_and_oversubscribed():
    cmd = build_command(4, ["train.py", "--epochs", "2"], mpiexec="mpiexec",
                        flavour="openmpi", cores=2, is_root=True)
    assert cmd[:5] == ["mpiexec", "-n", "4", "--allow-run-as-root", "--oversubscribe"]
    assert cmd[-4:] == [sys.executable, "train.py", "--epochs", "2"]
    assert "-x" in cmd and "OPENBLAS_NUM_THREADS" in cmd
    plain = build_command(2, ["t.py"], mpiexec="mpiexec", flavour="openmpi", cores=2,
                          is_root=False)
    assert "--allow-run-as-root" not in plain and "--oversubscribe" not in plain


def test_mpich_gets_neither_open_mpi_flag():
    cmd = build_command(4, ["t.py"], hosts="h1,h2", mpiexec="mpiexec", flavour="mpich",
                        cores=2, is_root=True)
    assert "--allow-run-as-root" not in cmd and "--oversubscribe" not in cmd
    assert cmd[cmd.index("-hosts") + 1] == "h1,h2"


def test_one_compute_thread_per_rank_unless_told():
    env = launch_env(1, "mpich", base={})
    assert env["OPENBLAS_NUM_THREADS"] == env["SYMGRAPH_NUM_THREADS"] == "1"
    assert env["HYDRA_LAUNCHER"] == "fork"
    assert launch_env(2, "openmpi", timeout=9, base={})["SYMGRAPH_DIST_TIMEOUT"] == "9"


def test_exit_status_and_thread_settings_reach_the_ranks(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("import os, sys\n"
                      "print('threads', os.environ['OPENBLAS_NUM_THREADS'], flush=True)\n"
                      "rank = os.environ.get('PMI_RANK', os.environ.get("
                      "'OMPI_COMM_WORLD_RANK'))\n"
                      "sys.exit(5 if rank == '1' else 0)\n")
    run = launch([str(script)], via_cli=True, env={"OPENBLAS_NUM_THREADS": "7"})
    assert run.returncode == 5, run.output
    assert run.stdout.count("threads 1") == 2


def test_missing_script_is_one_error_line(tmp_path):
    from runtime.cli import main

    assert main(["launch", "-n", "2", str(tmp_path / "nope.py")]) == 1


def test_mnist_example_trains_on_two_ranks():
    run = launch([str(ROOT / "examples" / "train_mnist_dist.py"), "--samples", "2560"],
                 via_cli=True)
    assert run.returncode == 0, run.output
    line = next(ln for ln in run.stdout.splitlines() if ln.startswith("model=mlp"))
    fields = dict(part.split("=", 1) for part in line.split())
    assert fields["workers"] == "2" and fields["batch/rank"] == "64", line
    assert float(line.split("val_acc=")[1].split()[0]) > 0.7, line
