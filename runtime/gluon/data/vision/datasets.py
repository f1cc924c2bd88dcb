"""``gluon.data.vision`` datasets (MNIST, Fashion-MNIST, CIFAR-10/100), read through
:mod:`runtime.datasets` (``root=``, then ``SYMGRAPH_DATA``, then the cache; never faked)."""

from __future__ import annotations

import numpy as np

from runtime import datasets as _files
from runtime.gluon.data.dataset import Dataset
from runtime.ndarray.ndarray import NDArray


class _ImageDataset(Dataset):
    """Images (N, H, W, C) uint8 and int32 labels held in memory."""

    _loader = None

    def __init__(self, root=None, train=True, transform=None):
        self._train = train
        self._transform = transform
        images, labels = self._load(root, "train" if train else "test")
        if images.ndim == 3:  # grey images (N, H, W): one channel
            images = images.reshape(images.shape + (1,))
        self._data = np.ascontiguousarray(images)
        self._label = labels.astype(np.int32)

    def _load(self, root, kind):
        return type(self)._loader(root, kind)

    def __len__(self):
        return len(self._label)

    def __getitem__(self, idx):
        if isinstance(idx, (int, np.integer)):
            data, label = NDArray(self._data[idx]), self._label[idx]
        else:
            data, label = NDArray(self._data[idx]), self._label[idx]
        if self._transform is not None:
            return self._transform(data, label)
        return data, label

    def _arrays(self):
        return None if self._transform is not None else (self._data, self._label)


class MNIST(_ImageDataset):
    """MNIST handwritten digits: 28x28x1 uint8 images, labels 0-9."""

    _loader = staticmethod(lambda root, kind: _files.load_mnist(root, kind))


class FashionMNIST(_ImageDataset):
    """Fashion-MNIST: same layout as MNIST, ten clothing classes."""

    _loader = staticmethod(lambda root, kind: _files.load_fashion_mnist(root, kind))


class CIFAR10(_ImageDataset):
    """CIFAR-10 (binary version): 32x32x3 uint8 images, labels 0-9; the ``.bin`` batches
    (or ``cifar-10-binary.tar.gz``) under ``root``, ``root/cifar-10`` or ``SYMGRAPH_DATA``."""

    _loader = staticmethod(lambda root, kind: _files.load_cifar10(root, kind))


class CIFAR100(_ImageDataset):
    """CIFAR-100 (binary version): 32x32x3 uint8 images with the 20 coarse labels, or the
    100 fine ones with ``fine_label=True`` (MXNet's default is coarse)."""

    def __init__(self, root=None, fine_label=False, train=True, transform=None):
        self._fine_label = fine_label
        super().__init__(root, train, transform)

    def _load(self, root, kind):
        images, coarse, fine = _files.load_cifar100(root, kind)
        return images, fine if self._fine_label else coarse
