"""Dropout's mask in native code: the counter hash of ``symgraph/ops/random_ops.py``.

uint32 arithmetic is emulated on int64 values kept in [0, 2**32): every product is masked
back to 32 bits and shifts are logical, so the bits equal numpy's uint32 ones exactly. The
seed is read from the arena at run time (the executor bumps it every training forward), so
each step draws a fresh mask while staying reproducible against the reference.
"""

from __future__ import annotations

from codegen import loop_ir as L
from symgraph.ops.random_ops import FMIX_MUL1, FMIX_MUL2, GOLDEN, fmix32, name_hash

MASK32 = 0xFFFFFFFF


def _c(value: int) -> L.Const:
    return L.Const(int(value), L.INT)


def _mul32(x, k):
    return L.Bin("band", x * _c(k), _c(MASK32))


def _xorshift(x, bits):
    return L.Bin("xor", x, L.Bin("shr", x, _c(bits)))


def fmix_ir(x):
    """MurmurHash3's finalizer on an int64 holding a uint32."""
    x = _mul32(_xorshift(x, 16), FMIX_MUL1)
    x = _mul32(_xorshift(x, 13), FMIX_MUL2)
    return _xorshift(x, 16)


def dropout_kernel(size, data_shape, mask_shape, node_name, threshold, scale, data, seed,
                   out, mask):
    """mask[i] = keep(i) ? scale : 0 over the mask shape; out = data * broadcast(mask)."""
    import numpy as np

    from codegen.kernels.builders import elementwise_kernel

    mixed = int(fmix32(np.array([name_hash(node_name)], dtype=np.uint32))[0])
    i, key = L.Var("i"), L.Var("key")
    seed32 = L.Bin("band", L.Load(seed, _c(0)), _c(MASK32))
    key_value = fmix_ir(L.Bin("xor", seed32, _c(mixed)))
    bits = fmix_ir(L.Bin("xor", _mul32(i, GOLDEN), key))
    keep = L.Cmp("ge", L.Bin("shr", bits, _c(8)), _c(threshold))
    value = L.Select(keep, L.Const(scale, mask.dtype), L.Const(0.0, mask.dtype))
    loop = L.For(i, size, L.Store(mask, i, value), vectorize=False)
    make_mask = L.make_kernel([seed, mask], L.Let(key, key_value, loop))
    apply = elementwise_kernel(data_shape, [(data, data_shape), (mask, mask_shape)],
                               lambda x, m: x * m, [out])
    return make_mask, apply
