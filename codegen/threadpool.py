"""A persistent pool of native worker threads that generated phases hand loop chunks to.

Why native: a Python thread per call (or a queue hand-off) costs tens of microseconds and
the GIL; a LeNet step has a dozen kernels of 50 us - 5 ms. Here the workers are pthreads
created by native code that wait on one 32-bit generation word: they spin a while (a
kernel follows the last one within microseconds during a step), then sleep in a futex,
so an idle pool burns no core. A phase calls ``symgraph_parallel(task, ctx, chunks)``:
the caller and the workers take chunk numbers from one atomic ticket (generation in the
high half, next chunk in the low half, so a late worker can never take a chunk of the
next job) and run ``task(ctx, chunk, chunks)``; the caller returns once every chunk is
done. Chunks are fixed at compile time (see :func:`compile_threads`), so the result
never depends on how many workers exist or which one ran a chunk: with no workers, or
while another thread owns the pool, the caller runs every chunk itself, in order.

The pool is process-wide, as OpenMP's and MKL's are; its state lives in this one module
(generated programs keep none). ``SYMGRAPH_NUM_THREADS`` or :func:`set_num_threads` set
the count; the pool stops at interpreter exit and is forgotten in a forked child, which
then runs serially until it sets a count again.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import platform
import threading

import llvmlite.binding as llvm

from symgraph.errors import SymgraphError

MAX_THREADS = 64
#: pause-instruction spins before a waiting worker sleeps (about 50-200 us)
SPIN = 4000
_FUTEX_SYSCALL = {"x86_64": 202, "aarch64": 98}
_PAUSE = {"x86_64": "call void @llvm.x86.sse2.pause()"}
ENTRY = "symgraph_parallel"

_IR = r"""
@gen = internal global i32 0, align 64
@ticket = internal global i64 0, align 64
@done = internal global i64 0, align 64
@busy = internal global i32 0, align 64
@sleepers = internal global i32 0, align 64
@stop = internal global i32 0, align 4
@workers = internal global i32 0, align 4
@task = internal global ptr null, align 8
@ctx = internal global ptr null, align 8
@chunks = internal global i64 0, align 8
@tids = internal global [MAXT x i64] zeroinitializer, align 8

declare i64 @syscall(i64, ...)
declare i32 @pthread_create(ptr, ptr, ptr, ptr)
declare i32 @pthread_join(i64, ptr)
declare i32 @sched_yield()
PAUSE_DECL

define internal void @relax() {
  PAUSE_CALL
  ret void
}

define internal void @futex(ptr %addr, i32 %op, i32 %val) {
  %o = zext i32 %op to i64
  %v = zext i32 %val to i64
  %r = call i64 (i64, ...) @syscall(i64 FUTEX, ptr %addr, i64 %o, i64 %v, ptr null)
  ret void
}

; take chunks of generation %g until none is left; returns after the last one taken
define internal void @drain(i32 %g) {
entry:
  %gw = zext i32 %g to i64
  %hi = shl i64 %gw, 32
  br label %grab
grab:
  %cur = load atomic i64, ptr @ticket seq_cst, align 8
  %cg = lshr i64 %cur, 32
  %same = icmp eq i64 %cg, %gw
  %n = and i64 %cur, 4294967295
  %total = load atomic i64, ptr @chunks seq_cst, align 8
  %left = icmp ult i64 %n, %total
  %ok = and i1 %same, %left
  br i1 %ok, label %try, label %out
try:
  %next = add i64 %cur, 1
  %pair = cmpxchg ptr @ticket, i64 %cur, i64 %next seq_cst seq_cst
  %won = extractvalue { i64, i1 } %pair, 1
  br i1 %won, label %run, label %grab
run:
  %fn = load ptr, ptr @task, align 8
  %c = load ptr, ptr @ctx, align 8
  call void %fn(ptr %c, i64 %n, i64 %total)
  %d = atomicrmw add ptr @done, i64 1 seq_cst
  br label %grab
out:
  ret void
}

