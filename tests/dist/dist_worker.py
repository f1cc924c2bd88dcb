"""A training run for tests/dist (started by mpiexec, or alone for the reference run).

``python dist_worker.py CASE OUT [--reference] [--workers N]``: trains CASE for a few steps on
the first MNIST samples and, on rank 0, writes the parameters and the logged train
metric to ``OUT`` (npz). Each rank seeds its initializer differently, so equal results
prove rank 0's parameters were broadcast. The reference run (one process, batch N x B)
reads, at step t, exactly the samples the N ranks read at step t.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import numpy as np

import symgraph as sg

BATCH = 32
STEPS = 6
HIDDEN = 64


def mnist(n):
    images, labels = sg.datasets.load_mnist(kind="train")
    return images[:n].reshape(n, -1).astype(np.float32) / 255, labels[:n].astype(np.float32)


def interleaved(x, y, workers):
    """The single process's order: step t holds every part's batch t (NDArrayIter parts
    are contiguous slices)."""
    per = len(x) // workers
    order = [p * per + t * BATCH + i for t in range(per // BATCH)
             for p in range(workers) for i in range(BATCH)]
    return x[order], y[order]


def mlp(hidden=HIDDEN):
    data = sg.sym.var("data")
    net = sg.sym.FullyConnected(data, num_hidden=hidden, name="fc1")
    net = sg.sym.Activation(net, act_type="relu", name="relu1")
    net = sg.sym.FullyConnected(net, num_hidden=10, name="fc2")
    return sg.sym.SoftmaxOutput(net, name="softmax")


def lenet():
    """A small LeNet (conv-pool-conv-pool-fc-fc), so a test step stays cheap."""
    net = sg.sym.var("data")
    for i, channels in enumerate((4, 8)):
        net = sg.sym.Convolution(net, kernel=(5, 5), num_filter=channels, name=f"conv{i}")
        net = sg.sym.Activation(net, act_type="tanh", name=f"tanh{i}")
        net = sg.sym.Pooling(net, pool_type="max", kernel=(2, 2), stride=(2, 2),
                             name=f"pool{i}")
    net = sg.sym.FullyConnected(sg.sym.Flatten(net), num_hidden=32, name="fc1")
    net = sg.sym.Activation(net, act_type="relu", name="relu1")
    net = sg.sym.FullyConnected(net, num_hidden=10, name="fc2")
    return sg.sym.SoftmaxOutput(net, name="softmax")


def gluon_lenet(nn):
    """lenet() in Gluon layers, every shape given (no deferred initialization)."""
    net = nn.HybridSequential()
    net.add(nn.Conv2D(4, 5, activation="tanh", in_channels=1), nn.MaxPool2D(2, 2),
            nn.Conv2D(8, 5, activation="tanh", in_channels=4), nn.MaxPool2D(2, 2),
            nn.Flatten(), nn.Dense(32, activation="relu", in_units=8 * 4 * 4),
            nn.Dense(10, in_units=32))
    return net


def run_module(args, rank_seed):
    x, y = mnist(BATCH * STEPS * args.workers)
    if args.net == "lenet":
        x = x.reshape(-1, 1, 28, 28)
    kv = None if args.reference else sg.kv.create("dist_sync")
    if args.reference:
        x, y = interleaved(x, y, args.workers)
        it = sg.io.NDArrayIter(x, y, BATCH * args.workers)
    else:
        it = sg.io.NDArrayIter(x, y, BATCH, num_parts=kv.num_workers, part_index=kv.rank)
    hidden = HIDDEN + (1 if args.fault == "mismatch" and kv and kv.rank == 1 else 0)
    mod = sg.mod.Module(lenet() if args.net == "lenet" else mlp(hidden), context=sg.cpu())
    np.random.seed(rank_seed)
    sg.random.seed(rank_seed)
    callback = _fault_callback(args, kv)
    optimizer_params = ({"learning_rate": 0.01} if args.optimizer == "adam" else
                        {"learning_rate": 0.1, "momentum": 0.9})
    mod.fit(it, num_epoch=1, kvstore=kv or "local", optimizer=args.optimizer,
            optimizer_params=optimizer_params,
            initializer=sg.init.Xavier(), batch_end_callback=callback,
            epoch_end_callback=sg.callback.do_checkpoint(args.out + "-ckpt")
            if args.checkpoint else None)
    arg, aux = mod.get_params()
    acc = mod.history[-1]["train"]["accuracy"]
    return {k: v.asnumpy() for k, v in arg.items()}, acc, kv


def run_gluon(args, rank_seed):
    from symgraph import autograd, gluon
    from symgraph.gluon import nn

    x, y = mnist(BATCH * STEPS * args.workers)
    if args.net == "lenet":
        x = x.reshape(-1, 1, 28, 28)
    if args.reference:
        x, y = interleaved(x, y, args.workers)
        batch, rank, workers = BATCH * args.workers, 0, 1
        kvstore = "device"
    else:
        kv = sg.kv.create("dist_sync")
        batch, rank, workers, kvstore = BATCH, kv.rank, kv.num_workers, kv
    per = len(x) // workers
    x, y = x[rank * per:(rank + 1) * per], y[rank * per:(rank + 1) * per]
    net = gluon_lenet(nn) if args.net == "lenet" else nn.HybridSequential()
    if args.net != "lenet":
        net.add(nn.Dense(HIDDEN, activation="relu", in_units=784),
                nn.Dense(10, in_units=HIDDEN))
    sg.random.seed(rank_seed)
    np.random.seed(rank_seed)
    net.initialize(sg.init.Xavier())
    if args.hvd:  # Horovod's spelling: broadcast_parameters + DistributedTrainer
        import symgraph.distributed as hvd

        hvd.init()
        hvd.broadcast_parameters(net.collect_params(), root_rank=0)
        trainer = hvd.DistributedTrainer(net.collect_params(), "sgd",
                                         {"learning_rate": 0.1, "momentum": 0.9})
    elif args.optimizer == "adam":
        trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.01},
                                kvstore=kvstore)
    else:
        trainer = gluon.Trainer(net.collect_params(), "sgd",
                                {"learning_rate": 0.1, "momentum": 0.9}, kvstore=kvstore)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    for t in range(len(x) // batch):
        data = sg.nd.array(x[t * batch:(t + 1) * batch])
        label = sg.nd.array(y[t * batch:(t + 1) * batch])
        with autograd.record():
            loss = loss_fn(net(data), label)
        loss.backward()
        trainer.step(batch)
    params = {k: v.data().asnumpy() for k, v in net.collect_params().items()}
    return params, float("nan"), None


def run_horovod(args, rank_seed):
    """Module.fit with hvd.DistributedOptimizer and hvd.broadcast_parameters."""
    import symgraph.distributed as hvd

    hvd.init()
    x, y = mnist(BATCH * STEPS * args.workers)
    it = sg.io.NDArrayIter(x, y, BATCH, num_parts=hvd.size(), part_index=hvd.rank())
    mod = sg.mod.Module(mlp(), context=sg.cpu())
    mod.bind(it.provide_data, it.provide_label)
    np.random.seed(rank_seed)
    mod.init_params(sg.init.Xavier())
    arg, aux = mod.get_params()
    hvd.broadcast_parameters(arg)
    mod.set_params(arg, aux)
    opt = sg.optimizer.create("sgd", learning_rate=0.1, momentum=0.9,
                              rescale_grad=1.0 / BATCH)
    mod.fit(it, num_epoch=1, kvstore=None, optimizer=hvd.DistributedOptimizer(opt))
    total = hvd.allreduce(sg.nd.array(np.full(3, hvd.rank() + 1.0)), average=False)
    assert np.allclose(total.asnumpy(), sum(range(1, hvd.size() + 1))), total
    arg, _ = mod.get_params()
    return {k: v.asnumpy() for k, v in arg.items()}, mod.history[-1]["train"]["accuracy"], None


def _fault_callback(args, kv):
    if not args.fault or kv is None or kv.rank != 1:
        return None

    def callback(param):
        if param.nbatch != 2:
            return
        if args.fault == "raise":
            raise ValueError("injected failure in batch 2")
        if args.fault == "die":
            os._exit(3)
        if args.fault == "hang":
            time.sleep(600)
    return callback


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=["module", "gluon", "horovod"])
    parser.add_argument("out")
    parser.add_argument("--reference", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fault", default="")
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--checkpoint", action="store_true")
    parser.add_argument("--hvd", action="store_true")
    parser.add_argument("--net", choices=["mlp", "lenet"], default="mlp")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(levelname)s:%(message)s")
    rank = int(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")))
    run = {"module": run_module, "gluon": run_gluon, "horovod": run_horovod}[args.case]
    params, acc, kv = run(args, 0 if args.reference else rank)
    from runtime.kvstore.comm import current_rank

    if current_rank() == 0:
        comm = getattr(kv, "comm", None)
        # steps whose allreduce overlapped backward and polls of the MPI progress thread
        # (runtime/overlap.py; -1: no communicator)
        counters = {f"__{name}": np.int64(getattr(comm, name, -1))
                    for name in ("overlapped_steps", "progress_polls")}
        np.savez(args.out, accuracy=np.float64(acc), **params, **counters)
    print(f"rank {current_rank()} done", flush=True)


if __name__ == "__main__":
    main()
