"""Executors of one graph share one compiled library; ctypes releases the GIL, so two
threads really run the native code at once. Nothing the generated code writes may be
shared between them (a module-level pack panel was): results must be bit-identical to
running the same work one after the other."""

import threading

import numpy as np

import symgraph as sg
from runtime.datasets import load_letter_recognition

ROUNDS = 150
EPOCHS = 3
TRAIN_HIDDEN = (256, 256)  # native time dominates each step, so the threads overlap


def mlp(hidden=(96, 64), classes=26):
    x = sg.sym.Variable("data")
    for i, units in enumerate(hidden):
        x = sg.sym.FullyConnected(x, name=f"fc{i}", num_hidden=units)
        x = sg.sym.Activation(x, name=f"relu{i}", act_type="relu")
    x = sg.sym.FullyConnected(x, name="out", num_hidden=classes)
    return sg.sym.SoftmaxOutput(x, name="softmax")


def _executor(net, seed, batch=64, features=16):
    exe = net.simple_bind(sg.cpu(), data=(batch, features))
    rng = np.random.default_rng(seed)
    for name, arr in exe.arg_dict.items():
        if name not in ("data", "softmax_label"):
            arr[:] = rng.standard_normal(arr.shape) * 0.3
    return exe


def _forwards(exe, inputs):
    """Every forward's outputs, copied (the views are overwritten by the next call)."""
    outs = []
    for x in inputs:
        exe.arg_dict["data"][:] = x
        exe.forward(is_train=False)
        outs.append(exe.outputs[0].copy())
    return outs


def _run_in_threads(jobs):
    results = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def work(i):
        barrier.wait()
        results[i] = jobs[i]()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_two_threads_forward_bit_identical_to_sequential():
    net = mlp()
    X, _ = load_letter_recognition()
    inputs = [[X[(64 * (2 * r + j)) % 19000:][:64] for r in range(ROUNDS)] for j in (0, 1)]
    first = [_executor(net, s) for s in (1, 2)]
    assert first[0].compiled is first[1].compiled  # one library for both
    sequential = [_forwards(exe, xs) for exe, xs in zip(first, inputs)]
    again = [_executor(net, s) for s in (1, 2)]
    threaded = _run_in_threads([lambda e=e, xs=xs: _forwards(e, xs)
                                for e, xs in zip(again, inputs)])
    for seq, par in zip(sequential, threaded):
        wrong = sum(not np.array_equal(a, b) for a, b in zip(seq, par))
        assert wrong == 0, f"{wrong} of {ROUNDS} forwards differ under threads"


def test_two_modules_training_in_threads_match_sequential():
    X, y = load_letter_recognition()
    parts = [(X[:2000], y[:2000]), (X[2000:4000], y[2000:4000])]
    params = [_init_params(s) for s in (3, 4)]
    sequential = [_train_fixed(p, *d) for p, d in zip(params, parts)]
    threaded = _run_in_threads([lambda p=p, d=d: _train_fixed(p, *d)
                                for p, d in zip(params, parts)])
    for seq, par in zip(sequential, threaded):
        for name in seq:
            assert np.array_equal(seq[name], par[name]), name


def _init_params(seed):
    """Initial parameters drawn up front (the project RNG is global, threads share it)."""
    exe = _executor(mlp(TRAIN_HIDDEN), seed, batch=50)
    return {n: a.copy() for n, a in exe.arg_dict.items() if n not in ("data", "softmax_label")}


def _train_fixed(init, X, y):
    mod = sg.mod.Module(mlp(TRAIN_HIDDEN), context=sg.cpu())
    it = sg.io.NDArrayIter(X, y, batch_size=50, shuffle=False)
    mod.bind(it.provide_data, it.provide_label)
    mod.init_params(arg_params=init)
    mod.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.1,
                                                           "momentum": 0.9})
    for _ in range(EPOCHS):
        it.reset()
        for batch in it:
            mod.forward_backward(batch)
            mod.update()
    return mod.get_params()[0]


def _split_kernels(monkeypatch):
    """Every kernel the partition accepts splits (even these small ones) over a pool of
    two threads."""
    from codegen import partition, threadpool

    monkeypatch.setattr(partition, "MIN_LOOP_WORK", 0)
    monkeypatch.setattr(partition, "MIN_MATMUL_WORK", 0)
    before = threadpool.num_threads()
    threadpool.set_num_threads(2)
    return before


def test_python_threads_sharing_the_kernel_pool_match_one_thread(monkeypatch):
    """Two Modules in two Python threads, both compiled for two chunks: one owns the
    pool at a time, the other runs its chunks itself; both match one-thread programs."""
    from codegen import threadpool

    X, y = load_letter_recognition()
    parts = [(X[:2000], y[:2000]), (X[2000:4000], y[2000:4000])]
    params = [_init_params(s) for s in (3, 4)]
    with threadpool.compiling_for(1):
        sequential = [_train_fixed(p, *d) for p, d in zip(params, parts)]
    before = _split_kernels(monkeypatch)
    try:
        def job(p, d):
            with threadpool.compiling_for(2):
                return _train_fixed(p, *d)
        threaded = _run_in_threads([lambda p=p, d=d: job(p, d) for p, d in zip(params, parts)])
    finally:
        threadpool.set_num_threads(before)
    for seq, par in zip(sequential, threaded):
        for name in seq:
            assert np.array_equal(seq[name], par[name]), name


def _fit_lenet(threads):
    from codegen import threadpool
    from codegen.program import call_chunks
    from runtime.cli.train import build_model

    data = sg.datasets.get_mnist()
    train = sg.io.NDArrayIter(data["train_data"][:600], data["train_label"][:600], 100,
                              shuffle=False)
    sg.random.seed(5)
    mod = sg.mod.Module(build_model("lenet"), context=sg.cpu())
    with threadpool.compiling_for(threads):
        mod.bind(train.provide_data, train.provide_label)
    mod.fit(train, num_epoch=1, optimizer="sgd", initializer=sg.init.Xavier(),
            optimizer_params={"learning_rate": 0.05, "momentum": 0.9})
    compiled = mod._bound.exe.compiled
    program = getattr(compiled, "full", lambda: compiled)().program.program
    split = sum(call_chunks(c, program.threads) > 1 for c in program.phases["forward_backward"])
    return mod.get_params()[0], split


def test_lenet_fit_on_two_threads_gives_the_parameters_of_one(monkeypatch):
    from codegen import threadpool

    one, none_split = _fit_lenet(1)
    before = threadpool.num_threads()
    threadpool.set_num_threads(2)
    try:
        two, split = _fit_lenet(2)
    finally:
        threadpool.set_num_threads(before)
    assert none_split == 0 and split >= 10  # convolutions, matmuls, tanh, pooling
    assert sorted(one) == sorted(two)
    for name in one:
        assert np.array_equal(one[name], two[name]), name
