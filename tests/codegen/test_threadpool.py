"""The native worker pool: every chunk runs exactly once, on more than one thread, the
pool survives resizing and forking, and bad settings are errors."""

from __future__ import annotations

import ctypes
import multiprocessing
import os

import llvmlite.binding as llvm
import pytest

from codegen import jit, threadpool
from symgraph.errors import SymgraphError

pytestmark = pytest.mark.jit

# chunk k adds 1 to counts[k] and stores the running thread's id in ids[k]; each chunk
# also spins a while so that a second thread has time to take chunks
_TASKS = r"""
declare void @symgraph_parallel(ptr, ptr, i64)
declare i64 @pthread_self()
define internal void @task(ptr %c, i64 %k, i64 %n) {
entry:
  %slot = alloca i64
  br label %l
l:
  %i = phi i64 [0, %entry], [%i1, %l]
  store volatile i64 %i, ptr %slot
  %i1 = add i64 %i, 1
  %f = icmp ult i64 %i1, 20000
  br i1 %f, label %l, label %d
d:
  %counts = load ptr, ptr %c
  %idsp = getelementptr inbounds ptr, ptr %c, i64 1
  %ids = load ptr, ptr %idsp
  %p = getelementptr inbounds i64, ptr %counts, i64 %k
  %v = load i64, ptr %p
  %v1 = add i64 %v, 1
  store i64 %v1, ptr %p
  %q = getelementptr inbounds i64, ptr %ids, i64 %k
  %t = call i64 @pthread_self()
  store i64 %t, ptr %q
  ret void
}
define void @run(ptr %c, i64 %n) {
  call void @symgraph_parallel(ptr @task, ptr %c, i64 %n)
  ret void
}
"""


@pytest.fixture(scope="module")
def run():
    threadpool.ensure_loaded()
    libc = ctypes.CDLL(None)
    llvm.add_symbol("pthread_self", ctypes.cast(libc.pthread_self, ctypes.c_void_p).value)
    lib = jit.compile_ir(_TASKS, ["run"], "pooltest")
    fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64)(lib.addresses["run"])
    counts, ids = (ctypes.c_int64 * 16)(), (ctypes.c_int64 * 16)()
    ctx = (ctypes.c_void_p * 2)(ctypes.addressof(counts), ctypes.addressof(ids))

    def call(chunks):
        fn(ctypes.addressof(ctx), chunks)
        return counts, ids

    yield call, lib  # lib keeps the code alive


@pytest.fixture
def two_threads():
    before = threadpool.num_threads()
    threadpool.set_num_threads(2)
    yield
    threadpool.set_num_threads(before)


def test_every_chunk_runs_once_and_two_threads_share_them(run, two_threads):
    call, _ = run
    assert threadpool.POOL.workers == 1
    threads = set()
    for rep in range(1, 3001):  # the worker must get a core at least once (CI is busy)
        counts, ids = call(7)
        threads |= set(ids[:7])
        if len(threads) > 1 and rep >= 50:
            break
    assert list(counts[:7]) == [rep] * 7 and list(counts[7:]) == [0] * 9
    assert len(threads) == 2


def test_one_thread_runs_every_chunk_in_the_caller(run, two_threads):
    call, _ = run
    threadpool.set_num_threads(1)
    assert threadpool.POOL.workers == 0
    counts, ids = call(5)
    base = list(counts[:5])
    counts, ids = call(5)
    assert [c - b for c, b in zip(counts[:5], base)] == [1] * 5
    assert len(set(ids[:5])) == 1
    threadpool.set_num_threads(2)  # the pool starts again after being stopped
    assert threadpool.POOL.workers == 1
    counts, _ = call(5)
    assert [c - b for c, b in zip(counts[:5], base)] == [2] * 5


def test_workers_started_after_a_stop_run_no_stale_chunk(run, two_threads):
    """The stop generation carries no chunks: a worker started afterwards must not take
    it for a job and rerun the last task on a dead context (it once segfaulted)."""
    import time

    call, _ = run
    for _ in range(20):
        counts, _ = call(7)
        before = list(counts[:7])
        threadpool.set_num_threads(1)
        threadpool.set_num_threads(2)
        time.sleep(0.005)
        assert list(counts[:7]) == before


def _child(call_address, ctx_address, queue):
    fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64)(call_address)
    fn(ctx_address, 3)  # the parent's workers are gone: the child runs every chunk
    queue.put(threadpool.POOL.workers)


def test_a_forked_child_runs_serially_instead_of_waiting_for_missing_workers(run, two_threads):
    call, lib = run
    counts, _ = call(3)
    queue = multiprocessing.get_context("fork").Queue()
    ctx = (ctypes.c_void_p * 2)(ctypes.addressof(counts), ctypes.addressof(counts))
    proc = multiprocessing.get_context("fork").Process(
        target=_child, args=(lib.addresses["run"], ctypes.addressof(ctx), queue))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    assert queue.get(timeout=5) == 0


@pytest.mark.parametrize("bad", [0, -1, 65, 1.5, True, "2"])
def test_bad_thread_counts_are_errors(bad):
    with pytest.raises(SymgraphError, match="set_num_threads"):
        threadpool.set_num_threads(bad)


@pytest.mark.parametrize("raw,expected", [("1", 1), (" 3 ", 3)])
def test_env_sets_the_default(monkeypatch, raw, expected):
    monkeypatch.setenv("SYMGRAPH_NUM_THREADS", raw)
    assert threadpool.default_threads() == expected


@pytest.mark.parametrize("raw", ["0", "two", "100"])
def test_bad_env_is_an_error_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv("SYMGRAPH_NUM_THREADS", raw)
    with pytest.raises(SymgraphError, match="SYMGRAPH_NUM_THREADS"):
        threadpool.default_threads()


def test_unset_env_uses_the_cores_this_process_may_run_on(monkeypatch):
    monkeypatch.delenv("SYMGRAPH_NUM_THREADS", raising=False)
    assert threadpool.default_threads() == min(len(os.sched_getaffinity(0)),
                                               threadpool.MAX_THREADS)


def test_facade_reaches_the_setting(two_threads):
    import symgraph as sg

    assert sg.get_num_threads() == sg.num_threads() == 2
    sg.set_num_threads(1)
    assert sg.num_threads() == 1


def test_compiling_for_overrides_only_this_thread(two_threads):
    with threadpool.compiling_for(1):
        assert threadpool.compile_threads() == 1
    assert threadpool.compile_threads() == 2
