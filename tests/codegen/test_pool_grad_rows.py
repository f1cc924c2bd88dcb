"""The vector kernel of max pooling's gradient (tiled windows two columns wide) gives the
bytes of the loop kernel it replaces, ties and NaNs included (the first maximum of a
window in row-major order takes the gradient), on row ends that fill no vector, and split
over two threads."""

import numpy as np
import pytest
from cg_helpers import run_kernel

from codegen import loop_ir as L
from codegen import partition, threadpool
from codegen.kernels import pool_grad_rows, pool_kernels
from codegen.kernels.conv_kernels import Axis
from codegen.kernels.pool_grad_rows import MaxPoolGradRows

pytestmark = pytest.mark.jit


def _case(planes, oh, ow, kh, dtype, seed=0):
    rows, cols = Axis(oh * kh, oh, kh, kh), Axis(2 * ow, ow, 2, 2)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, (planes, oh * kh, 2 * ow)).astype(dtype)  # many ties
    x.flat[rng.integers(0, x.size, 5)] = np.nan
    windows = x.reshape(planes, oh, kh, ow, 2)
    y = np.nanmax(windows, axis=(2, 4))  # a NaN window keeps the finite max: no cell hits
    dy = rng.standard_normal(y.shape).astype(dtype)
    bufs = {"in0": dy, "in1": x, "in2": y.astype(dtype), "out0": np.full(x.shape, 7, dtype)}
    params = [L.BufferParam(n, dtype, a.size) for n, a in bufs.items()]
    return rows, cols, bufs, params


def _loop_kernel(planes, rows, cols, params):
    dy, x, y, dx = params
    return L.make_kernel([dy, x, y, dx], pool_kernels._tiled_max_grad(planes, rows, cols,
                                                                       dy, x, y, dx))


@pytest.mark.parametrize("planes,oh,ow,kh,dtype", [
    (3, 12, 12, 2, "float32"), (5, 4, 4, 2, "float32"), (4, 5, 5, 2, "float32"),
    (2, 3, 17, 3, "float32"), (3, 6, 6, 2, "float64"), (2, 2, 9, 1, "float64")])
def test_vector_kernel_gives_the_bytes_of_the_loop_kernel(planes, oh, ow, kh, dtype):
    rows, cols, bufs, params = _case(planes, oh, ow, kh, dtype)
    fast = pool_kernels.pool_max_grad_kernel(planes, rows, cols, *params[:3],
                                             L.BufferParam("rem", dtype, bufs["in0"].size),
                                             params[3])
    assert isinstance(fast, MaxPoolGradRows)
    got = run_kernel(fast, bufs)["out0"]
    want = run_kernel(_loop_kernel(planes, rows, cols, params), bufs, name="loop")["out0"]
    assert np.array_equal(got, want, equal_nan=True)
    windows = got.reshape(planes, oh, kh, ow, 2)
    hits = (bufs["in1"].reshape(windows.shape) == bufs["in2"][:, :, None, :, None])
    assert np.array_equal(np.count_nonzero(windows, axis=(2, 4)),
                          np.any(hits, axis=(2, 4)) & (bufs["in0"] != 0))


def test_two_chunks_give_the_bytes_of_one(monkeypatch):
    monkeypatch.setattr(partition, "MIN_LOOP_WORK", 0)
    rows, cols, bufs, params = _case(6, 4, 12, 2, "float32", seed=3)
    with threadpool.compiling_for(2):
        split = pool_grad_rows.max_pool_grad_rows(6, rows, cols, *params)
    with threadpool.compiling_for(1):
        one = pool_grad_rows.max_pool_grad_rows(6, rows, cols, *params)
    assert split.chunks == 2 and one.chunks == 1
    before = threadpool.num_threads()
    threadpool.set_num_threads(2)
    try:
        two = run_kernel(split, bufs, name="two")["out0"]
    finally:
        threadpool.set_num_threads(before)
    assert np.array_equal(two, run_kernel(one, bufs)["out0"], equal_nan=True)


@pytest.mark.parametrize("rows,cols", [
    (Axis(8, 4, 2, 2), Axis(9, 4, 2, 2)),     # a column left over: not covered
    (Axis(8, 4, 2, 2), Axis(12, 4, 3, 3)),    # three columns wide
    (Axis(8, 7, 2, 1), Axis(8, 4, 2, 2)),     # overlapping rows
])
def test_other_windows_keep_the_loop_kernel(rows, cols):
    assert not pool_grad_rows.fits(rows, cols, "float32")
