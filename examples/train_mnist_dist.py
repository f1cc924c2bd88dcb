"""Data-parallel MNIST (MLP or LeNet) with Module.fit and kvstore='dist_sync'.

    symgraph launch -n 2 examples/train_mnist_dist.py --model lenet --epochs 2
    python examples/train_mnist_dist.py --kvstore local --batch-size 128   # one process

Each rank reads its shard of the training set (NDArrayIter num_parts/part_index) with
``--batch-size`` samples per step, so 2 ranks x 64 take the same steps as 1 x 128. Rank 0
logs the global train accuracy, the validation accuracy, the epoch time, the time per
step spent in the gradient allreduce and (distributed) the median step's compute time,
wait for the allreduce after backward and allreduce span (``SYMGRAPH_OVERLAP_PARTS=1``:
one allreduce after backward; default: pieces started during backward).
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np

import symgraph as sg


def mlp():
    net = sg.sym.var("data")
    net = sg.sym.Flatten(net)
    for i, width in enumerate((128, 64)):
        net = sg.sym.FullyConnected(net, num_hidden=width, name=f"fc{i + 1}")
        net = sg.sym.Activation(net, act_type="relu", name=f"relu{i + 1}")
    net = sg.sym.FullyConnected(net, num_hidden=10, name="fc3")
    return sg.sym.SoftmaxOutput(net, name="softmax")


def lenet():
    net = sg.sym.var("data")
    for i, channels in enumerate((20, 50)):
        net = sg.sym.Convolution(net, kernel=(5, 5), num_filter=channels, name=f"conv{i + 1}")
        net = sg.sym.Activation(net, act_type="tanh", name=f"tanh{i + 1}")
        net = sg.sym.Pooling(net, pool_type="max", kernel=(2, 2), stride=(2, 2),
                             name=f"pool{i + 1}")
    net = sg.sym.Flatten(net)
    net = sg.sym.FullyConnected(net, num_hidden=500, name="fc1")
    net = sg.sym.Activation(net, act_type="tanh", name="tanh3")
    net = sg.sym.FullyConnected(net, num_hidden=10, name="fc2")
    return sg.sym.SoftmaxOutput(net, name="softmax")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["mlp", "lenet"], default="mlp")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64, help="per rank")
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument("--kvstore", default="dist_sync")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--devices", type=int, default=1,
                        help="contexts per process (cpu(0)..cpu(N-1): one core each)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    kv = sg.kv.create(args.kvstore)
    np.random.seed(kv.rank)  # shuffles and initial values (rank 0's are broadcast)
    mnist = sg.datasets.get_mnist()
    x, y = mnist["train_data"][:args.samples], mnist["train_label"][:args.samples]
    train = sg.io.NDArrayIter(x, y.astype(np.float32), args.batch_size, shuffle=True,
                              num_parts=kv.num_workers, part_index=kv.rank)
    val = sg.io.NDArrayIter(mnist["test_data"], mnist["test_label"].astype(np.float32), 500)
    mod = sg.mod.Module(mlp() if args.model == "mlp" else lenet(),
                        context=[sg.cpu(i) for i in range(args.devices)])
    tic = time.perf_counter()
    mod.fit(train, eval_data=val, num_epoch=args.epochs, kvstore=kv, optimizer="sgd",
            optimizer_params={"learning_rate": args.lr, "momentum": 0.9},
            initializer=sg.init.Xavier(magnitude=2.0))
    total = time.perf_counter() - tic
    if kv.rank == 0:
        steps = args.epochs * (len(x) // kv.num_workers // args.batch_size)
        comm = getattr(kv, "comm", None)
        reduce_ms = 1e3 * comm.reduce_seconds / max(steps, 1) if comm else 0.0
        epoch_times = [h["time"] for h in mod.history]
        print(f"model={args.model} workers={kv.num_workers} batch/rank={args.batch_size} "
              f"devices={args.devices} "
              f"epoch_time={min(epoch_times):.2f}s total={total:.1f}s "
              f"val_acc={mod.history[-1]['validation']['accuracy']:.4f} "
              f"allreduce_ms_per_step={reduce_ms:.3f}{step_report(comm)}", flush=True)


def step_report(comm) -> str:
    """Medians over the training steps (rank 0): forward+backward, the wait for the
    gradient allreduce after it (also its first quartile: on a shared machine the median
    includes waiting for a descheduled peer), and the allreduce's span from its first
    start (with the overlap, SYMGRAPH_OVERLAP_PARTS unset or > 1, it began during
    backward)."""
    timings = list(comm.step_timings) if comm else []
    if not timings:
        return ""

    def ms(field, q=50):
        return 1e3 * float(np.percentile([getattr(t, field) for t in timings], q))

    return (f" overlapped_steps={comm.overlapped_steps} compute_ms={ms('compute'):.3f}"
            f" wait_ms={ms('blocked'):.3f} wait_p25_ms={ms('blocked', 25):.3f}"
            f" allreduce_span_ms={ms('span'):.3f}")


if __name__ == "__main__":
    main()
