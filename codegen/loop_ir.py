"""Loop-level IR: the contract between op lowering and the native emitter.

Nodes are frozen dataclasses with ``eq=False`` so ``==`` stays identity and nodes stay
hashable (formulas compare with ``m.eq``).  Loop variables are referred to by *name*:
two ``Var("i0")`` objects denote the same variable, which lets builders create
expressions without threading variable objects around.  Extents are compile-time ints.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

FLOAT_DTYPES = ("float32", "float64")
INT = "int64"
BOOL = "bool"
DTYPES = FLOAT_DTYPES + (INT, BOOL)

FLOAT_BIN = ("add", "sub", "mul", "div", "max", "min", "pow", "mod")
INT_BIN = ("add", "sub", "mul", "div", "mod", "max", "min", "xor", "shr", "band")
BOOL_BIN = ("and", "or")
UN_OPS = ("neg", "exp", "log", "log1p", "sqrt", "tanh", "sigmoid", "abs", "floor", "ceil",
          "round", "trunc", "sign", "not")
CMP_OPS = ("lt", "le", "gt", "ge", "eq", "ne")
REDUCE_OPS = ("sum", "max", "min", "argmax", "argmin")
_SYM = {"add": "+", "sub": "-", "mul": "*", "div": "/", "mod": "%", "and": "&&", "or": "||",
        "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}


def itemsize(dtype: str) -> int:
    return {"float32": 4, "float64": 8, "int64": 8, "bool": 1}[dtype]


def as_expr(value, like: Expr | None = None, dtype: str | None = None) -> Expr:
    """Lift a Python number to a Const of the other operand's dtype (so ``x * 2`` works)."""
    if isinstance(value, Expr):
        return value
    if isinstance(value, bool):
        return Const(bool(value), BOOL)
    dt = dtype or (like.dtype if like is not None and like.dtype != BOOL else None)
    if dt is None:
        dt = INT if isinstance(value, int) else "float64"
    return Const(value, dt)


class Expr:
    """Operator overloading only; subclasses are the dataclasses below."""

    __slots__ = ()

    def _bin(self, op, other, swap=False):
        o = as_expr(other, self)
        return Bin(op, o, self) if swap else Bin(op, self, o)

    def __add__(self, o):
        return self._bin("add", o)

    def __radd__(self, o):
        return self._bin("add", o, True)

    def __sub__(self, o):
        return self._bin("sub", o)

    def __rsub__(self, o):
        return self._bin("sub", o, True)

    def __mul__(self, o):
        return self._bin("mul", o)

    def __rmul__(self, o):
        return self._bin("mul", o, True)

    def __truediv__(self, o):
        return self._bin("div", o)

    def __rtruediv__(self, o):
        return self._bin("div", o, True)

    def __floordiv__(self, o):
        return self._bin("div", o)

    def __mod__(self, o):
        return self._bin("mod", o)

    def __neg__(self):
        return Un("neg", self)

    def __lt__(self, o):
        return Cmp("lt", self, as_expr(o, self))

    def __le__(self, o):
        return Cmp("le", self, as_expr(o, self))

    def __gt__(self, o):
        return Cmp("gt", self, as_expr(o, self))

    def __ge__(self, o):
        return Cmp("ge", self, as_expr(o, self))

    __hash__ = object.__hash__


@dataclass(frozen=True, eq=False)
class BufferParam:
    """A typed flat array argument of a kernel; ``size`` counts elements."""

    name: str
    dtype: str
    size: int

    def dump(self) -> str:
        return f"{self.dtype} {self.name}[{self.size}]"


@dataclass(frozen=True, eq=False)
class Const(Expr):
    value: float | int | bool
    dtype: str

    def dump(self) -> str:
        if self.dtype == BOOL:
            return "true" if self.value else "false"
        if self.dtype == INT:
            return str(int(self.value))
        return f"{float(self.value)!r}{'f' if self.dtype == 'float32' else ''}"


@dataclass(frozen=True, eq=False)
class Var(Expr):
    """A loop index (int64) or a scalar bound by Reduce/Let; identified by name."""

    name: str
    dtype: str = INT

    def dump(self) -> str:
        return self.name


@dataclass(frozen=True, eq=False)
class Load(Expr):
    buffer: BufferParam
    index: Expr

    @property
    def dtype(self) -> str:
        return self.buffer.dtype

    def dump(self) -> str:
        return f"{self.buffer.name}[{self.index.dump()}]"


@dataclass(frozen=True, eq=False)
class Bin(Expr):
    op: str
    a: Expr
    b: Expr

    @property
    def dtype(self) -> str:
        return self.a.dtype

    def dump(self) -> str:
        if self.op in _SYM:
            return f"({self.a.dump()} {_SYM[self.op]} {self.b.dump()})"
        return f"{self.op}({self.a.dump()}, {self.b.dump()})"


@dataclass(frozen=True, eq=False)
class Un(Expr):
    op: str
    a: Expr

    @property
    def dtype(self) -> str:
        return self.a.dtype

    def dump(self) -> str:
        return f"-{self.a.dump()}" if self.op == "neg" else f"{self.op}({self.a.dump()})"


