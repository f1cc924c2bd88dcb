"""Loop IR construction, naming, dumping and verification (no native code)."""

import pytest

from codegen import loop_ir as L
from symgraph.errors import CompileError

X = L.BufferParam("x", "float32", 8)
Y = L.BufferParam("y", "float32", 8)
I = L.Var("i")


def _body(scale=2.0):
    return L.For(I, 8, L.Store(Y, I, L.Load(X, I) * scale + 1))


def test_equal_bodies_get_equal_names_and_readable_dump():
    a, b = L.make_kernel([X, Y], _body()), L.make_kernel([X, Y], _body())
    c = L.make_kernel([X, Y], _body(3.0))
    assert a.name == b.name != c.name and a.name.startswith("k_") and len(a.name) == 18
    assert "y[i] = ((x[i] * 2.0f) + 1.0f)" in a.dump()


def test_eq_is_identity_and_nodes_hash():
    e1, e2 = L.Load(X, I), L.Load(X, I)
    assert (e1 == e2) is False and e1 == e1
    assert len({e1, e2}) == 2
    assert isinstance(e1 < e2, L.Cmp) and isinstance(-e1, L.Un)


@pytest.mark.parametrize("body,msg", [
    (L.Store(Y, L.Var("j"), L.Const(1.0, "float32")), "unbound"),
    (L.For(I, 9, L.Store(Y, I, L.Const(1.0, "float32"))), "spans"),
    (L.For(I, 8, L.Store(Y, I, L.Const(1.0, "float64"))), "store of float64"),
    (L.For(I, 8, L.Store(L.BufferParam("z", "float32", 8), I, L.Load(X, I))), "not a declared"),
    (L.For(I, 8, L.Store(Y, L.Cast(I, "float32"), L.Load(X, I))), "not int64"),
    (L.Store(Y, L.Const(8, "int64"), L.Load(X, L.Const(0, "int64"))), "spans"),
    (L.For(I, 8, L.Store(Y, I, L.Load(X, I) + L.Const(1, "float64"))), "bad binary"),
])
def test_verify_rejects(body, msg):
    with pytest.raises(CompileError, match=msg):
        L.make_kernel([X, Y], body)


def test_index_math_interval_with_div_mod():
    j = L.Var("j")
    body = L.For(j, 16, L.Store(Y, j // 2, L.Load(X, j % 8)))
    L.make_kernel([X, Y], body)
