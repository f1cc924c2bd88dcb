"""One MPI communicator with the fault rules of distributed training.

Every collective is started non-blocking and then polled, so that a rank waiting for its
peers notices (a) a peer that raised, which sends a one-line fault message on a
duplicated communicator before it exits, and (b) a timeout (``SYMGRAPH_DIST_TIMEOUT``
seconds, default 120), instead of hanging forever. A rank that dies outright is reported
by ``mpiexec`` itself, which then stops the others.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass

import numpy as np

from runtime.kvstore.errors import DistributedTimeoutError, MPIUnavailableError, PeerFailedError

_FAULT_TAG = 7177
_PING_TAG = 7178
_PONG_TAG = 7179
_DEFAULT_TIMEOUT = 120.0
#: Seconds a failing rank lingers after telling its peers, so they read the message
#: before ``mpiexec`` stops everyone.
FAULT_GRACE = 1.5
_LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE",
                  "MPI_LOCALNRANKS", "HYDI_CONTROL_FD")

_WORLD = None
_LOCAL_SIZE_VARS = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "PMIX_LOCAL_SIZE")
_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "SYMGRAPH_NUM_THREADS")


def _env_count(names, default=1) -> int:
    values = [os.environ.get(n, "") for n in names]
    counts = [int(v) for v in values if v.isdigit() and int(v) > 0]
    return max(counts) if counts else default


def spare_core() -> bool:
    """True when this machine has a core beyond what its ranks' compute threads use
    (``symgraph launch`` sets the thread variables; MPI launchers the local size)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    ranks = int(next((os.environ[v] for v in _LOCAL_SIZE_VARS if os.environ.get(v, "")
                      .isdigit()), "1"))
    return cores > ranks * _env_count(_THREAD_VARS)


@dataclass(frozen=True)
class StepTiming:
    """Seconds of one training step (forward, backward and its gradient allreduce)."""

    compute: float  # running forward and backward (with the overlap: every sub-phase)
    blocked: float  # after backward, waiting for the allreduce to finish
    span: float  # from the first allreduce's start to the last one's end


