"""`make bench-peers`: symgraph against MXNet 1.9.1, PyTorch (eager and ``torch.compile``)
and JAX (``jax.jit``) on the same five workloads, interleaved round by round, one table.

Each framework runs in its own interpreter: symgraph in this one, the peers in virtual
environments under ``.bench-venvs/`` (created with pip when missing, reused when present;
``SYMGRAPH_PEER_MXNET_PYTHON`` / ``..._TORCH_PYTHON`` / ``..._JAX_PYTHON`` point at an
existing interpreter instead). A peer that cannot be installed or fails gets a row saying so.
Every run is a subprocess (one workload, one framework) printing one JSON line
(bench/peers/run_*.py); the records also go to ``bench/results/peers-<time>.jsonl``.

The floor. ``GF/s(2)`` and ``GF/s(1)`` are numpy's float32 4096x4096x4096 matmul on two
and on one OpenBLAS thread, measured in the same run. A workload's training FLOPs per sample
are ``3 * F``, where ``F`` is its forward pass's matmul and convolution FLOPs per sample
(``2 * in * out`` per dense layer, ``2 * C_out * H_out * W_out * C_in * k * k`` per
convolution; the backward pass costs two such products, the data and the weight
gradient). The 2-core floor is ``GF/s(2) * 1e9 / (3 * F)`` samples/s: no framework can train
faster than the machine's best matmul rate allows, and "fraction of floor" is the measured
median over it. Element-wise work, pooling and the optimizer are not counted.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from peer_common import WORKLOADS  # noqa: E402
from symbols import RESNET18_STAGES  # noqa: E402

VENVS = os.path.join(ROOT, ".bench-venvs")
TABLE = os.path.join(HERE, "last_table.md")
RUN_TIMEOUT = 1800


@dataclass(frozen=True)
class Peer:
    """One framework: its environment (``env`` names the venv and the env var), how to
    install it, the module whose import proves the install, and its script."""

    name: str
    env: str
    packages: tuple
    probe: str
    script: str
    flags: tuple = ()


FRAMEWORKS = (
    Peer("symgraph", "symgraph", (), "symgraph", "run_symgraph.py"),
    Peer("mxnet", "mxnet", ("mxnet==1.9.1", "numpy==1.23.5"), "mxnet", "run_mxnet.py"),
    # torch 2.13.0 is the CPU wheel on this machine's disk; any other version downloads CUDA
    Peer("torch", "torch", ("torch==2.13.0", "numpy"), "torch", "run_torch.py"),
    Peer("torch.compile", "torch", ("torch==2.13.0", "numpy"), "torch", "run_torch.py",
         ("--compile",)),
    Peer("jax", "jax", ("jax", "jaxlib"), "jax", "run_jax.py"),
)


# ---------------------------------------------------------------------------- floor
def _layers(net):
    """(C_in, C_out, k, H_out) per convolution, (in, out, None, None) per dense layer."""
    dense = {"mlp-letter": (16, 64, 26), "mlp-mnist": (784, 128, 64, 10),
             "lenet": (800, 500, 10), "lenet5": (400, 120, 84, 10), "resnet18": (512, 10)}
    convs = {"lenet": [(1, 20, 5, 24), (20, 50, 5, 8)],
             "lenet5": [(1, 6, 5, 24), (6, 16, 3, 10)], "resnet18": _resnet_convs()}
    widths = dense[net]
    return convs.get(net, []) + [(a, b, None, None) for a, b in zip(widths, widths[1:])]


def _resnet_convs(side=32):
    convs, width = [(3, 64, 3, side)], 64
    for channels, stride in RESNET18_STAGES:
        side //= stride
        convs += [(width, channels, 3, side), (channels, channels, 3, side)]
        if stride != 1 or width != channels:
            convs.append((width, channels, 1, side))
        convs += [(channels, channels, 3, side)] * 2
        width = channels
    return convs


def forward_flops(net) -> float:
    total = 0.0
    for cin, cout, k, side in _layers(net):
        total += 2.0 * cin * cout * (1 if k is None else k * k * side * side)
    return total


def floor_samples_per_s(net, gflops_2) -> float:
    return gflops_2 * 1e9 / (3 * forward_flops(net))


_SGEMM = """
import time, numpy as np
n = {n}
a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
a @ a
times = []
for _ in range(3):
    start = time.perf_counter()
    a @ a
    times.append(time.perf_counter() - start)
