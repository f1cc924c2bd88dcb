"""Accuracy and special values of the vector exp/log/tanh/sigmoid/log1p vs numpy."""

import numpy as np
import pytest
from cg_helpers import run_kernel

from codegen import loop_ir as L
from codegen.emit.scalar_ir import IRMath
from codegen.kernels.builders import elementwise_kernel

pytestmark = pytest.mark.jit
FUNCS = ["exp", "log", "tanh", "sigmoid", "log1p"]
RTOL = {"float32": 1e-6, "float64": 1e-14}


def _inputs(dtype):
    rng = np.random.default_rng(7)
    hi = 80 if dtype == "float32" else 700
    wide = rng.uniform(-hi, hi, 3001)
    small = rng.uniform(-1, 1, 3001) * 10.0 ** rng.uniform(-12, 0, 3001)
    pos = 10.0 ** rng.uniform(-30, 30, 3001)
    special = [0.0, -0.0, 1.0, -1.0, 50.0, -50.0, 1000.0, -1000.0, np.inf, -np.inf, np.nan]
    return np.concatenate([wide, small, pos, special]).astype(dtype)


@pytest.fixture(scope="module", params=["float32", "float64"])
def results(request):
    dtype = request.param
    x = _inputs(dtype)
    n = x.size
    bx = L.BufferParam("x", dtype, n)
    outs = [L.BufferParam(f"o_{f}", dtype, n) for f in FUNCS]
    m = IRMath(dtype)
    k = elementwise_kernel((n,), [(bx, (n,))],
                           lambda v: tuple(getattr(m, f)(v) for f in FUNCS), outs)
    got = run_kernel(k, {"x": x, **{o.name: np.zeros(n, dtype) for o in outs}}, "vecmath")
    return dtype, x, got


def _reference(f, x):
    with np.errstate(all="ignore"):
        xd = x.astype(np.float64)
        if f == "sigmoid":
            return 1.0 / (1.0 + np.exp(-xd))
        return getattr(np, f)(xd)


@pytest.mark.parametrize("f", FUNCS)
def test_accuracy_in_normal_range(results, f):
    dtype, x, got = results
    want = _reference(f, x)
    info = np.finfo(dtype)
    ok = np.isfinite(want) & (np.abs(want) >= info.tiny) & (np.abs(want) <= info.max)
    rel = np.abs(got[f"o_{f}"][ok].astype(np.float64) - want[ok]) / np.abs(want[ok])
    assert rel.max() < RTOL[dtype], (f, float(rel.max()), x[ok][rel.argmax()])


@pytest.mark.parametrize("f", FUNCS)
def test_special_values_match_numpy(results, f):
    dtype, x, got = results
    with np.errstate(all="ignore"):
        want = _reference(f, x).astype(dtype)
    nonfinite = ~np.isfinite(want) | ~np.isfinite(x) | (x == 0) | (want == 0)
    np.testing.assert_array_equal(got[f"o_{f}"][nonfinite], want[nonfinite])


def test_saturation(results):
    dtype, x, got = results
    idx = {v: int(np.where(x == v)[0][0]) for v in (1000.0, -1000.0, 50.0, -50.0)}
    assert got["o_exp"][idx[-1000.0]] == 0 and got["o_exp"][idx[1000.0]] == np.inf
    assert got["o_tanh"][idx[50.0]] == 1 and got["o_tanh"][idx[-50.0]] == -1
    assert got["o_sigmoid"][idx[1000.0]] == 1 and got["o_sigmoid"][idx[-1000.0]] == 0
    assert not np.isnan(got["o_sigmoid"][np.isfinite(x) | np.isinf(x)]).any()