define internal ptr @worker(ptr %unused) {
entry:
  br label %wait
wait:
  %seen = phi i32 [ 0, %entry ], [ %now, %work ], [ %seen, %slept ]
  br label %spin
spin:
  %i = phi i32 [ 0, %wait ], [ %i1, %again ]
  %g = load atomic i32, ptr @gen seq_cst, align 4
  %changed = icmp ne i32 %g, %seen
  br i1 %changed, label %woke, label %again
again:
  call void @relax()
  %i1 = add i32 %i, 1
  %more = icmp ult i32 %i1, SPIN
  br i1 %more, label %spin, label %sleep
sleep:
  %s0 = atomicrmw add ptr @sleepers, i32 1 seq_cst
  call void @futex(ptr @gen, i32 128, i32 %seen)
  %s1 = atomicrmw sub ptr @sleepers, i32 1 seq_cst
  br label %slept
slept:
  br label %wait
woke:
  %now = load atomic i32, ptr @gen seq_cst, align 4
  %halt = load atomic i32, ptr @stop seq_cst, align 4
  %quit = icmp ne i32 %halt, 0
  br i1 %quit, label %exit, label %work
work:
  call void @drain(i32 %now)
  br label %wait
exit:
  ret ptr null
}

; generation: the next one, published to the ticket and the futex word
define internal i32 @publish() {
  %g0 = load atomic i32, ptr @gen seq_cst, align 4
  %g = add i32 %g0, 1
  %gw = zext i32 %g to i64
  %t = shl i64 %gw, 32
  store atomic i64 %t, ptr @ticket seq_cst, align 8
  store atomic i32 %g, ptr @gen seq_cst, align 4
  %s = load atomic i32, ptr @sleepers seq_cst, align 4
  %any = icmp ne i32 %s, 0
  br i1 %any, label %wake, label %done
wake:
  call void @futex(ptr @gen, i32 129, i32 2147483647)
  br label %done
done:
  ret i32 %g
}

define void @symgraph_parallel(ptr %fn, ptr %c, i64 %n) {
entry:
  %nw = load atomic i32, ptr @workers seq_cst, align 4
  %alone = icmp eq i32 %nw, 0
  %one = icmp ule i64 %n, 1
  %serial0 = or i1 %alone, %one
  br i1 %serial0, label %serial, label %claim
claim:
  %pair = cmpxchg ptr @busy, i32 0, i32 1 seq_cst seq_cst
  %got = extractvalue { i32, i1 } %pair, 1
  br i1 %got, label %share, label %serial
serial:
  %k = phi i64 [ 0, %entry ], [ 0, %claim ], [ %k1, %serial ]
  call void %fn(ptr %c, i64 %k, i64 %n)
  %k1 = add i64 %k, 1
  %fin = icmp uge i64 %k1, %n
  br i1 %fin, label %out, label %serial
share:
  store ptr %fn, ptr @task, align 8
  store ptr %c, ptr @ctx, align 8
  store atomic i64 %n, ptr @chunks seq_cst, align 8
  store atomic i64 0, ptr @done seq_cst, align 8
  %g = call i32 @publish()
  call void @drain(i32 %g)
  br label %wait
wait:
  %j = phi i32 [ 0, %share ], [ %j1, %pause ], [ 0, %yield ]
  %d = load atomic i64, ptr @done seq_cst, align 8
  %all = icmp uge i64 %d, %n
  br i1 %all, label %release, label %pause
pause:
  call void @relax()
  %j1 = add i32 %j, 1
  %long = icmp ugt i32 %j1, SPIN
  br i1 %long, label %yield, label %wait
yield:
  %y = call i32 @sched_yield()
  br label %wait
release:
  store atomic i32 0, ptr @busy seq_cst, align 4
  br label %out
out:
  ret void
}

