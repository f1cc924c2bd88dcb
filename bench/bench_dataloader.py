"""gluon DataLoader over in-memory Fashion-MNIST: ``num_workers=0`` against ``4``, side by
side, for the three ways a batch is made: a known transform (batched over the whole
batch), no transform (one fancy index), and an arbitrary per-sample Python transform.
The issue's target: ``num_workers=4`` on 2 cores is never slower than 0."""

from __future__ import annotations

import time

import numpy as np

from symgraph import gluon
from symgraph.gluon.data import DataLoader
from symgraph.gluon.data.vision import transforms

BATCH, REPEATS = 256, 5
PER_SAMPLE = 10240  # samples for the per-sample case (the Python path is ~100x slower)


def _cases():
    train = gluon.data.vision.FashionMNIST(train=True)
    known = train.transform_first(transforms.Compose([transforms.ToTensor(),
                                                      transforms.Normalize(0.13, 0.31)]))
    small = gluon.data.ArrayDataset(train._data[:PER_SAMPLE], train._label[:PER_SAMPLE])

    def python_transform(x):
        return x.astype("float32") / 255

    return [("known transform (ToTensor+Normalize)", known),
            ("no transform", train),
            ("per-sample Python transform", small.transform_first(python_transform))]


def _epoch(loader):
    start = time.perf_counter()
    for _batch in loader:
        pass
    return time.perf_counter() - start


def _medians(dataset):
    """Median epoch time for 0 and 4 workers, interleaved so load changes hit both."""
    loaders = {w: DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=w)
               for w in (0, 4)}
    for loader in loaders.values():
        _epoch(loader)  # warm up (page-in, caches)
    times = {0: [], 4: []}
    for _ in range(REPEATS):
        for workers, loader in loaders.items():
            times[workers].append(_epoch(loader))
    return float(np.median(times[0])), float(np.median(times[4]))


def main():
    print(f"{'case':<40}{'samples':>9}{'w=0 ms':>10}{'w=4 ms':>10}{'w4/w0':>8}")
    for name, dataset in _cases():
        zero, four = _medians(dataset)
        print(f"{name:<40}{len(dataset):>9}{zero * 1e3:>10.1f}{four * 1e3:>10.1f}"
              f"{four / zero:>8.2f}")


if __name__ == "__main__":
    main()
