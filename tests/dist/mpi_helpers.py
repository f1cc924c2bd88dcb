"""Helpers of tests/dist (imported by its tests): they launch real ranks with ``mpiexec``
on localhost.

MPI comes with the ``test`` extra (mpi4py + mpich); without it these tests fail, with
the command to install it, rather than skip.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
#: No test may wait longer than this for its ranks (a hang is a failure, not a wait).
HARD_TIMEOUT = 120


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self):
        return self.stdout + self.stderr


def require_mpi():
    from runtime.cli.launch import LaunchError, find_mpiexec

    if importlib.util.find_spec("mpi4py") is None:
        pytest.fail("mpi4py is not installed: pip install -e '.[dist]' (the test extra "
                    "includes it)")
    try:
        return find_mpiexec()
    except LaunchError as exc:
        pytest.fail(str(exc))


def _env(extra=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OPENBLAS_NUM_THREADS"] = "1"
    env.update(extra or {})
    return env


def _run(cmd, env, timeout):
    tic = time.monotonic()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                             cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"ranks still running after {timeout} s (a hang): {' '.join(cmd)}\n"
                    f"{exc.stdout}\n{exc.stderr}")
    return Run(out.returncode, out.stdout, out.stderr, time.monotonic() - tic)


def launch(script_args, n=2, env=None, timeout=HARD_TIMEOUT, via_cli=False):
    """Run ``python script_args...`` on ``n`` ranks (plain mpiexec, or `symgraph launch`)."""
    mpiexec = require_mpi()
    if via_cli:
        cmd = [sys.executable, "-m", "runtime.cli", "launch", "-n", str(n)] + script_args
    else:
        cmd = [mpiexec, "-n", str(n), sys.executable] + script_args
    return _run(cmd, _env(env), timeout)


def alone(script_args, env=None, timeout=HARD_TIMEOUT):
    """Run the script as one ordinary process (no mpiexec)."""
    return _run([sys.executable] + script_args, _env(env), timeout)


def worker(*args):
    return [str(HERE / "dist_worker.py"), *map(str, args)]
