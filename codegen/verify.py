"""Static checks of a loop kernel, run before any native code sees it.

Out-of-range indices would corrupt memory silently, so every index whose range can be
bounded from loop extents (affine arithmetic, div/mod by constants) is proven in range.
"""

from __future__ import annotations

from codegen import loop_ir as L
from symgraph.errors import CompileError


def verify(kernel: L.Kernel) -> None:
    """Raise CompileError if ``kernel`` is malformed; return None otherwise."""
    names = [p.name for p in kernel.params]
    if len(set(names)) != len(names):
        raise CompileError(f"kernel {kernel.name}: duplicate buffer names {names}")
    for p in kernel.params:
        if p.dtype not in L.FLOAT_DTYPES + (L.INT,) or int(p.size) < 1:
            raise CompileError(f"kernel {kernel.name}: bad buffer {p.dump()}")
    _Checker(kernel).stmt(kernel.body, {})


class _Checker:
    def __init__(self, kernel):
        self.kernel = kernel
        self.buffers = {p.name: p for p in kernel.params}

    def fail(self, msg):
        raise CompileError(f"kernel {self.kernel.name}: {msg}")

    def stmt(self, s, scope):
        """``scope`` maps bound variable names to (dtype, interval or None)."""
        if isinstance(s, L.Block):
            for t in s.stmts:
                self.stmt(t, scope)
        elif isinstance(s, L.For):
            self._extent(s.extent, s.var)
            self.stmt(s.body, {**scope, s.var.name: (L.INT, (0, s.extent - 1))})
        elif isinstance(s, L.Let):
            dt = self.expr(s.value, scope)
            self.stmt(s.body, {**scope, s.var.name: (dt, None)})
        elif isinstance(s, L.Reduce):
            self._reduce(s, scope)
        elif isinstance(s, L.Store):
            self._access(s.buffer, s.index, scope)
            if self.expr(s.value, scope) != s.buffer.dtype:
                self.fail(f"store of {s.value.dtype} into {s.buffer.dump()}: {s.dump().strip()}")
        else:
            self.fail(f"unknown statement {type(s).__name__}")

    def _extent(self, extent, var):
        if not isinstance(extent, int) or extent < 0:
            self.fail(f"loop {var.name} has bad extent {extent!r}")

    def _reduce(self, s, scope):
        if s.op not in L.REDUCE_OPS:
            self.fail(f"unknown reduction {s.op}")
        self._extent(s.extent, s.loop_var)
        if s.extent < 1:
            self.fail(f"empty reduction over {s.loop_var.name}")
        inner = {**scope, s.loop_var.name: (L.INT, (0, s.extent - 1))}
        dt = self.expr(s.value, inner)
        if dt not in L.FLOAT_DTYPES:
            self.fail(f"reduction of non-float value {s.value.dump()}")
        acc_dt = L.INT if s.op.startswith("arg") else dt
        if s.acc.dtype != acc_dt:
            self.fail(f"accumulator {s.acc.name} must be {acc_dt}, is {s.acc.dtype}")
        self.stmt(s.body, {**scope, s.acc.name: (acc_dt, None)})

    def _access(self, buf, index, scope):
        if self.buffers.get(buf.name) is not buf and not _same(self.buffers.get(buf.name), buf):
            self.fail(f"buffer {buf.name} is not a declared parameter")
        if self.expr(index, scope) != L.INT:
            self.fail(f"index of {buf.name} is not int64: {index.dump()}")
        rng = interval(index, scope)
        if rng is not None and (rng[0] < 0 or rng[1] >= buf.size):
            self.fail(f"index {index.dump()} of {buf.name}[{buf.size}] spans {rng}")

    def expr(self, e, scope) -> str:
        """Return the dtype of ``e`` after checking its operands."""
        if isinstance(e, L.Const):
            return self._dtype(e.dtype)
        if isinstance(e, L.Var):
            if e.name not in scope:
                self.fail(f"unbound variable {e.name}")
            if scope[e.name][0] != e.dtype:
                self.fail(f"variable {e.name} used as {e.dtype}, bound as {scope[e.name][0]}")
            return e.dtype
        if isinstance(e, L.Load):
            self._access(e.buffer, e.index, scope)
            return e.dtype
        if isinstance(e, L.Bin):
            return self._bin(e, scope)
        if isinstance(e, L.Un):
            return self._un(e, scope)
        if isinstance(e, L.Cmp):
            a, b = self.expr(e.a, scope), self.expr(e.b, scope)
            if e.op not in L.CMP_OPS or a != b or a == L.BOOL:
                self.fail(f"bad comparison {e.dump()}")
            return L.BOOL
        if isinstance(e, L.Select):
            c, a, b = (self.expr(x, scope) for x in (e.cond, e.a, e.b))
            if c != L.BOOL or a != b:
                self.fail(f"bad select {e.dump()} ({c}, {a}, {b})")
            return a
        if isinstance(e, L.Cast):
            self.expr(e.a, scope)
            return self._dtype(e.dtype)
        self.fail(f"unknown expression {type(e).__name__}")

    def _dtype(self, dt):
        if dt not in L.DTYPES:
            self.fail(f"unknown dtype {dt}")
        return dt

    def _bin(self, e, scope):
        a, b = self.expr(e.a, scope), self.expr(e.b, scope)
        allowed = {L.INT: L.INT_BIN, L.BOOL: L.BOOL_BIN}.get(a, L.FLOAT_BIN)
        if a != b or e.op not in allowed:
            self.fail(f"bad binary op {e.op} on {a}, {b}: {e.dump()}")
        return a

    def _un(self, e, scope):
        a = self.expr(e.a, scope)
        ok = (a == L.BOOL and e.op == "not") or (a == L.INT and e.op in ("neg", "abs")) or (
            a in L.FLOAT_DTYPES and e.op in L.UN_OPS and e.op != "not")
        if not ok:
            self.fail(f"bad unary op {e.op} on {a}: {e.dump()}")
        return a


def _same(a, b):
    return a is not None and (a.name, a.dtype, a.size) == (b.name, b.dtype, b.size)


def interval(e, scope):
    """Closed integer range of an index expression, or None when it cannot be bounded."""
    if isinstance(e, L.Const) and e.dtype == L.INT:
        return (int(e.value), int(e.value))
    if isinstance(e, L.Var):
        return scope.get(e.name, (None, None))[1]
    if not isinstance(e, L.Bin) or e.dtype != L.INT:
        return None
    a, b = interval(e.a, scope), interval(e.b, scope)
    if a is None or b is None:
        return None
    if e.op in ("add", "sub", "mul", "max", "min"):
        f = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y,
             "max": max, "min": min}[e.op]
        vals = [f(x, y) for x in a for y in b]
        return (min(vals), max(vals))
    if b[0] == b[1] and b[0] > 0 and a[0] >= 0:
        if e.op == "div":
            return (a[0] // b[0], a[1] // b[0])
        if e.op == "mod":
            return (0, min(b[0] - 1, a[1]))
    return None