def import_mpi():
    """``mpi4py.MPI``, or an error that says what to install."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise MPIUnavailableError(
            "distributed training needs mpi4py and an MPI library: "
            "pip install 'symgraph-compiler[dist]' (or: pip install mpi4py mpich)"
            f" [{exc}]") from None
    return MPI


def launched_by_mpi() -> bool:
    """True when this process was started by ``mpiexec``/``mpirun`` (any MPI)."""
    return any(v in os.environ for v in _LAUNCHER_VARS)


def default_timeout() -> float:
    raw = os.environ.get("SYMGRAPH_DIST_TIMEOUT", "")
    try:
        return float(raw) if raw else _DEFAULT_TIMEOUT
    except ValueError:
        return _DEFAULT_TIMEOUT


class Comm:
    """COMM_WORLD with polled collectives; one per process (see :func:`world`)."""

    def __init__(self, timeout=None):
        MPI = import_mpi()
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.faults = self.comm.Dup()
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.timeout = default_timeout() if timeout is None else float(timeout)
        self.calls = 0
        self.reduce_seconds = 0.0  # time spent waiting on allreduces
        self.overlapped_steps = 0  # training steps whose allreduce overlapped backward
        self.step_timings = deque(maxlen=10000)  # StepTiming of the last training steps
        self._progress = None
        _install_excepthook(self)

    # ---- waiting ---------------------------------------------------------------------------
    def wait(self, request, what):
        """Poll ``request`` until it completes, a peer reports a fault, or time runs out."""
        self.calls += 1
        deadline = time.monotonic() + self.timeout
        spins = 0
        while not self._test(request, what):
            self.check_faults()
            if time.monotonic() > deadline:
                missing = self.unresponsive_ranks()
                raise DistributedTimeoutError(
                    f"rank {self.rank}: {what} (collective #{self.calls}) did not complete "
                    f"within {self.timeout:g} s; rank(s) {missing} do not answer (stuck or "
                    "dead). Set SYMGRAPH_DIST_TIMEOUT to wait longer.")
            spins += 1
            if spins > 200:
                time.sleep(0.0002)

    def _test(self, request, what):
        try:
            return request.Test()
        except self.MPI.Exception as exc:  # a peer's process is gone (MPI noticed first)
            self.check_faults()
            raise PeerFailedError(f"rank {self.rank}: {what} failed because rank(s) "
                                  f"{self.unresponsive_ranks()} are gone: {exc}") from None

    def unresponsive_ranks(self, wait=None) -> list:
        """Ranks that do not answer a ping within ``wait`` seconds. Live ranks answer
        while they wait in a collective (see :meth:`check_faults`)."""
        MPI = self.MPI
        wait = min(FAULT_GRACE, self.timeout) if wait is None else wait
        others = [r for r in range(self.size) if r != self.rank]
        token = bytearray(b"?")
        sends = [self.faults.Isend([token, MPI.BYTE], dest=r, tag=_PING_TAG) for r in others]
        answered = set()
        deadline = time.monotonic() + wait
        status = MPI.Status()
        while len(answered) < len(others) and time.monotonic() < deadline:
            self._answer_pings()
            if self.faults.Iprobe(source=MPI.ANY_SOURCE, tag=_PONG_TAG, status=status):
                reply = bytearray(1)
                self.faults.Recv([reply, MPI.BYTE], source=status.Get_source(), tag=_PONG_TAG)
                answered.add(status.Get_source())
            else:
                time.sleep(0.005)
        for request in sends:
            if not request.Test():
                request.Cancel()
        return [r for r in others if r not in answered]

    def _answer_pings(self):
        MPI = self.MPI
        status = MPI.Status()
        while self.faults.Iprobe(source=MPI.ANY_SOURCE, tag=_PING_TAG, status=status):
            token = bytearray(1)
            self.faults.Recv([token, MPI.BYTE], source=status.Get_source(), tag=_PING_TAG)
            self.faults.Isend([bytearray(b"!"), MPI.BYTE], dest=status.Get_source(),
                              tag=_PONG_TAG)

    def check_faults(self):
        """Raise if a peer announced a failure; answer peers asking who is alive."""
        MPI = self.MPI
        self._answer_pings()
        status = MPI.Status()
        if self.faults.Iprobe(source=MPI.ANY_SOURCE, tag=_FAULT_TAG, status=status):
            source = status.Get_source()
            buf = bytearray(status.Get_count(MPI.BYTE))
            self.faults.Recv([buf, MPI.BYTE], source=source, tag=_FAULT_TAG)
            raise PeerFailedError(f"rank {source} failed, so rank {self.rank} stops: "
                                  f"{buf.decode('utf-8', 'replace')}")

    # ---- collectives -----------------------------------------------------------------------
    def allreduce_(self, array: np.ndarray, what="allreduce"):
        """Sum ``array`` (C-contiguous) over all ranks, in place."""
        tic = time.perf_counter()
        self.wait(self.comm.Iallreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM), what)
        self.reduce_seconds += time.perf_counter() - tic
        return array

    def start_allreduce_(self, array: np.ndarray):
        """Start summing ``array`` (C-contiguous) over all ranks in place; the request
        goes to :meth:`wait_all` (the array must not be touched until then)."""
        return self.comm.Iallreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM)

    def wait_all(self, requests, what="gradient allreduce"):
        """Wait for every request of :meth:`start_allreduce_` (polled, as :meth:`wait`)."""
        tic = time.perf_counter()
        for request in requests:
            self.wait(request, what)
        self.reduce_seconds += time.perf_counter() - tic

    def progress_thread(self, interval):
        """This communicator's :class:`Progress` (started on first use)."""
        if self._progress is None:
            self._progress = Progress(interval)
        return self._progress

    @property
    def progress_polls(self) -> int:
        """How many times the progress thread polled started requests (0: never ran)."""
        return 0 if self._progress is None else self._progress.polls

    def bcast_(self, array: np.ndarray, root=0, what="broadcast"):
        self.wait(self.comm.Ibcast(array, root=root), what)
        return array

    def allgather_bytes(self, data: bytes, what="allgather") -> list:
        """Every rank's ``data`` (fixed-size: all ranks must pass the same length)."""
        send = np.frombuffer(data, dtype=np.uint8).copy()
        recv = np.empty(self.size * send.size, dtype=np.uint8)
        self.wait(self.comm.Iallgather(send, recv), what)
        return [recv[i * send.size:(i + 1) * send.size].tobytes() for i in range(self.size)]

    def allgather_text(self, text: str, what="allgather") -> list:
        """Every rank's string (lengths exchanged first)."""
        data = text.encode()
        lengths = self.allgather_bytes(np.int64(len(data)).tobytes(), what)
        width = max(int(np.frombuffer(b, np.int64)[0]) for b in lengths)
        padded = self.allgather_bytes(data.ljust(width, b"\0"), what)
        return [p.rstrip(b"\0").decode() for p in padded]

    def barrier(self):
        self.wait(self.comm.Ibarrier(), "barrier")

    # ---- faults ----------------------------------------------------------------------------
    def announce_failure(self, message: str):
        """Tell every other rank this one failed (best effort, never blocks for long)."""
        data = bytearray(f"{message}".encode()[:4000])
        requests = [self.faults.Isend([data, self.MPI.BYTE], dest=r, tag=_FAULT_TAG)
                    for r in range(self.size) if r != self.rank]
        deadline = time.monotonic() + FAULT_GRACE
        while requests and time.monotonic() < deadline:
            requests = [q for q in requests if not q.Test()]
            time.sleep(0.01)