print(2.0 * n ** 3 / min(times) / 1e9)
"""


def sgemm_gflops(threads, n=4096) -> float:
    """numpy's float32 n^3 matmul rate (best of 3) with ``threads`` BLAS threads."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", _SGEMM.format(n=n)], env=env, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.split()[-1])


# ---------------------------------------------------------------------------- environments
def _probe(python, module):
    """None if ``python`` imports ``module``, else the reason it does not."""
    try:
        out = subprocess.run([python, "-c", f"import {module}"], capture_output=True,
                             text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"{python}: {err}"
    if out.returncode:
        lines = out.stderr.strip().splitlines() or [f"exit status {out.returncode}"]
        return f"import {module} failed: {lines[-1]}"
    return None


def _install(peer, folder):
    """Create ``folder`` as a venv with the peer's packages; None or the failure."""
    python = os.path.join(folder, "bin", "python")
    steps = [] if os.path.exists(python) else [[sys.executable, "-m", "venv", folder]]
    steps.append([python, "-m", "pip", "install", "--quiet", *peer.packages])
    for cmd in steps:
        print(f"[bench-peers] {' '.join(cmd)}", file=sys.stderr, flush=True)
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            errors = [ln for ln in out.stderr.splitlines() if "ERROR" in ln] or \
                out.stderr.strip().splitlines() or [f"exit status {out.returncode}"]
            return f"{cmd[2] if cmd[1] == '-m' else cmd[0]} failed: {errors[-1]}"
    return None


def environment(peer, install=True, venvs=None):
    """(python, None) ready to run ``peer``, or (None, why it is not installed)."""
    venvs = VENVS if venvs is None else venvs
    if peer.env == "symgraph":
        return sys.executable, None
    override = os.environ.get(f"SYMGRAPH_PEER_{peer.env.upper()}_PYTHON")
    if override:
        reason = _probe(override, peer.probe)
        return (None, reason) if reason else (override, None)
    folder = os.path.join(venvs, peer.env)
    python = os.path.join(folder, "bin", "python")
    if os.path.exists(python) and _probe(python, peer.probe) is None:
        return python, None
    if not install:
        return None, f"no environment at {folder} (installing disabled)"
    reason = _install(peer, folder) or _probe(python, peer.probe)
    return (None, reason) if reason else (python, None)


# ---------------------------------------------------------------------------- runs
def run_one(peer, python, workload, quick, threads, cache_root, epochs=None):
    """One subprocess; its JSON record, or a record with ``error``."""
    cmd = [python, os.path.join(HERE, peer.script), "--workload", workload,
           "--threads", str(threads), *peer.flags] + (["--quick"] if quick else [])
    cmd += ["--epochs", str(epochs)] if epochs else []
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), SYMGRAPH_NUM_THREADS=str(threads),
               SYMGRAPH_CACHE_DIR=os.path.join(cache_root, "symgraph", workload),
               TORCHINDUCTOR_CACHE_DIR=os.path.join(cache_root, "inductor"))
    if peer.env == "symgraph":
        env["PYTHONPATH"] = ROOT
    base = {"framework": peer.name, "workload": workload}
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {**base, "error": f"timed out after {RUN_TIMEOUT} s"}
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        tail = out.stderr.strip().splitlines() or [f"exit status {out.returncode}"]
        return {**base, "error": tail[-1][:200]}
    return {**base, **json.loads(lines[-1])}


# ---------------------------------------------------------------------------- table
def _fmt_rate(x):
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k" if x >= 1e3 else f"{x:.1f}"


