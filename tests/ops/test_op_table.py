"""Every user-facing op, from one table: shape inference, dtype inference and symbolic
gradients (finite differences in float64, or MXNet's closed form for loss ops) against the
reference interpreter, on non-square shapes drawn by hypothesis."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_table import CASES, head_grads, reference_forward, reference_gradient

import symgraph as sg
from symgraph.graph import topo_order
from symgraph.ops.registry import all_ops

# Registered non-underscore ops the table does not cover, each with the reason.
EXCLUDED: dict[str, str] = {}

DIMS = st.lists(st.integers(2, 5), min_size=3, max_size=3, unique=True).map(tuple)
SEEDS = st.integers(0, 2**16)
FAST = settings(max_examples=5, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
EPS = 1e-6


def ids(case):
    return case.id


def test_table_covers_every_user_facing_op():
    public = {op.name for op in all_ops() if not op.name.startswith("_")}
    covered = {case.op for case in CASES}
    assert sorted(public - covered - set(EXCLUDED)) == []


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_case_builds_the_op_it_names(case):
    ops = {node.op for node in topo_order(case.symbol().outputs)}
    assert case.op in ops


@pytest.mark.parametrize("case", CASES, ids=ids)
@FAST
@given(dims=DIMS, seed=SEEDS)
def test_infer_shape_matches_reference(case, dims, seed):
    sym = case.symbol()
    shapes = case.shapes(dims)
    given_names = case.infer_from or tuple(shapes)
    arg_shapes, out_shapes, aux_shapes = sym.infer_shape(**{n: shapes[n] for n in given_names})
    names = sym.list_arguments() + sym.list_auxiliary_states()
    assert dict(zip(names, arg_shapes + aux_shapes)) == shapes
    values = case.values(np.random.default_rng(seed), dims)
    outputs = reference_forward(case, sym, values, seed)
    assert out_shapes == [out.shape for out in outputs]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_infer_type_matches_reference(case, dtype):
    sym = case.symbol()
    dims = (2, 3, 4)
    arg_types, out_types, _ = sym.infer_type(**{n: dtype for n in sym.list_arguments()})
    expected = np.dtype(case.out_dtype or dtype)
    assert [np.dtype(t) for t in out_types] == [expected] * len(sym.outputs)
    assert [np.dtype(t) for t in arg_types] == [np.dtype(dtype)] * len(arg_types)
    values = {k: v.astype(dtype) for k, v in case.values(np.random.default_rng(0), dims).items()}
    outputs = reference_forward(case, sym, values)
    assert [out.dtype for out in outputs] == [expected] * len(outputs)


def objective(case, sym, values, hgrads, seed):
    """sum(output * head_grad) over the outputs (the scalar whose gradient is checked)."""
    outputs = reference_forward(case, sym, values, seed)
    heads = [hgrads.get(f"{label}_head_grad") for label in sym.list_outputs()]
    return sum(float(np.sum(out * hg)) for out, hg in zip(outputs, heads) if hg is not None)


def finite_difference(case, sym, values, hgrads, name, seed):
    grad = np.zeros_like(values[name])
    for index in np.ndindex(grad.shape):
        plus, minus = dict(values), dict(values)
        plus[name] = values[name].copy()
        minus[name] = values[name].copy()
        plus[name][index] += EPS
        minus[name][index] -= EPS
        up = objective(case, sym, plus, hgrads, seed)
        down = objective(case, sym, minus, hgrads, seed)
        grad[index] = (up - down) / (2 * EPS)
    return grad


GRAD_CASES = [c for c in CASES if c.differentiate()]


@pytest.mark.parametrize("case", GRAD_CASES, ids=ids)
@FAST
@given(dims=DIMS, seed=SEEDS)
def test_symbolic_gradient(case, dims, seed):
    rng = np.random.default_rng(seed)
    sym = case.symbol()
    values = case.values(rng, dims)
    outputs = reference_forward(case, sym, values, seed)
    hgrads = head_grads(sym, [o.shape for o in outputs], rng)
    grads = reference_gradient(case, sym, values, hgrads, seed)
    names = case.differentiate()
    expected = case.closed_grad(values) if case.closed_grad else {
        name: finite_difference(case, sym, values, hgrads, name, seed) for name in names}
    for name, got in zip(names, grads):
        assert got.shape == values[name].shape, name
        np.testing.assert_allclose(got, expected[name], rtol=1e-5, atol=1e-6, err_msg=name)



@pytest.mark.parametrize("case", GRAD_CASES, ids=ids)
def test_gradient_dtypes_follow_the_arguments(case):
    """With head gradients typed like their outputs (the executor's contract), inference
    carries the arguments' dtype through the whole gradient graph."""
    sym = case.symbol()
    gsym = sg.sym.grad(sym, list(case.differentiate()))
    known = {n: "float64" for n in sym.list_arguments()}
    _, fwd_types, _ = sym.infer_type(**known)
    heads = {f"{label}_head_grad": t for label, t in zip(sym.list_outputs(), fwd_types)}
    inputs = set(gsym.list_arguments())
    feed = {k: v for k, v in {**known, **heads}.items() if k in inputs}
    _, out_types, _ = gsym.infer_type_partial(**feed)
    assert [None if t is None else np.dtype(t) for t in out_types] == [
        np.dtype("float64")] * len(out_types)
