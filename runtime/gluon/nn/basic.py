"""Containers and basic layers: Sequential, Dense, Dropout, Flatten, Embedding, Lambda."""

from __future__ import annotations

from runtime.gluon.block import Block, HybridBlock
from runtime.gluon.nn.activations import Activation


class Sequential(Block):
    """Children run in the order they were added; registered as ``0``, ``1``, ..."""

    def add(self, *blocks):
        for block in blocks:
            self.register_child(block)

    def forward(self, x, *args):
        for block in self._children.values():
            x = block(x, *args)
            args = ()
        return x

    def __getitem__(self, key):
        layers = list(self._children.values())[key]
        if isinstance(layers, list):
            net = type(self)(prefix=self._prefix)
            with net.name_scope():
                net.add(*layers)
            return net
        return layers

    def __len__(self):
        return len(self._children)


class HybridSequential(Sequential, HybridBlock):
    """Sequential whose children are HybridBlocks (hybridize() applies to all)."""

    forward = Sequential.forward


def _activation(block, act):
    if act is None:
        return None
    with block.name_scope():
        return Activation(act, prefix=act + "_")


class Dense(HybridBlock):
    """``y = act(x W^T + b)``; ``in_units`` is inferred from the first input if 0."""

    def __init__(self, units, activation=None, use_bias=True, flatten=True, dtype="float32",
                 weight_initializer=None, bias_initializer="zeros", in_units=0, **kwargs):
        super().__init__(**kwargs)
        self._units, self._flatten, self._in_units = units, flatten, in_units
        with self.name_scope():
            self.weight = self.params.get("weight", shape=(units, in_units),
                                          init=weight_initializer, dtype=dtype,
                                          allow_deferred_init=True)
            self.bias = self.params.get("bias", shape=(units,), init=bias_initializer,
                                        dtype=dtype, allow_deferred_init=True) \
                if use_bias else None
        self.act = _activation(self, activation)

    def hybrid_forward(self, F, x, weight, bias=None):
        args = [x, weight] if bias is None else [x, weight, bias]
        out = F.FullyConnected(*args, num_hidden=self._units, no_bias=bias is None,
                               flatten=self._flatten)
        return self.act(out) if self.act is not None else out

    def __repr__(self):
        shape = self.weight.shape
        return (f"Dense({shape[1] if shape[1] else None} -> {shape[0]}, "
                f"{'linear' if self.act is None else self.act._act_type})")


class Dropout(HybridBlock):
    """Zero a fraction ``rate`` of the inputs in training mode; identity otherwise."""

    def __init__(self, rate, axes=(), **kwargs):
        super().__init__(**kwargs)
        self._rate, self._axes = rate, tuple(axes)

    def hybrid_forward(self, F, x):
        if self._rate <= 0:
            return x
        return F.Dropout(x, p=self._rate, axes=self._axes or None)


class Flatten(HybridBlock):
    """(N, ...) -> (N, prod(...))."""

    def hybrid_forward(self, F, x):
        return F.Flatten(x)


class Embedding(HybridBlock):
    """Rows of a (input_dim, output_dim) table, looked up by index."""

    def __init__(self, input_dim, output_dim, dtype="float32", weight_initializer=None,
                 sparse_grad=False, **kwargs):
        super().__init__(**kwargs)
        self._input_dim, self._output_dim = input_dim, output_dim
        self.weight = self.params.get("weight", shape=(input_dim, output_dim),
                                      init=weight_initializer, dtype=dtype)

    def hybrid_forward(self, F, x, weight):
        return F.Embedding(x, weight, input_dim=self._input_dim, output_dim=self._output_dim)


class Lambda(Block):
    """Wrap a function (or the name of an ``sg.nd`` function) as a Block."""

    def __init__(self, function, prefix=None):
        super().__init__(prefix=prefix)
        if isinstance(function, str):
            from runtime import nd

            function = getattr(nd, function)
        self._func = function

    def forward(self, *args):
        return self._func(*args)


class HybridLambda(HybridBlock):
    """Wrap ``function(F, x, ...)`` (or an op name) as a HybridBlock."""

    def __init__(self, function, prefix=None):
        super().__init__(prefix=prefix)
        if isinstance(function, str):
            name = function

            def function(F, *args):
                return getattr(F, name)(*args)
        self._func = function

    def hybrid_forward(self, F, x, *args):
        return self._func(F, x, *args)