; start n workers (the caller checked that none run); returns how many started
define i32 @symgraph_pool_start(i32 %n) {
entry:
  store atomic i64 0, ptr @chunks seq_cst, align 8
  store atomic i32 0, ptr @stop seq_cst, align 4
  br label %loop
loop:
  %i = phi i32 [ 0, %entry ], [ %i1, %next ]
  %fin = icmp uge i32 %i, %n
  br i1 %fin, label %out, label %make
make:
  %slot = getelementptr inbounds [MAXT x i64], ptr @tids, i32 0, i32 %i
  %r = call i32 @pthread_create(ptr %slot, ptr null, ptr @worker, ptr null)
  %bad = icmp ne i32 %r, 0
  br i1 %bad, label %out, label %next
next:
  %i1 = add i32 %i, 1
  br label %loop
out:
  store atomic i32 %i, ptr @workers seq_cst, align 4
  ret i32 %i
}

; stop and join every worker, once no job runs (a job owns @busy until its last chunk)
define void @symgraph_pool_stop() {
entry:
  br label %claim
claim:
  %pair = cmpxchg ptr @busy, i32 0, i32 1 seq_cst seq_cst
  %got = extractvalue { i32, i1 } %pair, 1
  br i1 %got, label %halt, label %busywait
busywait:
  %y = call i32 @sched_yield()
  br label %claim
halt:
  %n = load atomic i32, ptr @workers seq_cst, align 4
  store atomic i32 0, ptr @workers seq_cst, align 4
  store atomic i32 1, ptr @stop seq_cst, align 4
  ; no chunks in the stop generation: a worker started later sees it as a job
  store atomic i64 0, ptr @chunks seq_cst, align 8
  %g = call i32 @publish()
  call void @futex(ptr @gen, i32 129, i32 2147483647)
  br label %loop
loop:
  %i = phi i32 [ 0, %halt ], [ %i1, %join ]
  %fin = icmp uge i32 %i, %n
  br i1 %fin, label %out, label %join
join:
  %slot = getelementptr inbounds [MAXT x i64], ptr @tids, i32 0, i32 %i
  %tid = load i64, ptr %slot, align 8
  %r = call i32 @pthread_join(i64 %tid, ptr null)
  %i1 = add i32 %i, 1
  br label %loop
out:
  store atomic i32 0, ptr @busy seq_cst, align 4
  ret void
}

; in a forked child: the workers do not exist there, so nothing may wait for them
define void @symgraph_pool_forget() {
  store atomic i32 0, ptr @workers seq_cst, align 4
  store atomic i32 0, ptr @busy seq_cst, align 4
  ret void
}
"""


def _source() -> str:
    machine = platform.machine()
    if machine not in _FUTEX_SYSCALL or platform.system() != "Linux":
        return ""
    pause = _PAUSE.get(machine)
    text = _IR.replace("MAXT", str(MAX_THREADS)).replace("SPIN", str(SPIN))
    text = text.replace("FUTEX", str(_FUTEX_SYSCALL[machine]))
    text = text.replace("PAUSE_DECL", "declare void @llvm.x86.sse2.pause()" if pause else "")
    return text.replace("PAUSE_CALL", pause or "")


class _Pool:
    """The Python side of the one native pool: the library, the count, the lifecycle."""

    def __init__(self):
        self.lock = threading.Lock()
        self.library = None
        self.fns = None
        self.workers = 0
        self.threads = None  # the requested count (None: not set yet)

    def load(self):
        """Compile (or load from the disk cache) the pool module and publish its entry
        point, so that phases compiled afterwards resolve ``symgraph_parallel``."""
        if self.library is not None:
            return
        from codegen import jit

        source = _source()
        self.threads_supported = bool(source)
        if not source:  # no futex here: the entry point runs every chunk in the caller
            source = _SERIAL_IR
        libc = ctypes.CDLL(None)
        for name in ("syscall", "pthread_create", "pthread_join", "sched_yield"):
            llvm.add_symbol(name, ctypes.cast(getattr(libc, name), ctypes.c_void_p).value)
        names = [ENTRY, "symgraph_pool_start", "symgraph_pool_stop", "symgraph_pool_forget"]
        counted = dict(jit.STATS)  # the pool's one-off module is not a program compile
        library = jit.compile_ir(source, names, "threadpool")
        jit.STATS.update(counted)
        llvm.add_symbol(ENTRY, library.addresses[ENTRY])
        proto = ctypes.CFUNCTYPE
        self.fns = {"start": proto(ctypes.c_int32, ctypes.c_int32)(
                        library.addresses["symgraph_pool_start"]),
                    "stop": proto(None)(library.addresses["symgraph_pool_stop"]),
                    "forget": proto(None)(library.addresses["symgraph_pool_forget"])}
        self.library = library

    def resize(self, threads: int) -> None:
        with self.lock:
            self.load()
            self.threads = threads
            want = threads - 1 if self.threads_supported else 0
            if want == self.workers:
                return
            if self.workers:
                self.fns["stop"]()
                self.workers = 0
            if want:
                self.workers = int(self.fns["start"](want))

    def shutdown(self) -> None:
        with self.lock:
            if self.workers:
                self.fns["stop"]()
                self.workers = 0

    def forget(self) -> None:
        """After fork: the child has the parent's memory but none of its threads."""
        if self.fns is not None and self.workers:
            self.fns["forget"]()
        self.workers = 0
        self.lock = threading.Lock()


