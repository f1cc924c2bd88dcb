"""Every scalar-math method agrees between NumpyMath and a compiled kernel."""

import numpy as np
import pytest
from cg_helpers import run_kernel

from codegen import loop_ir as L
from codegen.emit.scalar_ir import IRMath
from codegen.kernels.builders import elementwise_kernel
from symgraph.ops.scalar import NumpyMath

FORMULAS = {
    "const": lambda m, x, y: x + m.const(1.5),
    "exp": lambda m, x, y: m.exp(x),
    "log": lambda m, x, y: m.log(m.abs(x) + 0.1),
    "log1p": lambda m, x, y: m.log1p(m.abs(x)),
    "sqrt": lambda m, x, y: m.sqrt(m.abs(y)),
    "tanh": lambda m, x, y: m.tanh(x),
    "sigmoid": lambda m, x, y: m.sigmoid(x * 3),
    "abs": lambda m, x, y: m.abs(x),
    "floor": lambda m, x, y: m.floor(x * 2),
    "ceil": lambda m, x, y: m.ceil(x * 2),
    "round": lambda m, x, y: m.round(x * 2),
    "trunc": lambda m, x, y: m.trunc(x * 2),
    "sign": lambda m, x, y: m.sign(m.round(x)),
    "pow": lambda m, x, y: m.pow(m.abs(x) + 0.5, y),
    "pow_int": lambda m, x, y: m.pow(x, m.round(y)),
    "pow2": lambda m, x, y: m.pow(x, 2),
    "maximum": lambda m, x, y: m.maximum(x, y),
    "minimum": lambda m, x, y: m.minimum(x, 0.25),
    "select": lambda m, x, y: m.select(x > y, x - y, y * 2),
    "eq": lambda m, x, y: m.to_float(m.eq(m.round(x), m.round(y))),
    "ne": lambda m, x, y: m.to_float(m.ne(m.round(x), 1.0)),
    "logical_and": lambda m, x, y: m.to_float(m.logical_and(x > 0, y <= 0)),
    "to_float": lambda m, x, y: m.to_float(x >= y),
    "fmod": lambda m, x, y: m.fmod(x * 3, m.abs(y) + 0.5),
    "ops": lambda m, x, y: (-x + 2) * y / (m.abs(y) + 1) - 1 / (x * x + 1),
}


def _inputs(dtype, n=203):
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, n).astype(dtype)
    x[:8] = [0.25, -0.25, 0.75, -0.75, 1.25, -2.5, 0.0, 2.5]  # exact .5 after *2: ties
    y = rng.uniform(-2, 2, n).astype(dtype)
    return x, y


@pytest.mark.jit
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_method_matches_numpy(dtype):
    x, y = _inputs(dtype)
    n = x.size
    bx, by = L.BufferParam("x", dtype, n), L.BufferParam("y", dtype, n)
    outs = [L.BufferParam(f"o_{k}", dtype, n) for k in FORMULAS]
    m = IRMath(dtype)
    kernel = elementwise_kernel((n,), [(bx, (n,)), (by, (n,))],
                                lambda a, b: tuple(f(m, a, b) for f in FORMULAS.values()),
                                outs)
    arrays = {"x": x, "y": y, **{o.name: np.zeros(n, dtype) for o in outs}}
    got = run_kernel(kernel, arrays, f"scalar_{dtype}")
    ref = NumpyMath(dtype)
    rtol = 2e-6 if dtype == "float32" else 1e-13
    for name, f in FORMULAS.items():
        with np.errstate(all="ignore"):
            want = np.asarray(f(ref, x, y), dtype=dtype)
        np.testing.assert_allclose(got[f"o_{name}"], want, rtol=rtol, atol=1e-6 * (dtype ==
                                   "float32") + 1e-13, err_msg=name)


def test_round_is_half_away_from_zero_in_ir_dump():
    m = IRMath("float32")
    e = m.round(L.Var("v", "float32"))
    assert e.dump() == "round(v)"
    assert isinstance(m.maximum(e, 0), L.Bin) and m.maximum(e, 0).b.dtype == "float32"
