"""Semantics the op table cannot see: Dropout's hash mask, index edge cases, error messages,
and the hand-written loop kernels of the array ops run natively against the reference."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

import symgraph as sg
from symgraph.errors import OpAttributeError, ShapeError
from symgraph.ops import random_ops
from symgraph.ops.registry import get_op
from symgraph.reference import RefContext, evaluate

S = sg.sym


# ---- Dropout ------------------------------------------------------------------------------------
def fmix32_int(x: int) -> int:
    """The module's hash re-derived with Python ints (independent of numpy's wrapping)."""
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & 0xFFFFFFFF
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_hash_matches_python_int_arithmetic():
    key = random_ops.dropout_key(1234, "dropout0")
    bits = random_ops.dropout_bits(key, 50)
    expected = [fmix32_int(((i * 0x9E3779B9) & 0xFFFFFFFF) ^ key) for i in range(50)]
    assert bits.tolist() == expected
    assert fmix32_int(0) == 0 and random_ops.fmix32(np.array([0], np.uint32))[0] == 0


def mask_of(name, seed, shape=(40, 50), p=0.3):
    return random_ops.dropout_mask(seed, name, shape, p, np.float32)


def test_mask_is_deterministic_and_depends_on_seed_and_node():
    assert np.array_equal(mask_of("d0", 7), mask_of("d0", 7))
    assert not np.array_equal(mask_of("d0", 7), mask_of("d0", 8))
    assert not np.array_equal(mask_of("d0", 7), mask_of("d1", 7))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_mask_keep_rate_and_scale(p):
    mask = mask_of("dropout3", 11, (200, 500), p)
    scale = np.float32(1.0 / (1.0 - p))
    assert set(np.unique(mask).tolist()) <= {0.0, float(scale)}
    assert abs(np.mean(mask != 0) - (1 - p)) < 0.01


def test_p_zero_and_one():
    assert np.all(mask_of("d", 1, p=0.0) == 1.0)
    assert np.all(mask_of("d", 1, p=1.0) == 0.0)


def run(sym, is_train, seed=0, **values):
    return evaluate(sym.outputs, values, is_train=is_train, seed=seed)


def test_dropout_modes():
    x = np.random.default_rng(0).standard_normal((30, 40))
    train = S.Dropout(S.Variable("x"), p=0.5, name="drop")
    (y,) = run(train, True, seed=3, x=x)
    assert np.array_equal(y, x * mask_of("drop", 3, x.shape, 0.5).astype(x.dtype))
    assert np.array_equal(run(train, False, x=x)[0], x)
    always = S.Dropout(S.Variable("x"), p=0.5, mode="always", name="drop")
    assert np.array_equal(run(always, False, seed=3, x=x)[0], y)


def test_dropout_axes_share_the_mask():
    x = np.ones((6, 7, 8))
    node = S.Dropout(S.Variable("x"), p=0.5, axes=(1,))
    arg, out, _ = node.get_internals().infer_shape(x=x.shape)
    (y,) = run(node, True, seed=5, x=x)
    assert np.all(y == y[:, :1, :])
    assert 0 < np.mean(y == 0) < 1
    assert get_op("Dropout").infer_shape(node.outputs[0].node.params, [x.shape])[1] == [
        (6, 7, 8), (6, 1, 8)]


def test_dropout_gradient_reuses_the_forward_mask():
    x = np.random.default_rng(1).standard_normal((5, 9))
    sym = S.Dropout(S.Variable("x"), p=0.4, name="d")
    grad = S.grad(sym, ["x"])
    hg = np.random.default_rng(2).standard_normal(x.shape)
    (dx,) = evaluate(grad.outputs, {"x": x, "d_output_head_grad": hg}, is_train=True, seed=9)
    mask = random_ops.dropout_mask(9, "d", x.shape, 0.4, np.float64)
    assert np.array_equal(dx, hg * mask)


def test_dropout_rejects_bad_p():
    with pytest.raises(OpAttributeError, match="p must be in"):
        S.Dropout(S.Variable("x"), p=1.5)


# ---- index edge cases -------------------------------------------------------------------------
def test_one_hot_out_of_range_rows_are_off():
    (y,) = run(S.one_hot(S.Variable("i"), depth=3), False, i=np.array([0.0, 2.9, 3.0, -1.0]))
    assert y.tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]]
    assert y.dtype == np.float32


def test_embedding_clips_indices_and_scatters_gradient():
    w = np.arange(12.0).reshape(4, 3)
    sym = S.Embedding(S.Variable("i"), S.Variable("w"), input_dim=4, output_dim=3, name="e")
    (y,) = run(sym, False, i=np.array([-2.0, 1.0, 9.0]), w=w)
    assert np.array_equal(y, w[[0, 1, 3]])
    hg = np.ones((2, 3))
    (dw,) = evaluate(S.grad(sym, ["w"]).outputs,
                     {"i": np.array([1.0, 1.0]), "w": w, "e_output_head_grad": hg})
    assert dw.tolist() == [[0, 0, 0], [2, 2, 2], [0, 0, 0], [0, 0, 0]]


def test_argmax_takes_the_first_extremum():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 0.0]])
    assert run(S.argmax(S.Variable("x"), axis=1), False, x=x)[0].tolist() == [1.0, 0.0]
    assert run(S.argmin(S.Variable("x")), False, x=x)[0].tolist() == [4.0]


# ---- error messages ----------------------------------------------------------------------------
BAD_SHAPES = [
    (lambda x, y: S.Concat(x, y, dim=1, name="cat"), {"x": (2, 3, 4), "y": (2, 3, 5)},
     r"Concat node 'cat'.*'arg1' has shape \(2, 3, 5\)"),
    (lambda x, y: S.SliceChannel(x, num_outputs=4, name="sc"), {"x": (2, 6)},
     r"SliceChannel node 'sc'.*size 6 does not split into 4"),
    (lambda x, y: S.slice_axis(x, axis=1, begin=3, end=2, name="sl"), {"x": (2, 6)},
     r"slice_axis node 'sl'.*begin=3, end=2"),
    (lambda x, y: S.squeeze(x, axis=0, name="sq"), {"x": (2, 6)},
     r"squeeze node 'sq'.*has size 2, expected 1"),
    (lambda x, y: S.broadcast_to(x, shape=(4, 6), name="bt"), {"x": (2, 6)},
     r"broadcast_to node 'bt'.*\(2, 6\) cannot be broadcast to \(4, 6\)"),
    (lambda x, y: S.transpose(x, axes=(0, 0), name="tr"), {"x": (2, 6)},
     r"transpose node 'tr'.*not a permutation"),
    (lambda x, y: S.expand_dims(x, axis=5, name="ed"), {"x": (2, 6)},
     r"expand_dims node 'ed'.*axis 5 is out of range"),
]


@pytest.mark.parametrize("build,shapes,pattern", BAD_SHAPES)
def test_shape_errors_name_node_and_shapes(build, shapes, pattern):
    sym = build(S.Variable("x"), S.Variable("y"))
    known = {k: v for k, v in shapes.items() if k in sym.list_arguments()}
    with pytest.raises(ShapeError, match=pattern):
        sym.infer_shape(**known)


# ---- native kernels of the ctx.kernel lowerings -------------------------------------------------
class KernelCtx:
    """The part of codegen's LowerContext that ``ctx.kernel``/``ctx.argmax`` lowerings use."""

    def __init__(self, params, in_shapes, out_shapes, dtype):
        self.params, self.dtype, self.is_train = params, dtype, False
        self.in_shapes, self.out_shapes = in_shapes, out_shapes
        self.kernels = []

    def buffers(self):
        from codegen import loop_ir as L

        ins = [L.BufferParam(f"in{i}", self.dtype, math.prod(s))
               for i, s in enumerate(self.in_shapes)]
        outs = [L.BufferParam(f"out{i}", self.dtype, math.prod(s))
                for i, s in enumerate(self.out_shapes)]
        return ins, outs

    def kernel(self, build):
        self.kernels.append(build(*self.buffers()))

    def argmax(self, axis, op="argmax"):
        from codegen.kernels.builders_nn import argmax_kernel

        ins, outs = self.buffers()
        shape = self.in_shapes[0] if axis is not None else (math.prod(self.in_shapes[0]),)
        self.kernels.append(argmax_kernel(shape, axis or 0, ins[0], outs[0], op))


