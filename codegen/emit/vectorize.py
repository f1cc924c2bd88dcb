"""Which loops the emitter may turn into explicit ``<W x T>`` vector code.

A loop qualifies when its body has no nested loop, every load index is affine in the loop
variable with stride 0 (broadcast) or 1, every store has stride 1, and a buffer that is
both stored and loaded is only read at the very index it writes (so no iteration reads
what a previous lane writes).  Anything else runs as scalar code.
"""

from __future__ import annotations

from codegen import loop_ir as L


def coeff(e: L.Expr, var: str):
    """Coefficient of ``var`` in an affine int expression; None when not affine."""
    if isinstance(e, L.Const):
        return 0
    if isinstance(e, L.Var):
        return 1 if e.name == var else 0
    if isinstance(e, L.Bin) and e.dtype == L.INT:
        a, b = coeff(e.a, var), coeff(e.b, var)
        if a is None or b is None:
            return None
        if e.op in ("add", "sub"):
            return a + b if e.op == "add" else a - b
        if e.op == "mul":
            if a == 0 and b == 0:
                return 0
            const, other = (e.a, b) if a == 0 else (e.b, a)
            return other * int(const.value) if isinstance(const, L.Const) else None
        return 0 if a == 0 and b == 0 else None
    return None if uses_var(e, var) else 0


def uses_var(e, var: str) -> bool:
    if isinstance(e, L.Var):
        return e.name == var
    return any(uses_var(c, var) for c in children(e))


def children(e):
    if isinstance(e, L.Load):
        return (e.index,)
    if isinstance(e, (L.Bin, L.Cmp)):
        return (e.a, e.b)
    if isinstance(e, (L.Un, L.Cast)):
        return (e.a,)
    if isinstance(e, L.Select):
        return (e.cond, e.a, e.b)
    return ()


def loads(e, out):
    if isinstance(e, L.Load):
        out.append(e)
    for c in children(e):
        loads(c, out)
    return out


def _collect(s, lds, sts, inner):
    """Gather loads, stores and inner Let names; False if the body has a nested loop."""
    if isinstance(s, L.Block):
        return all(_collect(t, lds, sts, inner) for t in s.stmts)
    if isinstance(s, L.Let):
        loads(s.value, lds)
        inner.add(s.var.name)
        return _collect(s.body, lds, sts, inner)
    if isinstance(s, L.Store):
        sts.append(s)
        loads(s.value, lds)
        return True
    return False


def _index_ok(index, var, inner, allowed):
    if any(uses_var(index, n) for n in inner):
        return False
    return coeff(index, var) in allowed


def body_vectorizable(body: L.Stmt, var: str) -> bool:
    lds, sts, inner = [], [], set()
    if not _collect(body, lds, sts, inner):
        return False
    if not all(_index_ok(s.index, var, inner, (1,)) for s in sts):
        return False
    if not all(_index_ok(ld.index, var, inner, (0, 1)) for ld in lds):
        return False
    written = {s.buffer.name: s.index.dump() for s in sts}
    if len(written) != len(sts):
        return False
    return all(ld.buffer.name not in written or ld.index.dump() == written[ld.buffer.name]
               for ld in lds)


def value_vectorizable(value: L.Expr, var: str) -> bool:
    """A Reduce value: every load unit-stride or broadcast along ``var``."""
    return all(coeff(ld.index, var) in (0, 1) for ld in loads(value, []))
