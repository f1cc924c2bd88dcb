"""``sg.gluon.nn``: layers."""

from runtime.gluon.block import Block, HybridBlock  # noqa: F401
from runtime.gluon.nn.activations import ELU, GELU, SELU, Activation, LeakyReLU, PReLU, Swish  # noqa: F401
from runtime.gluon.nn.basic import (  # noqa: F401
    Dense,
    Dropout,
    Embedding,
    Flatten,
    HybridLambda,
    HybridSequential,
    Lambda,
    Sequential,
)
from runtime.gluon.nn.concurrent import Concurrent, HybridConcurrent, Identity  # noqa: F401
from runtime.gluon.nn.conv import (  # noqa: F401
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
from runtime.gluon.nn.norm import BatchNorm, InstanceNorm, LayerNorm  # noqa: F401
