"""Which kernel calls run as chunks on the thread pool (codegen/threadpool.py).

A loop kernel splits along the variables of its top-level loops: chunk ``t`` of ``T`` runs
iterations ``[t*E//T, (t+1)*E//T)`` of each top-level loop (of extent E), in order.
That is only correct when no chunk touches memory another chunk writes, which is proven
here rather than assumed: every access of a buffer the kernel stores must give each
element one owning iteration (see :func:`_owned_stride`), and all accesses of that buffer,
in every top-level loop, must hand the same elements to the same chunk. Buffers that may
alias a stored one (in-place elementwise outputs) must follow the same rule.
Each element is then computed by exactly the loop iterations, in exactly the order, of
the serial kernel: results are bitwise those of one thread.

Matmuls split their rows of C the same way inside the emitter (``MatmulKernel.chunks``);
kernels too small to gain from a hand-off (about 1-5 us) stay serial.
"""

from __future__ import annotations

from dataclasses import dataclass

from codegen import loop_ir as L
from codegen.emit.vectorize import children, coeff
from codegen.verify import interval

#: innermost iterations below which a loop kernel stays on the calling thread
MIN_LOOP_WORK = 1 << 15
#: multiply-adds below which a matmul stays on the calling thread (about 10 us on a core)
MIN_MATMUL_WORK = 1 << 19
#: stands in the alias list of a buffer that another one overlaps at a different start
UNALIGNED = "<unaligned>"


def matmul_chunks(M: int, N: int, K: int, threads: int) -> int:
    """Row chunks of a matmul: one per thread when there are rows and work to share."""
    if threads <= 1 or M * N * K < MIN_MATMUL_WORK or M < 2 * threads:
        return 1
    return threads


def top_loops(body) -> list | None:
    """The top-level loops of a kernel body, or None when anything else is at the top."""
    stmts = body.stmts if isinstance(body, L.Block) else (body,)
    if not stmts or not all(isinstance(s, L.For) for s in stmts):
        return None
    return list(stmts)


def loop_chunks(kernel, threads: int, aliases: dict) -> int:
    """Chunks of a loop kernel call: ``threads`` when its top-level loops can be split
    (see the module docstring), else 1. ``aliases`` maps a buffer's name to the names of
    the other buffers that overlap it in this call (UNALIGNED: at another start)."""
    if threads <= 1 or not isinstance(kernel, L.Kernel):
        return 1
    loops = top_loops(kernel.body)
    if loops is None or min(s.extent for s in loops) < threads:
        return 1
    if sum(_work(s) for s in loops) < MIN_LOOP_WORK:
        return 1
    accesses: dict = {}
    for s in loops:
        owner = Owner(s.var.name, s.extent, threads)
        if not _collect(s.body, {s.var.name: (L.INT, (0, 0))}, owner, accesses):
            return 1
    stored = {name for name, acc in accesses.items() if acc["stored"]}
    if any(UNALIGNED in aliases.get(name, ()) for name in stored):
        return 1
    checked = stored | {a for name in stored for a in aliases.get(name, ())}
    splits: dict = {}
    for name in checked:
        for split in accesses.get(name, {"splits": ()})["splits"]:
            if split is None:
                return 1
            splits.setdefault(_group(name, aliases), set()).add(split)
    if any(len(s) != 1 for s in splits.values()):
        return 1
    return threads


@dataclass(frozen=True)
class Owner:
    """The loop variable a chunk divides: its name, extent and the chunk count."""

    var: str
    extent: int
    chunks: int

    def split(self, stride: int) -> tuple:
        """How an access of this stride divides its buffer: the period and each chunk's
        first element within it. Accesses agree on who owns an element iff equal."""
        starts = tuple(t * self.extent // self.chunks * stride for t in range(self.chunks + 1))
        return stride * self.extent, starts


def _group(name, aliases):
    """Aliasing buffers share one split: key them by the stored buffer they overlap."""
    for stored, others in aliases.items():
        if name == stored or name in others:
            return stored
    return name


def _work(s) -> int:
    """Innermost iterations of a statement."""
    if isinstance(s, L.Block):
        return sum(_work(t) for t in s.stmts)
    if isinstance(s, (L.For, L.Reduce)):
        return s.extent * max(1, _work(s.body))
    if isinstance(s, L.Let):
        return _work(s.body)
    return 1


def _collect(s, scope, owner, out) -> bool:
    """Record how each access divides its buffer among chunks (None: not provably by
    its iteration of ``owner.var``); False when a statement cannot be analysed."""
    if isinstance(s, L.Block):
        return all(_collect(t, scope, owner, out) for t in s.stmts)
    if isinstance(s, L.For):
        inner = {**scope, s.var.name: (L.INT, (0, s.extent - 1))}
        return _collect(s.body, inner, owner, out)
    if isinstance(s, L.Let):
        _expr(s.value, scope, owner, out)
        return _collect(s.body, {**scope, s.var.name: (s.var.dtype, None)}, owner, out)
    if isinstance(s, L.Reduce):
        inner = {**scope, s.loop_var.name: (L.INT, (0, s.extent - 1))}
        _expr(s.value, inner, owner, out)
        return _collect(s.body, {**scope, s.acc.name: (s.acc.dtype, None)}, owner, out)
    if isinstance(s, L.Store):
        _access(s.buffer, s.index, scope, owner, out, stored=True)
        _expr(s.value, scope, owner, out)
        return True
    return False


def _expr(e, scope, owner, out) -> None:
    if isinstance(e, L.Load):
        _access(e.buffer, e.index, scope, owner, out, stored=False)
    for c in children(e):
        _expr(c, scope, owner, out)


def _access(buffer, index, scope, owner, out, stored) -> None:
    entry = out.setdefault(buffer.name, {"stored": False, "splits": []})
    entry["stored"] = entry["stored"] or stored
    stride = _owned_stride(index, scope, owner)
    entry["splits"].append(None if stride is None else owner.split(stride))


def _owned_stride(index, scope, owner):
    """S when ``index`` = ``var*S + low + high`` for every value of the other loop
    variables, with ``low`` in [0, S) and ``high`` a multiple of the period S*extent:
    then ``(index mod period) // S`` is the iteration, so iterations never share an
    element (im2col's column blocks ``row*B*P + n*P + p`` are of this form). Else None."""
    stride = coeff(index, owner.var)
    if not stride or stride < 0:
        return None
    period = stride * owner.extent
    zero = {name: (dt, (0, 0) if rng is not None else None) for name, (dt, rng) in
            scope.items()}
    base = interval(index, zero)
    if base is None:
        return None
    lo = hi = base[0] % period
    for name, (_, rng) in scope.items():
        c = coeff(index, name) if name != owner.var else 0
        if c is None or (c and rng is None):
            return None
        if c % period:
            lo, hi = lo + min(c * rng[0], c * rng[1]), hi + max(c * rng[0], c * rng[1])
    return stride if 0 <= lo and hi < stride else None
