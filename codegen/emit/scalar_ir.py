"""IRMath: the scalar-math protocol (symgraph/ops/scalar.py) producing loop-IR expressions.

The same formula evaluated with NumpyMath is the reference, so every method here mirrors
NumpyMath's semantics exactly (round half away from zero, Python-style fmod, NaN rules).
"""

from __future__ import annotations

from codegen import loop_ir as L


class IRMath:
    name = "ir"

    def __init__(self, dtype: str = "float32"):
        self.dtype = str(dtype)

    def _e(self, x) -> L.Expr:
        return L.as_expr(x, dtype=self.dtype)

    def _pair(self, x, y):
        if isinstance(x, L.Expr) and not isinstance(y, L.Expr):
            return x, L.as_expr(y, x)
        if isinstance(y, L.Expr) and not isinstance(x, L.Expr):
            return L.as_expr(x, y), y
        return self._e(x), self._e(y)

    def const(self, value):
        return L.Const(float(value), self.dtype)

    def _un(op):  # noqa: N805 - method factory used at class-definition time
        def method(self, x):
            return L.Un(op, self._e(x))

        method.__name__ = op
        return method

    exp, log, log1p, sqrt = _un("exp"), _un("log"), _un("log1p"), _un("sqrt")
    tanh, sigmoid, abs = _un("tanh"), _un("sigmoid"), _un("abs")
    floor, ceil, round = _un("floor"), _un("ceil"), _un("round")
    trunc, sign = _un("trunc"), _un("sign")

    def pow(self, x, y):
        x, y = self._pair(x, y)
        if isinstance(y, L.Const) and y.value == 2:
            return x * x
        if isinstance(y, L.Const) and y.value == 0.5:
            return L.Un("sqrt", x)
        return L.Bin("pow", x, y)

    def maximum(self, x, y):
        return L.Bin("max", *self._pair(x, y))

    def minimum(self, x, y):
        return L.Bin("min", *self._pair(x, y))

    def select(self, cond, a, b):
        a, b = self._pair(a, b)
        return L.Select(cond, a, b)

    def eq(self, x, y):
        return L.Cmp("eq", *self._pair(x, y))

    def ne(self, x, y):
        return L.Cmp("ne", *self._pair(x, y))

    def logical_and(self, x, y):
        return L.Bin("and", x, y)

    def to_float(self, mask):
        return L.Cast(mask, self.dtype)

    def fmod(self, x, y):
        """Python-style modulo (sign of the divisor), as NumpyMath.fmod."""
        x, y = self._pair(x, y)
        return x - L.Un("floor", x / y) * y

    del _un