class Progress:
    """Calls ``MPI_Test`` on the started requests every ``interval`` seconds from a
    background thread while native code runs (a ctypes call releases the GIL).

    MPICH advances a non-blocking collective only inside MPI calls: without this, a piece
    of the gradient started during backward moves mostly at the final wait. The thread
    sleeps between polls (MPICH's own ``MPICH_ASYNC_PROGRESS`` thread spins, taking a
    core from the ranks). Every MPI call on the requests is made under one lock, so no
    request is used by two threads at once."""

    def __init__(self, interval):
        self.interval = interval
        self.lock = threading.Lock()
        self._requests = []
        self._active = threading.Event()
        self.polls = 0
        threading.Thread(target=self._run, daemon=True, name="symgraph-mpi-progress").start()

    def watch(self, requests):
        """Poll ``requests`` (a list the caller extends under :attr:`lock`) until
        :meth:`pause`."""
        self._requests = requests
        self._active.set()

    def pause(self):
        """Stop polling; on return the thread is out of MPI."""
        self._active.clear()
        with self.lock:
            self._requests = []

    def _run(self):
        while True:
            self._active.wait()
            with self.lock:
                try:
                    if self._requests:
                        self.polls += 1
                    for request in self._requests:
                        request.Test()
                except Exception:  # a peer is gone: the main thread's wait reports it
                    self._requests = []
                    self._active.clear()
            time.sleep(self.interval)


def _install_excepthook(comm):
    """An uncaught exception on one rank is announced to the others, then the process
    exits at once (MPI_Finalize could wait forever for a collective the peers started).
    After a timeout the job is aborted: the rank that does not answer may never exit by
    itself (``symgraph launch`` keeps survivors alive, see runtime/cli/launch.py)."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        try:
            previous(kind, value, tb)
            sys.stderr.flush()
            if isinstance(value, DistributedTimeoutError):
                sys.stdout.flush()
                time.sleep(0.5)  # let mpiexec forward the message before it kills the job
                comm.comm.Abort(1)
            if not isinstance(value, PeerFailedError):
                line = traceback.format_exception_only(kind, value)[-1].strip()
                comm.announce_failure(f"{line} (on rank {comm.rank})")
                time.sleep(FAULT_GRACE)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)

    sys.excepthook = hook


def world(timeout=None) -> Comm:
    """The process's one :class:`Comm` (MPI is initialized on first use)."""
    global _WORLD
    if _WORLD is None:
        _WORLD = Comm(timeout)
    elif timeout is not None:
        _WORLD.timeout = float(timeout)
    return _WORLD


def current_rank() -> int:
    """This process's rank if distributed training started, else 0 (for 'rank 0 only')."""
    return _WORLD.rank if _WORLD is not None else 0
