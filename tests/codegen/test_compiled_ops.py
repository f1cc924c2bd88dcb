"""Every op of the op table, compiled: forward and gradients against the reference
interpreter, on hypothesis-drawn non-square shapes, in float32 and float64."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ops"))
from op_table import CASES, head_grads, reference_gradient  # noqa: E402

import symgraph as sg  # noqa: E402
from symgraph.reference import evaluate  # noqa: E402

pytestmark = pytest.mark.jit
DIMS = st.lists(st.integers(2, 5), min_size=3, max_size=3, unique=True).map(tuple)
TOLERANCE = {"float32": 2e-4, "float64": 1e-9}


def bind(case, sym, shapes, dtype):
    wrt = set(case.differentiate())
    reqs = {n: ("write" if n in wrt else "null") for n in sym.list_arguments()}
    return sym.simple_bind(sg.cpu(), grad_req=reqs,
                           type_dict={n: dtype for n in sym.list_arguments()}, **shapes)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))
@given(dims=DIMS, seed=st.integers(0, 2**16))
def test_compiled_op_matches_reference(case, dtype, dims, seed):
    sym = case.symbol()
    values = case.values(np.random.default_rng(seed), dims)
    exe = bind(case, sym, case.shapes(dims), dtype)
    slots = {**exe.arg_dict, **exe.aux_dict}  # aux states (BatchNorm's moving stats) too
    for name, value in values.items():
        slots[name][:] = value
    feed = {n: slots[n].astype(np.float64) for n in values}
    run_seed = exe.random_seed or 0  # Dropout's masks: the seed this forward uses
    outs = exe.forward(is_train=case.is_train)
    refs, _, aux_updates = evaluate(sym.outputs, feed, is_train=case.is_train, seed=run_seed,
                                    keep_all=True)
    tol = TOLERANCE[dtype]
    for out, ref in zip(outs, refs):
        np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)
    for name, array in exe.aux_dict.items():  # updated in training, untouched otherwise
        np.testing.assert_allclose(array, aux_updates.get(name, feed[name]), rtol=tol,
                                   atol=tol, err_msg=name)
    if not exe.grad_dict:
        return
    hgrads = head_grads(sym, [o.shape for o in outs], np.random.default_rng(seed + 1))
    heads = [hgrads.get(f"{label}_head_grad") for label in sym.list_outputs()]
    exe.backward(out_grads=heads if any(h is not None for h in heads) else None)
    grads = reference_gradient(case, sym, feed, hgrads, seed=run_seed)
    for name, ref in zip(case.differentiate(), grads):
        np.testing.assert_allclose(exe.grad_dict[name], ref, rtol=tol * 10, atol=tol * 10)
