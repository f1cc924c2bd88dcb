"""Expression emission shared by loop kernels and the matmul epilogue.

Values are ``(llvm_value, is_vector)`` pairs: inside a vectorized loop a value that does
not depend on the loop variable stays scalar (uniform) and is splatted only where it
meets a vector, so loop-invariant work is not repeated per lane.
"""

from __future__ import annotations

from llvmlite import ir

from codegen import loop_ir as L
from codegen.emit import vecmath, vectorize
from symgraph.errors import CompileError

I64 = ir.IntType(64)
_TYPES = {"float32": ir.FloatType(), "float64": ir.DoubleType(), "int64": I64,
          "bool": ir.IntType(1)}
_FLOAT_INTRINSIC = {"sqrt": "sqrt", "abs": "fabs", "floor": "floor", "ceil": "ceil",
                    "round": "round", "trunc": "trunc"}
_FBIN = {"add": "fadd", "sub": "fsub", "mul": "fmul", "div": "fdiv"}
_IBIN = {"add": "add", "sub": "sub", "mul": "mul", "div": "sdiv", "mod": "srem",
         "xor": "xor", "shr": "lshr", "band": "and_"}
_CMP = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}


def ir_type(dtype: str):
    return _TYPES[dtype]


class ValueEmitter:
    """Subclasses provide ``pointer(buffer, index_value)``."""

    def __init__(self, builder: ir.IRBuilder, fastmath: bool = False):
        self.b = builder
        self.flags = ("fast",) if fastmath else ()
        self.width = 0
        self.vec_var = None

    def splat(self, v, width=None):
        w = width or self.width
        vty = ir.VectorType(v.type, w)
        if isinstance(v, ir.Constant):
            return ir.Constant(vty, [v.constant] * w)
        one = self.b.insert_element(ir.Constant(vty, None), v, ir.Constant(ir.IntType(32), 0))
        return self.b.shuffle_vector(one, ir.Constant(vty, None),
                                     ir.Constant(ir.VectorType(ir.IntType(32), w), [0] * w))

    def index(self, e, env):
        """Scalar int64 value of an index expression (lane 0 inside a vector loop)."""
        saved, self.width = self.width, 0
        try:
            v, _ = self.expr(e, env)
        finally:
            self.width = saved
        return v

    def expr(self, e, env):
        if isinstance(e, L.Const):
            return ir.Constant(ir_type(e.dtype), e.value), False
        if isinstance(e, L.Var):
            return self.var(e, env)
        if isinstance(e, L.Load):
            return self.load(e, env)
        if isinstance(e, L.Cast):
            return self.cast(e, env)
        args = [self.expr(c, env) for c in vectorize.children(e)]
        is_vec = any(v for _, v in args)
        vals = [self.splat(a) if is_vec and not v else a for a, v in args]
        if isinstance(e, L.Bin):
            return self.binop(e.op, e.dtype, *vals), is_vec
        if isinstance(e, L.Un):
            return self.unop(e.op, e.dtype, vals[0]), is_vec
        if isinstance(e, L.Cmp):
            return self.compare(e.op, e.a.dtype, *vals), is_vec
        if isinstance(e, L.Select):
            return self.b.select(*vals), is_vec
        raise CompileError(f"cannot emit expression {type(e).__name__}")

    def var(self, e, env):
        if e.name not in env:
            raise CompileError(f"unbound variable {e.name}")
        v, is_vec = env[e.name]
        if self.width and e.name == self.vec_var:
            lanes = ir.Constant(ir.VectorType(I64, self.width), list(range(self.width)))
            return self.b.add(self.splat(v), lanes), True
        return v, is_vec

    def load(self, e, env):
        vec = self.width and vectorize.coeff(e.index, self.vec_var) != 0
        ptr = self.pointer(e.buffer, self.index(e.index, env))
        align = L.itemsize(e.buffer.dtype)
        if vec:
            vty = ir.VectorType(ir_type(e.buffer.dtype), self.width)
            return self.b.load(ptr, typ=vty, align=align), True
        return self.b.load(ptr, typ=ir_type(e.buffer.dtype), align=align), False

    def cast(self, e, env):
        v, is_vec = self.expr(e.a, env)
        src, dst = e.a.dtype, e.dtype
        ty = ir_type(dst)
        ty = ir.VectorType(ty, self.width) if is_vec else ty
        if src == dst:
            return v, is_vec
        fl = L.FLOAT_DTYPES
        if src in fl and dst in fl:
            op = self.b.fpext if dst == "float64" else self.b.fptrunc
        elif src in fl:
            op = self.fptosi_sat if dst == L.INT else None
        elif dst in fl:
            op = self.b.uitofp if src == L.BOOL else self.b.sitofp
        else:
            op = self.b.zext if src == L.BOOL else None
        if op is None:
            v = self.compare("ne", src, v, ir.Constant(v.type, None))
            return v, is_vec
        return op(v, ty), is_vec

    def fptosi_sat(self, v, ty):
        """Float to int64 defined everywhere (plain fptosi is poison for NaN, inf and
        values out of range): truncates, saturates at the int64 range, NaN gives 0."""
        name = f"llvm.fptosi.sat.{vecmath.mangle(ty)}.{vecmath.mangle(v.type)}"
        module = self.b.module
        fn = module.globals.get(name) or ir.Function(module, ir.FunctionType(ty, [v.type]),
                                                     name=name)
        return self.b.call(fn, [v])

    def call_intrinsic(self, name, *args):
        ty = args[0].type
        fn = vecmath.intrinsic(self.b.module, name, ty, [ty] * len(args))
        return self.b.call(fn, args)

    def binop(self, op, dtype, a, b):
        if dtype in L.FLOAT_DTYPES:
            return self.fbin(op, a, b)
        if dtype == L.BOOL:
            return self.b.and_(a, b) if op == "and" else self.b.or_(a, b)
        if op in ("max", "min"):
            return self.b.select(self.b.icmp_signed(">" if op == "max" else "<", a, b), a, b)
        return getattr(self.b, _IBIN[op])(a, b)

    def fbin(self, op, a, b):
        if op in _FBIN:
            return getattr(self.b, _FBIN[op])(a, b, flags=self.flags)
        if op in ("max", "min"):
            return self.call_intrinsic("maximum" if op == "max" else "minimum", a, b)
        if op == "pow":
            return vecmath.call(self.b, "pow", a, b)
        if op == "mod":
            q = self.call_intrinsic("floor", self.b.fdiv(a, b))
            return self.b.fsub(a, self.b.fmul(q, b))
        raise CompileError(f"unknown float op {op}")

    def unop(self, op, dtype, a):
        if dtype == L.BOOL:
            return self.b.not_(a)
        if dtype == L.INT:
            neg = self.b.neg(a)
            return neg if op == "neg" else self.b.select(self.b.icmp_signed("<", a, neg), neg, a)
        if op == "neg":
            return self.b.fneg(a)
        if op in _FLOAT_INTRINSIC:
            return self.call_intrinsic(_FLOAT_INTRINSIC[op], a)
        if op == "sign":
            zero, one = ir.Constant(a.type, None), _fconst(a.type, 1.0)
            neg = self.b.select(self.b.fcmp_ordered("<", a, zero), self.b.fneg(one), a)
            return self.b.select(self.b.fcmp_ordered(">", a, zero), one, neg)
        return vecmath.call(self.b, op, a)

    def compare(self, op, dtype, a, b):
        if dtype in L.FLOAT_DTYPES:
            if op == "ne":
                return self.b.fcmp_unordered("!=", a, b)
            return self.b.fcmp_ordered(_CMP[op], a, b)
        return self.b.icmp_signed(_CMP[op], a, b)


def _fconst(ty, value):
    if isinstance(ty, ir.VectorType):
        return ir.Constant(ty, [value] * ty.count)
    return ir.Constant(ty, value)
