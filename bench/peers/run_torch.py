"""PyTorch (CPU) on one workload, eager or under ``torch.compile`` (``--compile``): the
networks of bench/peers/symbols.py as ``torch.nn`` modules, Xavier-uniform weights and zero
biases as MXNet's ``Xavier()`` gives them, mean cross-entropy and plain SGD (MXNet's
SoftmaxOutput + ``rescale_grad=1/batch``); prints one JSON result line.

With ``--compile`` the first forward+backward (no update) and the first inference forward
are timed as the compile, before the fit."""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import peer_common as pc  # noqa: E402
import torch  # noqa: E402
from symbols import RESNET18_STAGES  # noqa: E402
from torch import nn  # noqa: E402


def mlp(sizes):
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def lenet():
    return nn.Sequential(nn.Conv2d(1, 20, 5), nn.Tanh(), nn.MaxPool2d(2),
                         nn.Conv2d(20, 50, 5), nn.Tanh(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(800, 500), nn.Tanh(), nn.Linear(500, 10))


def lenet5():
    return nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


def conv_bn(cin, cout, kernel, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.a = conv_bn(cin, cout, 3, stride)
        self.b = conv_bn(cout, cout, 3, 1)
        self.project = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        body = self.b(torch.relu(self.a(x)))
        return torch.relu(body + (self.project(x) if self.project is not None else x))


def resnet18(classes=10):
    layers, width = [nn.Conv2d(3, 64, 3, 1, 1, bias=False)], 64
    for channels, stride in RESNET18_STAGES:
        layers += [BasicBlock(width, channels, stride), BasicBlock(channels, channels, 1)]
        width = channels
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, classes))


BUILDERS = {"mlp-letter": lambda: mlp((16, 64, 26)), "mlp-mnist": lambda: mlp((784, 128, 64, 10)),
            "lenet": lenet, "lenet5": lenet5, "resnet18": resnet18}


def xavier(model):
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def main():
    args, workload = pc.parse_args(__doc__)
    compiled = args.compile
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    split = pc.load(workload, args.quick)
    model = BUILDERS[workload.net]()
    xavier(model)
    run = torch.compile(model) if compiled else model
    opt = torch.optim.SGD(model.parameters(), lr=workload.lr)
    loss_fn = nn.CrossEntropyLoss()

    def step(x, y):
        if not model.training:
            model.train()
        opt.zero_grad(set_to_none=True)
        loss_fn(run(torch.from_numpy(x)), torch.from_numpy(y).long()).backward()
        opt.step()

    def predict(x):
        if model.training:
            model.eval()
        with torch.no_grad():
            return run(torch.from_numpy(x)).argmax(1).numpy()

    compile_s = None
    if compiled:
        start = time.perf_counter()
        idx = pc.padded_batches(len(split.train_x), workload.batch)[0]
        loss_fn(run(torch.from_numpy(split.train_x[idx])),
                torch.from_numpy(split.train_y[idx]).long()).backward()
        opt.zero_grad(set_to_none=True)
        if len(split.val_x):
            predict(split.train_x[idx])
        compile_s = time.perf_counter() - start
    wall, cpu, accuracy = pc.fit_loop(split, workload, step, predict)
    pc.emit("torch.compile" if compiled else "torch", workload, split, wall, cpu, accuracy,
            compile_s, "first step" if compiled else None, version=torch.__version__)


if __name__ == "__main__":
    main()
