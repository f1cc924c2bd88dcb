"""Parallel branches: ``Concurrent`` / ``HybridConcurrent`` feed one input to every child
and join their outputs along ``axis`` (the Inception / SqueezeNet / DenseNet pattern), and
``Identity`` passes its input through (DenseNet's skip branch). MXNet 1.x keeps these in
``gluon.contrib.nn``, MXNet 2 in ``gluon.nn``; both spellings reach these classes."""

from __future__ import annotations

from runtime.gluon.block import HybridBlock
from runtime.gluon.nn.basic import HybridSequential, Sequential


class Concurrent(Sequential):
    """Run each child on the same input; concatenate the results along ``axis``."""

    def __init__(self, axis=-1, prefix=None, params=None):
        super().__init__(prefix=prefix, params=params)
        self.axis = axis

    def forward(self, x):
        from runtime import nd

        return nd.concat(*(block(x) for block in self._children.values()), dim=self.axis)


class HybridConcurrent(HybridSequential):
    """Concurrent whose branches are HybridBlocks (one Concat node in the graph)."""

    def __init__(self, axis=-1, prefix=None, params=None):
        super().__init__(prefix=prefix, params=params)
        self.axis = axis

    forward = Concurrent.forward


class Identity(HybridBlock):
    """Return the input unchanged."""

    def hybrid_forward(self, F, x):
        return x