_SERIAL_IR = r"""
define void @symgraph_parallel(ptr %fn, ptr %c, i64 %n) {
entry:
  br label %loop
loop:
  %k = phi i64 [ 0, %entry ], [ %k1, %loop ]
  call void %fn(ptr %c, i64 %k, i64 %n)
  %k1 = add i64 %k, 1
  %fin = icmp uge i64 %k1, %n
  br i1 %fin, label %out, label %loop
out:
  ret void
}
define i32 @symgraph_pool_start(i32 %n) {
  ret i32 0
}
define void @symgraph_pool_stop() {
  ret void
}
define void @symgraph_pool_forget() {
  ret void
}
"""

POOL = _Pool()
atexit.register(POOL.shutdown)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=POOL.forget)

_LOCAL = threading.local()


def default_threads() -> int:
    """``SYMGRAPH_NUM_THREADS``, else every core this process may run on."""
    raw = os.environ.get("SYMGRAPH_NUM_THREADS", "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if not 1 <= value <= MAX_THREADS:
            raise SymgraphError(f"SYMGRAPH_NUM_THREADS={raw!r}: need an integer from 1 to "
                                f"{MAX_THREADS}")
        return value
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_THREADS))


def set_num_threads(threads: int) -> None:
    """Compute threads of this process from now on (``mx``'s engine setting; programs
    compiled later split their large kernels into this many chunks)."""
    if isinstance(threads, bool) or not isinstance(threads, int) \
            or not 1 <= threads <= MAX_THREADS:
        raise SymgraphError(f"set_num_threads({threads!r}): need an integer from 1 to "
                            f"{MAX_THREADS}")
    POOL.resize(threads)


def num_threads() -> int:
    """The process's compute thread count (the pool's workers plus the caller)."""
    if POOL.threads is None:
        POOL.resize(default_threads())
    return POOL.threads


class compiling_for:
    """Within this block, programs compile for ``threads`` chunks on the calling thread
    (1 for each executor of a context list, which owns a core already)."""

    def __init__(self, threads: int):
        self.threads = threads

    def __enter__(self):
        self.saved = getattr(_LOCAL, "threads", None)
        _LOCAL.threads = self.threads
        return self

    def __exit__(self, *exc):
        _LOCAL.threads = self.saved


def compile_threads() -> int:
    """How many chunks programs compiled now split their large kernels into."""
    local = getattr(_LOCAL, "threads", None)
    return local if local is not None else num_threads()


def ensure_loaded() -> None:
    """Publish ``symgraph_parallel`` before an object that calls it is linked."""
    if POOL.library is None:
        num_threads()
