"""``gluon.data.vision``: image datasets and transforms."""

from runtime.gluon.data.vision import datasets, transforms  # noqa: F401
from runtime.gluon.data.vision.datasets import CIFAR10, CIFAR100, MNIST, FashionMNIST  # noqa: F401