def summarise(records):
    """{(workload, framework): summary dict} over the rounds' records. A framework whose
    every run failed keeps the last error."""
    groups = {}
    for rec in records:
        groups.setdefault((rec["workload"], rec["framework"]), []).append(rec)
    out = {}
    for key, recs in groups.items():
        ok = [r for r in recs if "error" not in r]
        if not ok:
            out[key] = {"error": recs[-1]["error"]}
            continue
        rates = [r["samples_per_s"] for r in ok]
        cold, warm = _compile_times(ok)
        out[key] = {"median": statistics.median(rates), "low": min(rates), "high": max(rates),
                    "runs": len(ok), "failed": len(recs) - len(ok),
                    "accuracy": _median([r["accuracy"] for r in ok]),
                    "rss": statistics.median(r["peak_rss_mb"] for r in ok),
                    "cpu": statistics.median(r["cpu_util"] for r in ok),
                    "cold": cold, "warm": warm}
    return out


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _compile_times(recs):
    """(cold, warm): symgraph labels each run by its cache's state; for the others the
    first round is cold and later rounds warm (torch's on-disk inductor cache; JAX keeps
    none, so its warm figure is another cold one)."""
    times = [(r.get("compile_kind"), r.get("compile_s")) for r in recs]
    times = [(kind, s) for kind, s in times if s is not None]
    if not times:
        return None, None
    if any(kind in ("cold", "warm") for kind, _ in times):
        cold = [s for kind, s in times if kind == "cold"]
        warm = [s for kind, s in times if kind == "warm"]
    else:
        cold, warm = [times[0][1]], [s for _, s in times[1:]]
    return _median(cold), _median(warm)


def _opt(value, fmt):
    return "-" if value is None else fmt.format(value)


def build_table(records, unavailable, gflops, frameworks, workloads, meta=""):
    """The markdown table. ``unavailable``: {framework: reason} for peers not installed;
    ``gflops``: (2-thread, 1-thread) sgemm GF/s."""
    summary = summarise(records)
    lines = [meta, f"numpy float32 matmul: {gflops[0]:.1f} GF/s on 2 threads, "
             f"{gflops[1]:.1f} on 1.", "",
             "| workload | framework | samples/s median (range) | symgraph / this | "
             "% of 2-core floor | final acc. (median) | peak RSS MB | CPU util | cold compile s | "
             "warm compile s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for key in workloads:
        wl = WORKLOADS[key]
        floor = floor_samples_per_s(wl.net, gflops[0])
        ours = summary.get((key, "symgraph"), {}).get("median")
        title = f"{key} {wl.title} (floor {_fmt_rate(floor)}/s)"
        for name in frameworks:
            lines.append(f"| {title} | {name} | " + _row(summary.get((key, name)),
                                                          unavailable.get(name), ours, floor))
            title = ""
    return "\n".join(lines) + "\n"


def _row(s, missing, ours, floor):
    dashes = " | ".join(["-"] * 7) + " |"
    if missing is not None:
        return f"not installed: {missing} | {dashes}"
    if s is None:
        return f"not run | {dashes}"
    if "error" in s:
        return f"failed: {s['error']} | {dashes}"
    rate = (f"{_fmt_rate(s['median'])} ({_fmt_rate(s['low'])}-{_fmt_rate(s['high'])}, "
            f"{s['runs']} run{'s' if s['runs'] > 1 else ''})")
    if s["failed"]:
        rate += f", {s['failed']} run(s) failed"
    ratio = _opt(ours / s["median"] if ours else None, "{:.2f}x")
    return (f"{rate} | {ratio} | {100 * s['median'] / floor:.1f}% | "
            f"{_opt(s['accuracy'], '{:.4f}')} | {s['rss']:.0f} | {s['cpu']:.2f} | "
            f"{_opt(s['cold'], '{:.2f}')} | {_opt(s['warm'], '{:.2f}')} |")


def write_atomic(path, text):
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".md")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


