"""``sg.gluon.nn``: layers."""

from ..block import Block, HybridBlock  # noqa: F401
from .activations import ELU, GELU, SELU, Activation, LeakyReLU, PReLU, Swish  # noqa: F401
from .basic import (  # noqa: F401
    Dense,
    Dropout,
    Embedding,
    Flatten,
    HybridLambda,
    HybridSequential,
    Lambda,
    Sequential,
)
from .concurrent import Concurrent, HybridConcurrent, Identity  # noqa: F401
from .conv import (  # noqa: F401
    AvgPool1D,
    AvgPool2D,
    Conv1D,
    Conv2D,
    Conv2DTranspose,
    GlobalAvgPool2D,
    GlobalMaxPool2D,
    MaxPool1D,
    MaxPool2D,
)
from .norm import BatchNorm, InstanceNorm, LayerNorm  # noqa: F401
