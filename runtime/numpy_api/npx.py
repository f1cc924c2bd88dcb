"""``sg.npx``: MXNet 2's neural-network extensions (``npx.relu``, ``npx.set_np``, ...)."""

from __future__ import annotations

from runtime.ndarray.functions import namespace_getattr
from runtime.ndarray.invoke import call as _call
from runtime.ndarray.invoke import set_np_mode
from runtime.ndarray.ndarray import as_ndarray

_RENAMED = {"fully_connected": "FullyConnected", "convolution": "Convolution",
            "pooling": "Pooling", "activation": "Activation", "dropout": "Dropout",
            "batch_flatten": "Flatten", "leaky_relu": "LeakyReLU", "embedding": "Embedding"}


def set_np(shape=True, array=True, dtype=False):
    """Numpy semantics: reshape codes follow ``npx.reshape``."""
    set_np_mode(True)


def reset_np():
    set_np_mode(False)


def is_np_array() -> bool:
    from runtime.ndarray.invoke import np_mode

    return np_mode()


def reshape(a, newshape, reverse=False, order="C"):
    from runtime.ndarray.reshape import np_shape

    a = as_ndarray(a)
    return _call("Reshape", [a], {"shape": np_shape(a.shape, tuple(newshape), reverse)})


def cpu(device_id=0):
    from runtime.context import cpu as _cpu

    return _cpu(device_id)


def num_gpus() -> int:
    return 0


__getattr__ = namespace_getattr(globals(), "sg.npx", _RENAMED)