@dataclass(frozen=True, eq=False)
class Cmp(Expr):
    op: str
    a: Expr
    b: Expr
    dtype = BOOL

    def dump(self) -> str:
        return f"({self.a.dump()} {_SYM[self.op]} {self.b.dump()})"


@dataclass(frozen=True, eq=False)
class Select(Expr):
    cond: Expr
    a: Expr
    b: Expr

    @property
    def dtype(self) -> str:
        return self.a.dtype

    def dump(self) -> str:
        return f"select({self.cond.dump()}, {self.a.dump()}, {self.b.dump()})"


@dataclass(frozen=True, eq=False)
class Cast(Expr):
    a: Expr
    dtype: str

    def dump(self) -> str:
        return f"{self.dtype}({self.a.dump()})"


class Stmt:
    __slots__ = ()


@dataclass(frozen=True, eq=False)
class Store(Stmt):
    buffer: BufferParam
    index: Expr
    value: Expr

    def dump(self, ind: str = "") -> str:
        return f"{ind}{self.buffer.name}[{self.index.dump()}] = {self.value.dump()}\n"


@dataclass(frozen=True, eq=False)
class Block(Stmt):
    stmts: tuple

    def dump(self, ind: str = "") -> str:
        return "".join(s.dump(ind) for s in self.stmts)


@dataclass(frozen=True, eq=False)
class For(Stmt):
    """``for var in range(extent)``; the emitter vectorizes it when it is innermost and
    every access is unit-stride or broadcast, unless ``vectorize`` is False."""

    var: Var
    extent: int
    body: Stmt
    vectorize: bool = True

    def dump(self, ind: str = "") -> str:
        flag = "" if self.vectorize else " novec"
        return f"{ind}for {self.var.name} in 0..{self.extent}{flag}:\n{self.body.dump(ind + '  ')}"


@dataclass(frozen=True, eq=False)
class Let(Stmt):
    """Bind a scalar once (e.g. a learning rate loaded from the arena) for ``body``."""

    var: Var
    value: Expr
    body: Stmt

    def dump(self, ind: str = "") -> str:
        return f"{ind}let {self.var.name} = {self.value.dump()}:\n{self.body.dump(ind + '  ')}"


@dataclass(frozen=True, eq=False)
class Reduce(Stmt):
    """``acc = op(value for loop_var in range(extent))``, then run ``body`` with ``acc`` bound.

    argmax/argmin bind an int64 index (first extremum wins).  A sum along the loop is
    vectorized with a vector accumulator, i.e. reassociated: this is the only place the
    emitter changes floating-point evaluation order.
    """

    acc: Var
    op: str
    loop_var: Var
    extent: int
    value: Expr
    body: Stmt

    def dump(self, ind: str = "") -> str:
        head = (f"{ind}{self.acc.name} = {self.op}({self.value.dump()} "
                f"for {self.loop_var.name} in 0..{self.extent}):\n")
        return head + self.body.dump(ind + "  ")


@dataclass(frozen=True, eq=False)
class Kernel:
    """A loop kernel; build with :func:`make_kernel` so the name is the content hash."""

    name: str
    params: tuple
    body: Stmt
    noalias: bool = False
    fastmath: bool = False

    def canonical(self) -> str:
        flags = f"noalias={self.noalias} fastmath={self.fastmath}"
        params = ", ".join(p.dump() for p in self.params)
        return f"kernel({params}) {flags}\n{self.body.dump('  ')}"

    def dump(self) -> str:
        return f"{self.name}: {self.canonical()}"


def content_name(text: str) -> str:
    return "k_" + hashlib.sha256(text.encode()).hexdigest()[:16]


def make_kernel(params, body, noalias: bool = False, fastmath: bool = False) -> Kernel:
    """Build and verify a kernel whose name is ``k_<sha256(canonical dump)[:16]>``."""
    if isinstance(body, (list, tuple)):
        body = Block(tuple(body))
    proto = Kernel("", tuple(params), body, noalias, fastmath)
    kernel = Kernel(content_name(proto.canonical()), proto.params, body, noalias, fastmath)
    if kernel.name not in _VERIFIED:
        from codegen.verify import verify

        verify(kernel)
        if len(_VERIFIED) >= _MAX_VERIFIED:
            _VERIFIED.clear()
        _VERIFIED.add(kernel.name)
    return kernel


#: names made by make_kernel that passed verification: the name hashes the kernel's full
#: text, which programs already take as its identity (one function per name), and layers
#: of one shape rebuild the same kernels many times per graph, so each name is proven once
_VERIFIED: set = set()
_MAX_VERIFIED = 1 << 16


def block(*stmts) -> Stmt:
    return stmts[0] if len(stmts) == 1 else Block(tuple(stmts))


def verify(kernel: Kernel) -> None:
    """Check bound variables, declared buffers, integer indices, dtypes and index ranges."""
    from codegen.verify import verify as _verify

    _verify(kernel)