# ---------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=None, help="default 3 (1 with --quick)")
    p.add_argument("--workloads", default=",".join(WORKLOADS),
                   help="comma-separated, from " + ",".join(WORKLOADS))
    p.add_argument("--frameworks", default=",".join(f.name for f in FRAMEWORKS))
    p.add_argument("--quick", action="store_true", help="small slices, one epoch: a smoke run")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, help="every workload this many epochs (same in "
                   "each framework) instead of its own count")
    p.add_argument("--no-install", action="store_true", help="never create a venv")
    p.add_argument("--table", default=TABLE, help="where the table is written")
    p.add_argument("--from-log", metavar="FILE.jsonl", nargs="+",
                   help="no runs: rebuild the table from earlier runs' records (the first "
                   "file's floor)")
    p.add_argument("--log", help="the runs' JSON lines (default bench/results/peers-<time>.jsonl)")
    args = p.parse_args(argv)
    args.workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    bad = [w for w in args.workloads if w not in WORKLOADS]
    names = [f.name for f in FRAMEWORKS]
    args.frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    bad += [f for f in args.frameworks if f not in names]
    if bad:
        p.error(f"unknown workload/framework {bad}")
    args.rounds = args.rounds or (1 if args.quick else 3)
    return args


def main(argv=None):
    args = parse_args(argv)
    peers = [f for f in FRAMEWORKS if f.name in args.frameworks]
    if args.from_log:
        return _rebuild(args, peers)
    ready, unavailable = {}, {}
    for peer in peers:
        python, reason = environment(peer, install=not args.no_install)
        if reason is None:
            ready[peer.name] = python
        else:
            unavailable[peer.name] = reason
            print(f"[bench-peers] {peer.name}: not installed: {reason}", file=sys.stderr)
    n = 2048 if args.quick else 4096
    gflops = (sgemm_gflops(2, n), sgemm_gflops(1, n))
    stamp = datetime.datetime.now(datetime.timezone.utc)
    log = args.log or os.path.join(ROOT, "bench", "results",
                                   f"peers-{stamp:%Y%m%dT%H%M%S}.jsonl")
    os.makedirs(os.path.dirname(os.path.abspath(log)), exist_ok=True)
    records = []
    with tempfile.TemporaryDirectory(prefix="bench-peers-cache-") as cache_root, \
            open(log, "w") as out:
        out.write(json.dumps({"sgemm_gflops": gflops, "n": n, "unavailable": unavailable})
                  + "\n")
        for round_no in range(1, args.rounds + 1):
            for workload in args.workloads:
                for peer in (p for p in peers if p.name in ready):
                    rec = run_one(peer, ready[peer.name], workload, args.quick, args.threads,
                                  cache_root, args.epochs)
                    rec["round"] = round_no
                    records.append(rec)
                    out.write(json.dumps(rec) + "\n")
                    out.flush()
                    print(f"[bench-peers] round {round_no} {workload} {peer.name}: "
                          f"{_progress(rec)}", file=sys.stderr, flush=True)
    meta = (f"Measured {stamp:%Y-%m-%d %H:%M} UTC, {args.rounds} round(s)"
            f"{' (--quick)' if args.quick else ''}"
            f"{f', {args.epochs} epoch(s) each' if args.epochs else ''}, "
            f"floor from a {n}^3 matmul, "
            f"{args.threads} threads per framework, {os.cpu_count()} cores shared with other "
            "jobs (noisy).")
    return _finish(args, records, unavailable, gflops, peers, meta)


def _rebuild(args, peers):
    """The table of earlier (possibly interrupted) runs from their logs."""
    head, records, unavailable = None, [], {}
    for path in args.from_log:
        with open(path) as f:
            first, *recs = [json.loads(line) for line in f if line.strip()]
        head = head or first
        unavailable.update(first["unavailable"])
        records += recs
    rounds = max((r.get("round", 1) for r in records), default=0)
    names = ", ".join(os.path.basename(p) for p in args.from_log)
    meta = (f"Rebuilt from {names}: {rounds} round(s), floor from a {head['n']}^3 matmul, "
            f"{os.cpu_count()} cores shared with other jobs (noisy).")
    return _finish(args, records, unavailable, head["sgemm_gflops"], peers, meta)


def _finish(args, records, unavailable, gflops, peers, meta):
    table = build_table(records, unavailable, gflops, [p.name for p in peers], args.workloads,
                        meta)
    write_atomic(args.table, table)
    print(table)
    return 0


def _progress(rec):
    if "error" in rec:
        return "failed: " + rec["error"]
    return f"{rec['samples_per_s']:,.0f} samples/s, acc {rec['accuracy']}"


if __name__ == "__main__":
    sys.exit(main())
