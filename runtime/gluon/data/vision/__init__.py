"""``gluon.data.vision``: image datasets and transforms."""

from . import datasets, transforms  # noqa: F401
from .datasets import CIFAR10, CIFAR100, MNIST, FashionMNIST  # noqa: F401
