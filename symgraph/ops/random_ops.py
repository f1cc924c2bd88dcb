"""Dropout, with a counter-based mask: reproducible, and bit-exact between numpy and native.

The mask is not drawn from a stateful RNG. Each element's keep/drop decision is a pure
function of (seed, node name, flat element index), so the reference interpreter, the
compiled kernel, a re-run, and the gradient graph (which reads the forward mask output)
all agree exactly. The function, in uint32 arithmetic (all products wrap mod 2**32):

    fmix32(x):   x ^= x >> 16; x *= 0x85EBCA6B; x ^= x >> 13; x *= 0xC2B2AE35; x ^= x >> 16
                 (MurmurHash3's finalizer: a bijection with full avalanche)
    name_hash:   FNV-1a 32 over the node name's UTF-8 bytes
    key        = fmix32((seed mod 2**32) ^ fmix32(name_hash))
    bits[i]    = fmix32((i * 0x9E3779B9) ^ key)          i = flat index in the mask shape
    keep[i]    = (bits[i] >> 8) >= threshold,  threshold = floor(p * 2**24)
    mask[i]    = keep[i] ? 1 / (1 - p) : 0               (0 everywhere when p >= 1)

``key`` and ``threshold`` are compile-time constants; per element the native code needs
only integer mul/xor/shift and one compare. The top 24 bits are used so that the keep
probability is exactly ``1 - threshold / 2**24``.
"""

from __future__ import annotations

import numpy as np

from .params import param
from .registry import OpDef, register, require_attr

GOLDEN = 0x9E3779B9
FMIX_MUL1 = 0x85EBCA6B
FMIX_MUL2 = 0xC2B2AE35
FNV_OFFSET = 0x811C9DC5
FNV_PRIME = 0x01000193
KEEP_BITS = 24


def fmix32(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer on a uint32 array (wrapping arithmetic)."""
    x = np.asarray(x, dtype=np.uint32)
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(FMIX_MUL1)
    x = x ^ (x >> np.uint32(13))
    x = x * np.uint32(FMIX_MUL2)
    return x ^ (x >> np.uint32(16))


def name_hash(name: str) -> int:
    """FNV-1a 32-bit hash of the node name: distinct Dropout nodes get distinct masks."""
    h = FNV_OFFSET
    for byte in name.encode("utf-8"):
        h = ((h ^ byte) * FNV_PRIME) & 0xFFFFFFFF
    return h


def dropout_key(seed: int, node_name: str) -> int:
    """The per-(seed, node) stream key; a compile-time constant for the native kernel."""
    mixed = int(fmix32(np.array([name_hash(node_name)], dtype=np.uint32))[0])
    return int(fmix32(np.array([(seed & 0xFFFFFFFF) ^ mixed], dtype=np.uint32))[0])


def dropout_threshold(p: float) -> int:
    """Elements whose top 24 hash bits are below this are dropped."""
    return min(1 << KEEP_BITS, int(np.floor(p * (1 << KEEP_BITS))))


def dropout_bits(key: int, size: int) -> np.ndarray:
    """The 32-bit hash of every flat element index 0..size-1."""
    index = np.arange(size, dtype=np.uint32)
    return fmix32((index * np.uint32(GOLDEN)) ^ np.uint32(key))


def dropout_mask(seed: int, node_name: str, shape, p: float, dtype) -> np.ndarray:
    """The inverted-dropout mask (0 or 1/(1-p)) of ``shape``; see the module docstring."""
    size = int(np.prod(shape, dtype=np.int64))
    bits = dropout_bits(dropout_key(seed, node_name), size)
    keep = (bits >> np.uint32(32 - KEEP_BITS)) >= np.uint32(dropout_threshold(p))
    scale = np.dtype(dtype).type(0.0 if p >= 1.0 else 1.0 / (1.0 - p))
    return np.where(keep, scale, np.dtype(dtype).type(0.0)).reshape(shape)


def mask_shape(p, data) -> tuple:
    """Data's shape with the ``axes`` set to 1: the mask is shared (broadcast) along them."""
    shape = list(data)
    for axis in p.axes:
        shape[axis % len(shape)] = 1
    return tuple(shape)


def dropout_active(p, is_train: bool) -> bool:
    return p.p > 0.0 and (is_train or p.mode == "always")


@register
class Dropout(OpDef):
    """Inverted dropout: y = x * mask in training (or always with ``mode='always'``), the
    identity otherwise (mask of ones). Outputs ``output`` (visible) and ``mask``; the
    gradient is dy * mask, so it reuses the forward mask instead of redrawing it."""

    name = "Dropout"
    hint = "dropout"
    params = (param("p", "float", 0.5), param("mode", "str", "training",
                                              choices=("training", "always")),
              param("axes", "shape", ()), param("cudnn_off", "bool?", False))
    hidden_outputs = ("mask",)

    def parse(self, attrs, node_name):
        parsed = super().parse(attrs, node_name)
        require_attr(self.name, node_name, 0.0 <= parsed.p <= 1.0,
                     f"p must be in [0, 1], got {parsed.p}")
        return parsed

    def infer_shape(self, p, in_shapes):
        data = in_shapes[0]
        if data is None:
            return in_shapes, [None, None]
        return in_shapes, [tuple(data), mask_shape(p, data)]

    def infer_shape_backward(self, p, in_shapes, out_shapes):
        if in_shapes[0] is None and out_shapes[0] is not None:
            in_shapes[0] = tuple(out_shapes[0])
        return in_shapes

    def reference(self, p, inputs, ctx):
        data = inputs[0]
        shape = mask_shape(p, data.shape)
        if not dropout_active(p, ctx.is_train):
            return [data.copy(), np.ones(shape, dtype=data.dtype)]
        mask = dropout_mask(ctx.seed, ctx.node_name, shape, p.p, data.dtype)
        return [data * mask, mask]

    def gradient(self, p, g):
        dy = g.out_grads[0]
        if dy is None:
            return [None]
        return [g.op("broadcast_mul", dy, g.outputs[1])]

    def lower(self, p, ctx):
        # The loop IR has no integer xor/shift, so the hash needs the context's own kernel:
        # ctx.dropout must reproduce ``reference`` bit-exactly (module docstring), including
        # the identity/ones-mask case when ``dropout_active(p, ctx.is_train)`` is false.
        ctx.dropout(p)
