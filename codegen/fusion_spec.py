"""What the fusion pass and the memory plan need to know about a lowered call.

A kernel is opaque loop IR; to merge two kernels the pass needs the *formula* and the
logical buffers behind them. Lowering attaches one of these specs to the calls it can
describe: an elementwise loop nest (:class:`ElementwiseSpec`), a matrix multiply
(:class:`MatmulSpec`) or a softmax over contiguous rows (:class:`SoftmaxSpec`). Calls
without a spec are never fused and count as readers of every buffer they touch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from codegen import loop_ir as L
from codegen.emit.vectorize import children


@dataclass(frozen=True, eq=False)
class ElementwiseSpec:
    """``out_keys[k][i] = formula(*inputs[i])[k]`` over ``out_shape``.

    ``formula`` takes one loop-IR expression per input (already bound to its math
    namespace) and returns one expression or a tuple, one per output. ``in_shapes`` are
    the shapes each input is broadcast from, numpy-style.
    """

    in_keys: tuple
    in_shapes: tuple
    out_keys: tuple
    out_shape: tuple
    out_dtypes: tuple
    formula: Callable

    def values(self, *xs) -> tuple:
        result = self.formula(*xs)
        return tuple(result) if isinstance(result, (tuple, list)) else (result,)

    def elementwise_inputs(self) -> tuple:
        """Inputs read at exactly the index the output is written (no broadcasting).

        Broadcastable shapes of equal element count only differ by unit dimensions, so
        their flat indices coincide: those inputs may share the output's memory.
        """
        size = math.prod(self.out_shape)
        return tuple(k for k, s in zip(self.in_keys, self.in_shapes) if math.prod(s) == size)

    @property
    def last_output(self):
        """The output stored last in each iteration: the only one that may overwrite an
        input in place, since every load of the iteration happens before its store."""
        return self.out_keys[-1]


@dataclass(frozen=True, eq=False)
class MatmulSpec:
    """``c(M, N) = op(a) @ op(b) [+ bias]``, the arguments of ``matmul_kernel``; with
    ``batch`` > 1, that many products at element ``steps`` (a, b, c) apart."""

    m: int
    n: int
    k: int
    trans_a: bool
    trans_b: bool
    dtype: str
    bias: str  # "none", "col" or "row"
    a: int
    b: int
    bias_key: int | None
    c: int
    batch: int = 1
    steps: tuple = (0, 0, 0)
    prologue: object = None  # the loop kernel making each item's op(B) (see matmul_kernel)

    @property
    def size(self) -> int:
        """Elements of C over the batch."""
        return self.batch * self.m * self.n

    @property
    def contiguous(self) -> bool:
        """The products' Cs are one (batch, M, N) array (an epilogue's index space)."""
        return self.batch == 1 or self.steps[2] == self.m * self.n

    @property
    def input_keys(self) -> tuple:
        keys = (self.a, self.b)
        return keys if self.bias_key is None else keys + (self.bias_key,)


@dataclass(frozen=True, eq=False)
class SoftmaxSpec:
    """``out = (log-)softmax(in)`` over ``rows`` contiguous rows of ``cols``: lets the
    fusion pass move a row softmax into the epilogue of the matmul producing ``in``."""

    in_key: int
    out_key: int
    rows: int
    cols: int
    log: bool


def expr_vars(expr, out: set) -> set:
    """Names of the ``Var`` leaves of an expression tree."""
    if isinstance(expr, L.Var):
        out.add(expr.name)
    for child in children(expr):
        expr_vars(child, out)
    return out


def expr_size(expr, limit: int, weights: dict | None = None) -> int:
    """Node count of an expression tree, stopping early once above ``limit``.

    Fused formulas are trees, so a value used twice is copied twice; the count keeps a
    fused group from growing exponentially. ``weights`` gives the size a ``Var`` stands
    for (a value that will be inlined there).
    """
    count, stack = 0, [expr]
    while stack and count <= limit:
        node = stack.pop()
        if isinstance(node, L.Var) and weights:
            count += weights.get(node.name, 1)
            continue
        count += 1
        stack.extend(children(node))
    return count


def used_inputs(formula: Callable, dtypes) -> tuple:
    """Indices of the inputs a formula actually reads (e.g. relu's gradient ignores x).

    The formula is built on placeholder variables and the placeholders that survive in
    the expressions are the inputs it needs; the others need not be loaded, kept alive
    or computed before it.
    """
    placeholders = [L.Var(f"x{i}", dtype) for i, dtype in enumerate(dtypes)]
    result = formula(*placeholders)
    values = result if isinstance(result, (tuple, list)) else (result,)
    names: set = set()
    for value in values:
        if isinstance(value, L.Expr):
            expr_vars(value, names)
    return tuple(i for i in range(len(placeholders)) if f"x{i}" in names)
