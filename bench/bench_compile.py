"""Cold and warm compile time of the conv-net training graphs (issue 11's targets).

Each measurement is a new process (CPU time includes the compile helpers it forks, see
``codegen/split_compile.py``; the main process's own CPU time is about the wall time on an
idle machine, where the helpers run beside it): *cold* with an empty compile cache, *warm* with the
cache the cold run filled (what a second run of the same script pays).  Timed is
``simple_bind`` of the training graph (forward + backward of every parameter, as
``Module.bind`` compiles it); imports are not.  The
ResNet-50 and MobileNet graphs are MXNet's own full-width model-zoo exports
(``bench/models``, written by ``make_symbols.py``) on a 2 x 3 x 112 x 112 batch; LeNet is
the MNIST tutorial's network on a batch of 100, the MLP the MNIST MLP tutorial's
784-128-64-10 (issue 12's warm target, 0.05 s, applies to LeNet and the MLP).  Warm is
the median of ``WARM_RUNS`` new processes (the range is printed too: the machine is
shared, so single runs are noisy).

    python -m bench.bench_compile [resnet50 mobilenet lenet mlp]   # cold / warm vs targets
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

#: key -> (title, build expression, data shape, cold target s)
CASES = {
    "resnet50": ("ResNet-50 v1 (model zoo)", "zoo('resnet50_v1')", (2, 3, 112, 112), 10.0),
    "mobilenet": ("MobileNet v1 1.0 (model zoo)", "zoo('mobilenet1.0')", (2, 3, 112, 112),
                  5.0),
    "lenet": ("LeNet (MNIST)", "lenet()", (100, 1, 28, 28), 1.5),
    "mlp": ("MLP 784-128-64-10 (MNIST)", "mlp()", (100, 1, 28, 28), 1.0),
}
#: warm-start targets: issue 11's 0.2 s, issue 12's 0.05 s for MLPs and LeNet
WARM_TARGET = {"lenet": 0.05, "mlp": 0.05}
WARM_TARGET_DEFAULT = 0.2
WARM_RUNS = 5

_PROGRAM = """
import resource, time
import symgraph as sg
from bench.bench_compile import lenet, mlp, zoo
def helpers_cpu():  # the compile helpers this process forked and waited for
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime
net = {build}
reqs = {{n: 'null' if n in ('data', 'softmax_label') else 'write' for n in net.list_arguments()}}
t, cpu, kids = time.perf_counter(), time.process_time(), helpers_cpu()
exe = net.simple_bind(sg.cpu(), grad_req=reqs, data={shape})
t, cpu, kids = time.perf_counter() - t, time.process_time() - cpu, helpers_cpu() - kids
print(t, cpu + kids, cpu, len(exe.compiled.program.program.kernels))
"""


def zoo(name):
    """A model-zoo symbol file as exported by Gluon (its one head: the logits)."""
    import symgraph as sg

    return sg.sym.load(os.path.join(HERE, "models", f"{name}-symbol.json"))


def lenet():
    import symgraph as sg

    s = sg.sym
    x = s.Variable("data")
    for i, filters in enumerate((20, 50)):
        x = s.Convolution(x, kernel=(5, 5), num_filter=filters, name=f"conv{i + 1}")
        x = s.Activation(x, act_type="tanh", name=f"tanh{i + 1}")
        x = s.Pooling(x, pool_type="max", kernel=(2, 2), stride=(2, 2), name=f"pool{i + 1}")
    x = s.Activation(s.FullyConnected(s.Flatten(x), num_hidden=500, name="fc1"),
                     act_type="tanh", name="tanh3")
    return s.SoftmaxOutput(s.FullyConnected(x, num_hidden=10, name="fc2"), name="softmax")


def mlp():
    import symgraph as sg

    s = sg.sym
    x = s.Flatten(s.Variable("data"))
    for i, width in enumerate((128, 64)):
        x = s.Activation(s.FullyConnected(x, num_hidden=width, name=f"fc{i + 1}"),
                         act_type="relu", name=f"relu{i + 1}")
    return s.SoftmaxOutput(s.FullyConnected(x, num_hidden=10, name="fc3"), name="softmax")


def bind_time(build, shape, cache_dir):
    """(wall s, CPU s with helpers, CPU s of the process, kernels) of one bind in a new
    process using ``cache_dir``."""
    code = _PROGRAM.format(build=build, shape=shape)
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=cache_dir, OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=os.path.dirname(HERE))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, cwd=os.path.dirname(HERE))
    if out.returncode:
        raise RuntimeError(f"{build} failed:\n{out.stderr[-2000:]}")
    wall, cpu, own, kernels = out.stdout.split()[-4:]
    return float(wall), float(cpu), float(own), int(kernels)


def main(names=None):
    print("## Compile time of the training graph (new process each; wall and CPU seconds:"
          " on a loaded machine CPU time is the steadier number; warm: median of"
          f" {WARM_RUNS} and range)\n")
    print("| network | kernels | cold wall s | cold CPU s | cold CPU s, main process | target "
          "| warm wall s | warm CPU s | target |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key in names or CASES:
        title, build, shape, target = CASES[key]
        with tempfile.TemporaryDirectory() as cache:
            cold, cold_cpu, cold_own, kernels = bind_time(build, shape, cache)
            runs = sorted(bind_time(build, shape, cache) for _ in range(WARM_RUNS))
        warm, warm_cpu = statistics.median(r[0] for r in runs), \
            statistics.median(r[1] for r in runs)
        spread = f"{runs[0][0]:.3f}-{runs[-1][0]:.3f}"
        print(f"| {title} | {kernels} | {cold:.2f} | {cold_cpu:.2f} | {cold_own:.2f} | "
              f"<= {target} | "
              f"{warm:.3f} ({spread}) | {warm_cpu:.3f} | "
              f"<= {WARM_TARGET.get(key, WARM_TARGET_DEFAULT)} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
