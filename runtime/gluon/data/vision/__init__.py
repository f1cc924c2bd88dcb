"""``gluon.data.vision``: image datasets and transforms."""

from . import datasets, transforms  # noqa: F401
from .datasets import MNIST, FashionMNIST  # noqa: F401