def native_outputs(node, values, dtype):
    from cg_helpers import run_kernel

    opdef = node.opdef
    ctx = KernelCtx(node.params, [v.shape for v in values], [], dtype)
    ctx.out_shapes = [o.shape for o in opdef.reference(node.params, values, RefContext())]
    opdef.lower(node.params, ctx)
    arrays = {f"in{i}": v.astype(dtype) for i, v in enumerate(values)}
    arrays.update({f"out{i}": np.full(s, np.nan, dtype) for i, s in enumerate(ctx.out_shapes)})
    (kernel,) = ctx.kernels
    result = run_kernel(kernel, arrays)
    return [result[f"out{i}"] for i in range(len(ctx.out_shapes))]


def grad_node(sym, wrt, op):
    from symgraph.graph import topo_order

    gsym = S.grad(sym, wrt)
    return next(n for n in topo_order(gsym.outputs) if n.op == op)


RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4, 5))
IDX = np.array([[0.0, 4.0, 2.0], [2.0, 7.0, -1.0]])
V = S.Variable


def kernel_cases():
    cat = S.Concat(V("a"), V("b"), dim=1)
    sl = S.slice_axis(V("a"), axis=2, begin=1, end=4)
    emb = S.Embedding(V("i"), V("w"), input_dim=5, output_dim=3)
    return [
        ("Concat", cat.outputs[0].node, [X, X[:, :2]]),
        ("_concat_grad", grad_node(cat, ["a", "b"], "_concat_grad"), [X, X[:, :1], X[:, 1:]]),
        ("SliceChannel", S.split(V("a"), num_outputs=5, axis=2).outputs[0].node, [X]),
        ("slice_axis", sl.outputs[0].node, [X]),
        ("_slice_axis_grad", grad_node(sl, ["a"], "_slice_axis_grad"), [X[:, :, :3], X]),
        ("one_hot", S.one_hot(V("i"), depth=5).outputs[0].node, [IDX]),
        ("Embedding", emb.outputs[0].node, [IDX, RNG.standard_normal((5, 3))]),
        ("_embedding_grad", grad_node(emb, ["w"], "_embedding_grad"),
         [RNG.standard_normal((2, 3, 3)), IDX, np.zeros((5, 3))]),
        ("argmin", S.argmin(V("a")).outputs[0].node, [X]),
        ("argmax", S.argmax(V("a"), axis=1).outputs[0].node, [X]),
    ]


@pytest.mark.jit
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,node,values", kernel_cases(), ids=lambda v: v
                         if isinstance(v, str) else "")
def test_native_kernel_matches_reference(name, node, values, dtype, tmp_path, monkeypatch):
    pytest.importorskip("llvmlite")
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "codegen"))
    values = [v.astype(dtype) for v in values]
    expected = node.opdef.reference(node.params, values, RefContext())
    got = native_outputs(node, values, dtype)
    for want, have in zip(expected, got):
        np.testing.assert_allclose(have, want.astype(dtype), rtol=1e-6)
