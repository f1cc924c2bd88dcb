"""Lowering: each graph node's ``OpDef.lower(p, ctx)`` turns into loop-IR kernel calls.

The :class:`LowerContext` is the whole vocabulary an op may use. Kernels are built on
named buffer parameters (``in0``, ``out0``, ``tmp0`` ...); each call records which logical
buffer (an integer key) each parameter is bound to, and the memory plan later turns keys
into arena offsets. ``alias()`` records that an output shares its input's memory (pure
reshapes), so no kernel runs for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from codegen import loop_ir as L
from codegen.emit.scalar_ir import IRMath
from codegen.fusion_spec import ElementwiseSpec, MatmulSpec, used_inputs
from codegen.kernels import builders, builders_nn
from codegen.kernels import lower_kernels as K
from symgraph.errors import CompileError

SCRATCH = "scratch"


def scratch_keys(kernel, table) -> tuple:
    """Fresh buffers for the trailing ``scratch*`` parameters of ``kernel``: its working
    memory (a matmul's pack panel) lives for one call only, so the memory plan overlaps
    it with other temporaries, and it is in the executor's arena, never in the generated
    code (threads share that)."""
    return tuple(table.new(p.size, p.dtype) for p in kernel.params
                 if p.name.startswith(SCRATCH))


@dataclass(frozen=True)
class LogicalCall:
    """A kernel and the logical buffer key bound to each of its parameters."""

    kernel: object
    keys: tuple
    node_name: str
    spec: object = None  # Elementwise/Matmul/SoftmaxSpec when fusion may rewrite the call
    names: tuple = ()  # every graph node a fused call computes, in graph order
    mutates: tuple = ()  # keys of inputs the kernel updates in place (op's mutate_inputs)

    @property
    def node_names(self) -> tuple:
        return self.names or (self.node_name,)


@dataclass
class BufferTable:
    """Logical buffers: key -> (element count, dtype); aliases point at their source."""

    sizes: dict = field(default_factory=dict)
    dtypes: dict = field(default_factory=dict)
    alias_of: dict = field(default_factory=dict)

    def new(self, size: int, dtype: str) -> int:
        key = len(self.sizes)
        self.sizes[key] = int(size)
        self.dtypes[key] = dtype
        return key

    def seed_key(self) -> int:
        """The run-time random seed (one int64 in the arena), created on first use."""
        if "seed" not in self.__dict__:
            self.__dict__["seed"] = self.new(1, "int64")
        return self.__dict__["seed"]

    def root(self, key: int) -> int:
        while key in self.alias_of:
            key = self.alias_of[key]
        return key


class LowerContext:
    """What ``OpDef.lower`` sees for one node."""

    def __init__(self, node, in_keys, out_keys, in_shapes, out_shapes, dtype, is_train,
                 table: BufferTable, sink: list):
        self.node = node
        self.params = node.params
        self.in_keys, self.out_keys = list(in_keys), list(out_keys)
        self.in_shapes = [tuple(s) for s in in_shapes]
        self.out_shapes = [tuple(s) for s in out_shapes]
        self.dtype = dtype
        self.is_train = is_train
        self.math = IRMath(dtype)
        self._table = table
        self._sink = sink

    # ---- buffers ----------------------------------------------------------------------
    def in_buf(self, i: int) -> L.BufferParam:
        return L.BufferParam(f"in{i}", self._table.dtypes[self.in_keys[i]],
                             math.prod(self.in_shapes[i]))

    def out_buf(self, i: int = 0) -> L.BufferParam:
        return L.BufferParam(f"out{i}", self._table.dtypes[self.out_keys[i]],
                             math.prod(self.out_shapes[i]))

    def emit(self, kernel, bindings: dict | None = None, spec=None, mutates=()) -> None:
        """Record a kernel; parameters bind by name (``in<i>``/``out<i>``) or ``bindings``;
        unbound ``scratch*`` parameters get a temporary of their own (see scratch_keys).

        ``mutates`` lists the inputs (by index) the kernel writes in place; each must be one
        the op declares in ``mutate_inputs`` (aux states), so fusion, scheduling and the
        memory plan treat the call as a write to that input's persistent slot.
        """
        declared = set(self.node.opdef.mutate_inputs(self.params))
        if set(mutates) - declared:
            raise CompileError(f"{self.node.op} node '{self.node.name}': kernel writes inputs "
                               f"{sorted(set(mutates) - declared)} in place, but the op only "
                               f"declares {sorted(declared)} in mutate_inputs")
        keys = []
        for param in kernel.params:
            if bindings and param.name in bindings:
                keys.append(bindings[param.name])
            elif param.name.startswith(SCRATCH):
                keys.append(self.temp(param.size, param.dtype))
            else:
                keys.append(self._key_for(param.name))
        mutated = tuple(self.in_keys[i] for i in mutates)
        self._sink.append(LogicalCall(kernel, tuple(keys), self.node.name, spec,
                                      mutates=mutated))

    def temp(self, size: int, dtype: str | None = None) -> int:
        """A scratch buffer key for this node (the memory plan reuses it afterwards)."""
        return self._table.new(size, dtype or self.dtype)

    def _key_for(self, name: str) -> int:
        if name.startswith("in"):
            return self.in_keys[int(name[2:])]
        if name.startswith("out"):
            return self.out_keys[int(name[3:])]
        raise CompileError(f"{self.node.name}: kernel parameter {name!r} is not in*/out*")

    # ---- vocabulary -------------------------------------------------------------------
    def elementwise(self, formula, inputs=None, same_size=False):
        """One loop nest over output 0; inputs the formula never reads are dropped, so
        they are neither loaded nor kept alive for it (relu's gradient only needs y)."""
        chosen = list(range(len(self.in_shapes)) if inputs is None else inputs)
        out_shape = self.out_shapes[0]

        def bound(*xs):
            return formula(self.math, *xs)

        dtypes = [self._table.dtypes[self.in_keys[i]] for i in chosen]
        used = used_inputs(bound, dtypes)
        if len(used) < len(chosen):
            bound = _on_used(bound, used, dtypes)
            chosen = [chosen[u] for u in used]
        shapes = [out_shape if same_size else self.in_shapes[i] for i in chosen]
        ins = [(self.in_buf(i), shape) for i, shape in zip(chosen, shapes)]
        kernel = builders.elementwise_kernel(out_shape, ins, bound, [self.out_buf(0)])
        spec = ElementwiseSpec(tuple(self.in_keys[i] for i in chosen), tuple(shapes),
                               (self.out_keys[0],), out_shape,
                               (self._table.dtypes[self.out_keys[0]],), bound)
        self.emit(kernel, spec=spec)

    def matmul(self, a=0, b=1, trans_a=False, trans_b=False, bias=None, flatten_a=False):
        a_shape, b_shape = self.in_shapes[a], self.in_shapes[b]
        a2 = _as_2d(a_shape, flatten_a, trans_a)
        b2 = (math.prod(b_shape[:-1]), b_shape[-1]) if trans_b else (
            b_shape[0], math.prod(b_shape[1:]))
        kernel = K.matmul(self.dtype, a2, b2, trans_a, trans_b, bias is not None)
        bindings = {"a": self.in_keys[a], "b": self.in_keys[b], "c": self.out_keys[0]}
        if bias is not None:
            bindings["bias"] = self.in_keys[bias]
        m, k = (a2[1], a2[0]) if trans_a else a2
        spec = MatmulSpec(m, b2[0] if trans_b else b2[1], k, trans_a, trans_b, self.dtype,
                          "none" if bias is None else "col", bindings["a"], bindings["b"],
                          bindings.get("bias"), bindings["c"])
        self.emit(kernel, bindings, spec)

    def reduce(self, kind, axes, input=0):
        shape = self.in_shapes[input]
        if not axes:
            self.emit(builders_nn.copy_kernel(math.prod(shape), self.in_buf(input),
                                              self.out_buf(0)))
            return
        self.emit(builders.reduce_kernel(shape, axes, kind, self.in_buf(input), self.out_buf(0)))

    def reduce_grad(self, kind, axes):
        self.emit(K.reduce_grad(kind, axes, self.in_shapes[1], self.in_buf(0), self.in_buf(1),
                                self.in_buf(2), self.out_buf(0), self.math))

    def softmax(self, axis, view=None, log=False, temperature=None):
        shape = tuple(view) if view is not None else self.in_shapes[0]
        kernel = K.softmax(shape, axis, self.in_buf(0), self.out_buf(0), log, temperature)
        self.emit(kernel, spec=K.softmax_spec(shape, axis, self.in_keys[0], self.out_keys[0],
                                              log, temperature))

    def softmax_output_grad(self, p, rows, classes, inner):
        self.emit(K.softmax_output_grad(p, rows, classes, inner, self.in_buf(0),
                                        self.in_buf(1), self.out_buf(0)))

    def make_loss_grad(self, p):
        self.emit(K.make_loss_grad(p, self.in_shapes[0], self.in_buf(0), self.out_buf(0)))

    def argmax(self, axis, op="argmax"):
        shape = self.in_shapes[0]
        if axis is None:
            shape, axis = (math.prod(shape),), 0
        self.emit(builders_nn.argmax_kernel(shape, axis, self.in_buf(0), self.out_buf(0), op))

    def transpose(self, axes):
        self.emit(builders_nn.transpose_kernel(self.in_shapes[0], axes, self.in_buf(0),
                                               self.out_buf(0)))

    def copy(self):
        self.emit(builders_nn.copy_kernel(math.prod(self.in_shapes[0]), self.in_buf(0),
                                          self.out_buf(0)))

    def alias(self):
        """Output 0 is input 0 viewed with another shape: no kernel, shared memory."""
        self._table.alias_of[self.out_keys[0]] = self.in_keys[0]

    def dropout(self, p):
        """Dropout's two outputs: data * mask and the mask (ones when inactive)."""
        from codegen.kernels.dropout_kernel import dropout_kernel
        from symgraph.ops.random_ops import dropout_active, dropout_threshold

        data_shape, mask_shape = self.in_shapes[0], self.out_shapes[1]
        if not dropout_active(p, self.is_train):
            self.copy()
            self.emit(builders.elementwise_kernel(mask_shape, [], lambda: L.Const(
                1.0, self.dtype), [self.out_buf(1)]))
            return
        threshold = dropout_threshold(p.p)
        scale = 0.0 if p.p >= 1 else 1.0 / (1.0 - p.p)
        seed = L.BufferParam("seed", L.INT, 1)
        mask = L.BufferParam("out1", self.dtype, math.prod(mask_shape))
        make_mask, apply = dropout_kernel(
            math.prod(mask_shape), data_shape, mask_shape, self.node.name, threshold, scale,
            L.BufferParam("in0", self.dtype, math.prod(data_shape)), seed,
            self.out_buf(0), mask)
        seed_key = self._table.seed_key()
        self.emit(make_mask, {"seed": seed_key, "out1": self.out_keys[1]})
        self.emit(apply)

    def kernel(self, build):
        ins = [self.in_buf(i) for i in range(len(self.in_shapes))]
        outs = [self.out_buf(i) for i in range(len(self.out_shapes))]
        self.emit(build(ins, outs))


def _on_used(formula, used, dtypes):
    """``formula`` called with only the inputs it reads (the others become zeros)."""
    def pruned(*xs):
        full = [L.Const(0.0, dtype) for dtype in dtypes]
        for index, value in zip(used, xs):
            full[index] = value
        return formula(*full)

    return pruned


def _as_2d(shape, flatten, trans):
    if len(shape) == 2:
        return tuple(shape)
    if trans:
        return (shape[0], math.prod(shape[1:]))
    return (shape[0], math.prod(shape[1:])) if flatten else (math.prod(shape[:-1]), shape[-1])
