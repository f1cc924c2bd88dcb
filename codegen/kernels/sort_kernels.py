"""Sorting along an axis by ranks: every element's position in the sorted order is the
number of elements that come before it (ties: the lower index first, a stable order).

Ranks need no data-dependent control flow, so the kernel is plain loop IR whose inner
count vectorizes; it costs n^2 comparisons per row, which suits the short rows topk and
sort see in models (class scores, proposals). A rank is always in [0, n) and the ranks of
a row are distinct: the scatter by rank fills the row exactly, whatever the values (NaNs
included).
"""

from __future__ import annotations

from dataclasses import dataclass

from codegen import loop_ir as L


@dataclass(frozen=True)
class SortShape:
    """Rows of ``n`` elements at stride ``inner``; the first ``k`` of each are kept."""

    outer: int
    n: int
    inner: int
    k: int
    ascend: bool


def _rank(s: SortShape, inp, o, i, r):
    """Float count of the elements of row (o, r) ordered before element i. NaNs come after
    every number in both directions (numpy's order, which the reference uses) and tie with
    each other, so the ranks of a row are always a permutation of [0, n)."""
    j = L.Var("j")
    xi = L.Load(inp, (o * s.n + i) * s.inner + r)
    xj = L.Load(inp, (o * s.n + j) * s.inner + r)
    nan_i, nan_j = L.Cmp("ne", xi, xi), L.Cmp("ne", xj, xj)  # "ne" is unordered: NaN != NaN
    ordered = L.Bin("or", nan_i, L.Cmp("lt" if s.ascend else "gt", xj, xi))
    strictly = L.Bin("and", L.Cmp("eq", xj, xj), ordered)
    same = L.Bin("or", L.Cmp("eq", xj, xi), L.Bin("and", nan_i, nan_j))
    tie_first = L.Bin("and", same, L.Cmp("lt", j, i))
    before = L.Cast(L.Bin("or", strictly, tie_first), inp.dtype)
    return j, before


def rank_kernel(s: SortShape, inp, values=None, indices=None, mask=None):
    """Scatter each element (``values``) and/or its index (``indices``) to its rank, or
    write ``mask`` = 1.0 where the rank is below k. Value/index buffers hold whole rows
    (n per row): a top-k copies their first k entries afterwards (:func:`head_kernel`)."""
    o, r, i = L.Var("o"), L.Var("r"), L.Var("i")
    count, rank = L.Var("count", inp.dtype), L.Var("rank")
    j, before = _rank(s, inp, o, i, r)
    stores = []
    if values is not None:
        stores.append(L.Store(values, (o * s.n + rank) * s.inner + r,
                              _as(L.Load(inp, (o * s.n + i) * s.inner + r), values.dtype)))
    if indices is not None:
        stores.append(L.Store(indices, (o * s.n + rank) * s.inner + r,
                              L.Cast(i, indices.dtype)))
    if mask is not None:
        hit = L.Cmp("lt", rank, L.Const(s.k, L.INT))
        stores.append(L.Store(mask, (o * s.n + i) * s.inner + r, L.Cast(hit, mask.dtype)))
    body = L.Let(rank, L.Cast(count, L.INT), L.block(*stores))
    per_element = L.Reduce(count, "sum", j, s.n, before, body)
    nest = L.For(o, s.outer, L.For(r, s.inner, L.For(i, s.n, per_element)))
    params = [inp] + [b for b in (values, indices, mask) if b is not None]
    return L.make_kernel(params, nest)


def head_kernel(s: SortShape, full, out):
    """``out`` = the first k entries of every row of ``full``."""
    o, q, r = L.Var("o"), L.Var("q"), L.Var("r")
    copy = L.Store(out, (o * s.k + q) * s.inner + r, L.Load(full, (o * s.n + q) * s.inner + r))
    return L.make_kernel([full, out], L.For(o, s.outer, L.For(q, s.k, L.For(r, s.inner, copy))))


def _as(value, dtype):
    return value if value.dtype == dtype else L.Cast(value, dtype)
