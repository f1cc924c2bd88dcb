"""How kernels are handed to LLVM: kernels on large buffers never inlined into phases,
data-movement kernels of many loop nests optimized for size, compute kernels at full
speed, noalias where every call's buffers are disjoint, and each content name verified
once without letting a malformed kernel through."""

import ctypes

import numpy as np
import pytest
from llvmlite import ir

from codegen import jit
from codegen import loop_ir as L
from codegen.emit.llvm_emit import (
    INLINE_ELEMENTS,
    OPTSIZE_LOOPS,
    count_loops,
    emit_kernel,
    moves_data,
)
from codegen.kernels.builders import elementwise_kernel
from codegen.kernels.conv_kernels import Axis, GroupedConv, grouped_conv_kernel, im2col_kernel
from symgraph.errors import CompileError

pytestmark = pytest.mark.jit


def _attributes(kernel):
    module = ir.Module(name="t")
    fn = emit_kernel(module, kernel, jit.host().lanes)
    return set(fn.attributes)


def _padded_im2col():
    """im2col of a padded 7x7 stride-2 window on a non-square image (a ResNet stem)."""
    shape = (2, 3, 9, 11)
    rows, cols = Axis(9, 5, 7, 2, 3), Axis(11, 6, 7, 2, 3)
    inp = L.BufferParam("in0", "float32", 2 * 3 * 9 * 11)
    out = L.BufferParam("cols", "float32", 3 * 7 * 7 * 2 * 5 * 6)
    return im2col_kernel(shape, rows, cols, 0, 3, inp, out)


def test_kernels_on_large_buffers_are_never_inlined_small_ones_may_be():
    x, y = L.BufferParam("in0", "float32", 6), L.BufferParam("out0", "float32", 6)
    small = elementwise_kernel((2, 3), [(x, (2, 3))], lambda a: a * 2, [y])
    assert "noinline" not in _attributes(small)
    n = INLINE_ELEMENTS + 1
    x, y = L.BufferParam("in0", "float32", n), L.BufferParam("out0", "float32", n)
    large = elementwise_kernel((n,), [(x, (n,))], lambda a: a * 2, [y])
    assert "noinline" in _attributes(large)
    assert "noinline" in _attributes(_padded_im2col())


def test_window_copy_is_optimized_for_size_and_compute_is_not():
    im2col = _padded_im2col()
    assert count_loops(im2col.body) >= OPTSIZE_LOOPS and moves_data(im2col.body)
    assert "optsize" in _attributes(im2col)
    conv = GroupedConv((2, 4, 9, 11), Axis(9, 5, 7, 2, 3), Axis(11, 6, 7, 2, 3), 4, 4)
    x = L.BufferParam("in0", "float32", 2 * 4 * 9 * 11)
    w = L.BufferParam("in1", "float32", 4 * 1 * 7 * 7)
    y = L.BufferParam("out0", "float32", 2 * 4 * 5 * 6)
    depthwise = grouped_conv_kernel(conv, x, w, None, y)
    assert count_loops(depthwise.body) >= OPTSIZE_LOOPS and not moves_data(depthwise.body)
    assert "optsize" not in _attributes(depthwise)


def test_optsize_window_copy_still_computes_im2col():
    """The size-optimized kernel gives numpy's padded window gather."""
    kernel = _padded_im2col()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 11)).astype(np.float32)
    out = np.zeros(kernel.params[1].size, np.float32)
    module = ir.Module(name="t")
    module.triple = jit.host().triple
    fn = emit_kernel(module, kernel, jit.host().lanes)
    fn.linkage = "external"
    lib = jit.compile_ir(str(module), [kernel.name], "im2col_test")
    call = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(lib.addresses[kernel.name])
    call(x.ctypes.data, out.ctypes.data)
    padded = np.pad(x, ((0, 0), (0, 0), (3, 3), (3, 3)))
    want = np.empty((3, 7, 7, 2, 5, 6), np.float32)
    for ki in range(7):
        for kj in range(7):
            want[:, ki, kj] = padded[:, :, ki:ki + 9:2, kj:kj + 11:2].transpose(1, 0, 2, 3)
    np.testing.assert_array_equal(out.reshape(want.shape), want)


def test_make_kernel_verifies_a_name_once_but_rejects_every_bad_kernel():
    buf = L.BufferParam("out0", "float32", 4)
    i = L.Var("i")
    good = L.make_kernel([buf], L.For(i, 4, L.Store(buf, i, L.Const(1.0, "float32"))))
    again = L.make_kernel([buf], L.For(i, 4, L.Store(buf, i, L.Const(1.0, "float32"))))
    assert good.name == again.name and good.name in L._VERIFIED
    with pytest.raises(CompileError, match="spans"):  # out of range: a different text
        L.make_kernel([buf], L.For(i, 5, L.Store(buf, i, L.Const(1.0, "float32"))))
    with pytest.raises(CompileError, match="spans"):  # and again: never remembered
        L.make_kernel([buf], L.For(i, 5, L.Store(buf, i, L.Const(1.0, "float32"))))


def test_noalias_only_where_every_call_has_disjoint_buffers():
    """An in-place call (input and output at one offset) keeps its kernel may-alias, even
    when another call of the same kernel is disjoint; disjoint-only kernels get noalias."""
    from codegen.program import KernelCall, Program, build_module

    n = 8
    x, y = L.BufferParam("in0", "float32", n), L.BufferParam("out0", "float32", n)
    double = elementwise_kernel((n,), [(x, (n,))], lambda a: a * 2, [y])
    negate = elementwise_kernel((n,), [(x, (n,))], lambda a: -a, [y])
    phases = {"run": [KernelCall(double, (0, 4 * n)), KernelCall(double, (0, 0)),
                      KernelCall(negate, (0, 4 * n)), KernelCall(negate, (4 * n, 8 * n))]}
    module = build_module(Program((double, negate), 12 * n, phases), "t")
    args = {fn.name: [set(a.attributes) for a in fn.args] for fn in module.functions}
    assert all("noalias" not in a for a in args[double.name])
    assert all("noalias" in a for a in args[negate.name])


def test_in_place_and_disjoint_calls_give_numpy_results():
    from codegen.program import KernelCall, Program, compile_program

    n = 8
    x, y = L.BufferParam("in0", "float32", n), L.BufferParam("out0", "float32", n)
    double = elementwise_kernel((n,), [(x, (n,))], lambda a: a * 2 + 1, [y])
    phases = {"run": [KernelCall(double, (0, 4 * n)), KernelCall(double, (4 * n, 4 * n))]}
    compiled = compile_program(Program((double,), 8 * n, phases), "inplace")
    arena = np.zeros(8 * n, np.uint8)
    start = np.arange(n, dtype=np.float32)
    arena[:4 * n].view(np.float32)[:] = start
    compiled.run_array("run", arena)
    np.testing.assert_array_equal(arena[4 * n:].view(np.float32), (start * 2 + 1) * 2 + 1)
