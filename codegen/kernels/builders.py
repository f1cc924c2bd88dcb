"""Loop kernels for common shapes: elementwise (broadcasting, multi-output), reductions,
softmax, argmax, copy/transpose.  Op lowering calls these instead of writing loop nests.

Buffers are flat row-major arrays; shapes only exist here, turned into strides.  Adjacent
dimensions that every access traverses contiguously are merged first, so a (32, 10)
elementwise op becomes one 320-long vector loop instead of 32 short scalar-ish ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from codegen import loop_ir as L
from symgraph.errors import CompileError


def strides(shape) -> tuple:
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))


def broadcast_strides(in_shape, out_shape) -> tuple:
    """Element strides of ``in_shape`` viewed as ``out_shape`` (numpy rules, 0 = broadcast)."""
    in_shape, out_shape = tuple(in_shape), tuple(out_shape)
    if len(in_shape) > len(out_shape):
        raise CompileError(f"cannot broadcast {in_shape} to {out_shape}")
    padded = (1,) * (len(out_shape) - len(in_shape)) + in_shape
    result = []
    for d_in, d_out, st in zip(padded, out_shape, strides(padded)):
        if d_in not in (1, d_out):
            raise CompileError(f"cannot broadcast {in_shape} to {out_shape}")
        result.append(0 if d_in == 1 and d_out != 1 else st)
    return tuple(result)


def merge_dims(shape, stride_sets):
    """Merge adjacent dims when all stride sets are contiguous across them."""
    dims = [(d, [s[i] for s in stride_sets]) for i, d in enumerate(shape) if d != 1]
    if not dims:
        return (1,), [(0,) for _ in stride_sets]
    merged = [dims[0]]
    for d, st in dims[1:]:
        pd, pst = merged[-1]
        if all(a == b * d for a, b in zip(pst, st)):
            merged[-1] = (pd * d, st)
        else:
            merged.append((d, st))
    shape_out = tuple(d for d, _ in merged)
    return shape_out, [tuple(st[k] for _, st in merged) for k in range(len(stride_sets))]


def loop_vars(ndim, prefix="i"):
    return [L.Var(f"{prefix}{d}") for d in range(ndim)]


def affine(vars_, strides_, base=0) -> L.Expr:
    expr = L.Const(base, L.INT)
    terms = [(v if s == 1 else v * s) for v, s in zip(vars_, strides_) if s != 0]
    for t in terms:
        expr = t if (isinstance(expr, L.Const) and expr.value == 0) else expr + t
    return expr


def nest(vars_, shape, body) -> L.Stmt:
    for v, d in reversed(list(zip(vars_, shape))):
        body = L.For(v, d, body)
    return body


def elementwise_kernel(out_shape, inputs: Sequence[tuple], formula: Callable,
                       outputs: Sequence[L.BufferParam], scalars: Sequence[L.BufferParam] = (),
                       noalias: bool = False) -> L.Kernel:
    """``outputs[k][idx] = formula(*inputs[idx], *scalars)[k]`` over ``out_shape``.

    ``inputs`` are ``(buffer, shape)`` pairs broadcast numpy-style to ``out_shape``;
    ``scalars`` are 1-element buffers read at run time (learning rates, ...);
    ``formula`` returns one expression or a tuple (one per output, e.g. fused optimizer
    updates writing weight and state).  Params order: inputs, scalars, outputs.
    """
    out_shape = tuple(int(d) for d in out_shape)
    in_strides = [broadcast_strides(shape, out_shape) for _, shape in inputs]
    shape, merged = merge_dims(out_shape, in_strides + [strides(out_shape)])
    vars_ = loop_vars(len(shape))
    loads = [L.Load(buf, affine(vars_, st)) for (buf, _), st in zip(inputs, merged)]
    scal = [L.Load(b, L.Const(0, L.INT)) for b in scalars]
    values = formula(*loads, *scal)
    values = values if isinstance(values, (tuple, list)) else (values,)
    if len(values) != len(outputs):
        raise CompileError(f"formula gave {len(values)} values for {len(outputs)} outputs")
    out_index = affine(vars_, merged[-1])
    stores = [L.Store(o, out_index, coerce(v, o.dtype)) for o, v in zip(outputs, values)]
    params = _unique([b for b, _ in inputs] + list(scalars) + list(outputs))
    return L.make_kernel(params, nest(vars_, shape, L.block(*stores)), noalias=noalias)


def coerce(value, dtype):
    """``value`` as an expression of ``dtype`` (what storing it to such a buffer does)."""
    value = L.as_expr(value, dtype=dtype)
    return value if value.dtype == dtype else L.Cast(value, dtype)


def _unique(bufs):
    seen = {}
    for b in bufs:
        if b.name in seen and seen[b.name] is not b:
            raise CompileError(f"two different buffers named {b.name}")
        seen.setdefault(b.name, b)
    return list(seen.values())


def reduce_kernel(in_shape, axes, op: str, inp: L.BufferParam, out: L.BufferParam,
                  pre: Callable | None = None) -> L.Kernel:
    """Reduce ``inp`` (shape ``in_shape``) over ``axes`` with sum/mean/max/min into ``out``
    (the kept dims, row-major).  ``pre`` maps each element first (e.g. square)."""
    in_shape = tuple(int(d) for d in in_shape)
    axes = sorted({a % len(in_shape) for a in axes}) if in_shape else []
    if op not in ("sum", "mean", "max", "min"):
        raise CompileError(f"unknown reduction {op}")
    count = math.prod(in_shape[a] for a in axes)
    dims = _merge_reduce_dims(in_shape, axes)
    red_op = "sum" if op == "mean" else op
    scale = 1.0 / count if op == "mean" else None
    if len([d for d in dims if d[1]]) <= 1 and dims[-1][1]:
        body = _row_reduce(dims, red_op, inp, out, pre, scale)
    elif dims[-1][1]:
        body = _kept_outer_reduce(dims, red_op, inp, out, pre, scale)
    else:
        body = _general_reduce(dims, red_op, inp, out, pre, scale)
    return L.make_kernel([inp, out], body)


def _merge_reduce_dims(shape, axes):
    dims = [(d, i in axes) for i, d in enumerate(shape) if d != 1]
    merged = []
    for d, red in dims:
        if merged and merged[-1][1] == red:
            merged[-1] = (merged[-1][0] * d, red)
        else:
            merged.append((d, red))
    return merged or [(1, True)]


def _mapped(load, pre):
    return pre(load) if pre else load


def _row_reduce(dims, op, inp, out, pre, scale):
    """All reduced elements are contiguous innermost: one Reduce per output element."""
    outer = [d for d, _ in dims[:-1]]
    n = dims[-1][0]
    vars_ = loop_vars(len(outer))
    j = L.Var("r0")
    acc = L.Var("acc", inp.dtype)
    row = affine(vars_, strides(outer))
    value = _mapped(L.Load(inp, row * n + j if outer else j), pre)
    result = acc * L.Const(scale, inp.dtype) if scale else acc
    red = L.Reduce(acc, op, j, n, value, L.Store(out, row, result))
    return nest(vars_, outer, red)


def _kept_outer_reduce(dims, op, inp, out, pre, scale):
    """Reduced runs around kept ones, the last reduced (a convolution's bias gradient sums
    (N, C, H*W) over N and H*W): kept dims outermost, so each output element belongs to
    one outer iteration (the loop splits over threads, codegen/partition.py), and the
    contiguous last run as one vectorized Reduce added in per outer reduced index, where
    a store per element along it ran as scalar code (1.1 ms for LeNet's conv1 bias)."""
    shape = [d for d, _ in dims]
    vars_ = loop_vars(len(shape))
    kept = [(v, d) for v, (d, r) in zip(vars_, dims) if not r]
    reduced = [(v, d) for v, (d, r) in zip(vars_, dims[:-1]) if r]
    oidx = affine([v for v, _ in kept], strides([d for _, d in kept]))
    value = _mapped(L.Load(inp, affine(vars_, strides(shape))), pre)
    acc = L.Var("acc", inp.dtype)
    comb = {"sum": lambda a, b: a + b, "max": lambda a, b: L.Bin("max", a, b),
            "min": lambda a, b: L.Bin("min", a, b)}[op]
    init = L.Const({"sum": 0.0, "max": -math.inf, "min": math.inf}[op], out.dtype)
    add = L.Reduce(acc, op, vars_[-1], shape[-1], value,
                   L.Store(out, oidx, comb(L.Load(out, oidx), acc)))
    inner = nest([v for v, _ in reduced], [d for _, d in reduced], add)
    final = L.Load(out, oidx) * L.Const(scale, out.dtype) if scale else L.Load(out, oidx)
    body = L.Block((L.Store(out, oidx, init), inner, L.Store(out, oidx, final))) if scale \
        else L.Block((L.Store(out, oidx, init), inner))
    return nest([v for v, _ in kept], [d for _, d in kept], body)


def _general_reduce(dims, op, inp, out, pre, scale):
    """Initialize ``out`` then accumulate in input order (vectorizes along kept dims)."""
    kept = [d for d, r in dims if not r]
    n_out = math.prod(kept)
    o = L.Var("o0")
    init = {"sum": 0.0, "max": -math.inf, "min": math.inf}[op]
    first = L.For(o, n_out, L.Store(out, o, L.Const(init, out.dtype)))
    shape = [d for d, _ in dims]
    vars_ = loop_vars(len(shape))
    kept_vars = [v for v, (_, r) in zip(vars_, dims) if not r]
    oidx = affine(kept_vars, strides(kept))
    value = _mapped(L.Load(inp, affine(vars_, strides(shape))), pre)
    comb = {"sum": lambda a, b: a + b, "max": lambda a, b: L.Bin("max", a, b),
            "min": lambda a, b: L.Bin("min", a, b)}[op]
    acc = nest(vars_, shape, L.Store(out, oidx, comb(L.Load(out, oidx), value)))
    stmts = [first, acc]
    if scale:
        stmts.append(L.For(o, n_out, L.Store(out, o, L.Load(out, o) * L.Const(scale, out.dtype))))
    return L.Block(tuple(stmts))
