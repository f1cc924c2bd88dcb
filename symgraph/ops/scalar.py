"""The scalar-math protocol: how elementwise formulas are written once and run twice.

An elementwise op (and every optimizer update rule) is a plain Python function
``f(m, *values, **params)`` that only uses arithmetic operators (``+ - * /``, unary
``-``, ``< <= > >=``) on its values and the functions of a *math namespace* ``m``.
Two namespaces implement the same methods:

* :data:`NUMPY_MATH` below evaluates the formula on numpy arrays: the reference.
* ``codegen.emit.scalar_ir.IRMath`` builds loop-IR expressions: the compiled kernel.

So the numpy oracle and the native kernel cannot drift apart: they are the same
formula. Equality tests are ``m.eq``/``m.ne`` because ``==`` must stay identity on
IR nodes. A comparison yields a mask usable by ``m.select``; ``m.to_float`` turns a
mask into 0.0/1.0 of the kernel dtype.
"""

from __future__ import annotations

import numpy as np


class NumpyMath:
    """Reference namespace: every method works elementwise on numpy arrays or scalars."""

    name = "numpy"

    def __init__(self, dtype=np.float64):
        self.dtype = np.dtype(dtype)

    def const(self, value):
        return self.dtype.type(value)

    def exp(self, x):
        return np.exp(x)

    def log(self, x):
        return np.log(x)

    def log1p(self, x):
        return np.log1p(x)

    def sqrt(self, x):
        return np.sqrt(x)

    def tanh(self, x):
        return np.tanh(x)

    def sigmoid(self, x):
        return 1.0 / (1.0 + np.exp(-x))

    def abs(self, x):
        return np.abs(x)

    def floor(self, x):
        return np.floor(x)

    def ceil(self, x):
        return np.ceil(x)

    def round(self, x):
        """Half away from zero, as MXNet and C's roundf do (numpy rounds half to even)."""
        return np.sign(x) * np.floor(np.abs(x) + 0.5)

    def trunc(self, x):
        return np.trunc(x)

    def sign(self, x):
        return np.sign(x)

    def pow(self, x, y):
        return np.power(x, y)

    def maximum(self, x, y):
        return np.maximum(x, y)

    def minimum(self, x, y):
        return np.minimum(x, y)

    def select(self, cond, a, b):
        return np.where(cond, a, b)

    def eq(self, x, y):
        return np.equal(x, y)

    def ne(self, x, y):
        return np.not_equal(x, y)

    def logical_and(self, x, y):
        return np.logical_and(x, y)

    def to_float(self, mask):
        return np.asarray(mask).astype(self.dtype)

    def fmod(self, x, y):
        """Python-style modulo (sign of the divisor), as MXNet's ``_mod``."""
        return x - np.floor(x / y) * y


NUMPY_MATH = NumpyMath()


def evaluate(formula, dtype, *arrays, **params):
    """Run a scalar formula on numpy arrays and return a result of ``dtype``."""
    math = NumpyMath(dtype)
    with np.errstate(all="ignore"):
        out = formula(math, *[np.asarray(a, dtype=dtype) for a in arrays], **params)
    return np.asarray(out, dtype=dtype)
