"""Float -> int64 casts in loop kernels, scalar and vectorized: saturating truncation
(LLVM's fptosi.sat), so NaN, inf and huge values give defined results."""

import numpy as np
import pytest
from cg_helpers import run_kernel

from codegen import loop_ir as L
from codegen.kernels import builders

pytestmark = pytest.mark.jit
BIG = 2 ** 63 - 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [1, 37])  # a scalar loop and a vectorized one with a tail
def test_cast_to_int_saturates(dtype, n):
    src = L.BufferParam("x", dtype, n)
    dst = L.BufferParam("y", L.INT, n)
    kernel = builders.elementwise_kernel((n,), [(src, (n,))], lambda x: L.Cast(x, L.INT),
                                         [dst])
    odd = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 3.7, -3.7, -0.5], dtype)
    x = np.resize(odd, n).astype(dtype)
    got = run_kernel(kernel, {"x": x, "y": np.zeros(n, np.int64)})["y"]
    expected = np.array([0 if np.isnan(v) else BIG if v >= 2 ** 63 else -BIG - 1
                         if v <= -2 ** 63 else int(np.trunc(v)) for v in x.astype(np.float64)])
    np.testing.assert_array_equal(got, expected)
