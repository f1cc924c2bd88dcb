"""Fusion of lowered calls: elementwise chains into one loop nest, and an elementwise
chain into the epilogue of the matrix multiply that feeds it.

It runs on :class:`LogicalCall` lists (one per phase) after lowering, because there every
pure reshape has already become a buffer alias: ``dot -> reshape_like -> relu_grad`` is a
matmul whose output buffer is read by one elementwise call, with nothing in between.
Only calls carrying a spec (see ``fusion_spec``) take part; any other call is a reader of
every buffer it touches.

Grouping walks each phase in order. An elementwise call joins the open groups that
produced its inputs when it iterates over the same output shape and reads their values
element for element (no broadcasting). A group closes as soon as a call outside it reads
one of its values or may overwrite one of its inputs, because the fused kernel runs at
the position of its last member: a reader in between would see the value too late. A
value of a group is stored only when something outside the group needs it (a later call,
another phase, or a persistent slot such as an output or gradient); the rest live in
registers.

A matmul whose output is read only by one group, whose only stored value is one
(M, N) result and whose other inputs are full (M, N) buffers, becomes one matmul kernel
with the group's formula as epilogue.

A matmul whose output only a row softmax reads (rows = the matmul's rows, no log, no
temperature) becomes one matmul kernel that stores the probabilities, when a whole row
fits in the micro-kernel's register tile: the logits never touch memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from codegen import jit
from codegen import loop_ir as L
from codegen.fusion_spec import ElementwiseSpec, MatmulSpec, SoftmaxSpec, expr_size
from codegen.kernels import builders
from codegen.kernels.matmul import matmul_kernel, softmax_fits
from codegen.lower import LogicalCall, scratch_keys

MAX_EXPR_NODES = 400  # above this a fused value is stored instead of growing the tree


@dataclass(eq=False)
class _Group:
    """Elementwise calls of one phase that will become one kernel."""

    out_shape: tuple
    members: list = field(default_factory=list)  # call indices, in program order
    produced: set = field(default_factory=set)  # root keys written by members
    inputs: set = field(default_factory=set)  # root keys read by members
    sizes: dict = field(default_factory=dict)  # root -> expression node count
    open: bool = True


@dataclass(frozen=True)
class _Input:
    """An input of a fused kernel: a buffer and the shape it is broadcast from."""

    key: int
    root: int
    shape: tuple


def fuse(segments, table, keep) -> list[list[LogicalCall]]:
    """Fuse each phase segment; ``keep`` are root keys that must be stored (persistent).

    ``segments`` are the phases that run in one sequence on one arena (training forward,
    then backward); a value read by a later segment is stored like any other escaping
    value.
    """
    readers = _readers(segments, table)
    return [_fuse_segment(_Phase(index, calls, table, frozenset(keep), readers))
            for index, calls in enumerate(segments)]


@dataclass(frozen=True)
class _Phase:
    """One segment being fused and what is known about the whole program."""

    index: int
    calls: list
    table: object
    keep: frozenset
    readers: dict  # root -> {(segment, call index)} over every segment

    def escapes(self, root, group) -> bool:
        """Whether a value is needed by something other than the group's members."""
        members = {(self.index, i) for i in group.members}
        return root in self.keep or bool(self.readers.get(root, set()) - members)

    def spec(self, index):
        return self.calls[index].spec


def _reads(call, table) -> list[int]:
    spec = call.spec
    if isinstance(spec, ElementwiseSpec):
        keys = spec.in_keys
    elif isinstance(spec, MatmulSpec):
        keys = spec.input_keys
    else:
        keys = call.keys
    return [table.root(k) for k in keys]


_READ_ONLY_PARAMS = ("a", "b", "bias")


def _writes(call, table) -> list[int]:
    """Buffers a call may write: its ``out*``/``c``/scratch parameters, by convention of
    the kernel builders (inputs are ``in*``, matmul operands ``a``/``b``/``bias``), and the
    inputs it declares it updates in place (``LogicalCall.mutates``)."""
    written = [table.root(k) for p, k in zip(call.kernel.params, call.keys)
               if not (p.name.startswith("in") or p.name in _READ_ONLY_PARAMS)]
    return written + [table.root(k) for k in call.mutates]


def _readers(segments, table) -> dict:
    out: dict = {}
    for seg, calls in enumerate(segments):
        for index, call in enumerate(calls):
            for root in _reads(call, table):
                out.setdefault(root, set()).add((seg, index))
    return out


def _fuse_segment(phase) -> list[LogicalCall]:
    groups = _group_elementwise(phase.calls, phase.table)
    fused_at, absorbed = {}, set()
    for group in groups:
        stored = _stored(phase, group)
        source = _epilogue_source(phase, group, stored)
        if source is not None:
            absorbed.add(source)
            fused_at[group.members[-1]] = _epilogue_call(phase, group, source, stored)
        elif len(group.members) > 1:
            fused_at[group.members[-1]] = _elementwise_call(phase, group, stored)
    _softmax_epilogues(phase, fused_at, absorbed)
    replaced = {i for g in groups if g.members[-1] in fused_at for i in g.members}
    out = []
    for index, call in enumerate(phase.calls):
        if index in fused_at:
            out.append(fused_at[index])
        elif index not in absorbed and index not in replaced:
            out.append(call)
    return out


# ---- grouping ---------------------------------------------------------------------------
def _group_elementwise(calls, table) -> list[_Group]:
    owner: dict = {}  # root -> group whose member writes it
    groups: list[_Group] = []
    for index, call in enumerate(calls):
        spec = call.spec
        if isinstance(spec, ElementwiseSpec):
            group = _join(index, spec, owner, groups, table)
            for key in spec.out_keys:
                owner[table.root(key)] = group
        else:
            _close_touched(call, table, owner, groups)
    return groups


def _close_touched(call, table, owner, groups):
    """A call outside every group closes the groups whose values it reads (they are
    needed now) and those whose inputs or values it may overwrite (the fused kernel runs
    later, at its last member)."""
    for root in _reads(call, table):
        if root in owner:
            owner[root].open = False
    written = set(_writes(call, table))
    for group in groups:
        if written & (group.inputs | group.produced):
            group.open = False


def _join(index, spec, owner, groups, table) -> _Group:
    """The group ``spec`` becomes a member of (merging the groups it reads from)."""
    joinable, blocked = _candidates(spec, owner, table)
    sizes = _value_sizes(spec, table, joinable)
    if max(sizes, default=0) > MAX_EXPR_NODES:
        blocked |= joinable
        joinable = set()
        sizes = _value_sizes(spec, table, joinable)
    for group in blocked:
        group.open = False
    merged = _merge(joinable, spec.out_shape, owner, groups)
    merged.members.append(index)
    merged.inputs.update(table.root(k) for k in spec.in_keys)
    for key, size in zip(spec.out_keys, sizes):
        merged.produced.add(table.root(key))
        merged.sizes[table.root(key)] = size
    return merged


def _candidates(spec, owner, table):
    """Groups whose values ``spec`` may read in registers, and groups it reads as
    buffers (those must close: their values are needed before their kernel runs)."""
    joinable, blocked = set(), set()
    for key, shape in zip(spec.in_keys, spec.in_shapes):
        group = owner.get(table.root(key))
        if group is None:
            continue
        fits = group.open and group.out_shape == spec.out_shape and shape == spec.out_shape
        (joinable if fits else blocked).add(group)
    return joinable - blocked, blocked


def _value_sizes(spec, table, joinable) -> list[int]:
    """Expression size of each output once the joined groups' values are inlined."""
    inline = {}
    for group in joinable:
        inline.update(group.sizes)
    dtypes = [table.dtypes[table.root(k)] for k in spec.in_keys]
    args = [L.Var(f"x{i}", dtype) for i, dtype in enumerate(dtypes)]
    weights = {f"x{i}": inline.get(table.root(k), 1) for i, k in enumerate(spec.in_keys)}
    return [expr_size(value, MAX_EXPR_NODES, weights) for value in spec.values(*args)]


def _merge(joinable, out_shape, owner, groups) -> _Group:
    if not joinable:
        group = _Group(out_shape)
        groups.append(group)
        return group
    ordered = sorted(joinable, key=lambda g: g.members[0])
    target = ordered[0]
    for other in ordered[1:]:
        target.members = sorted(target.members + other.members)
        target.produced |= other.produced
        target.inputs |= other.inputs
        target.sizes.update(other.sizes)
        for root in other.produced:
            owner[root] = target
        groups.remove(other)
    return target


# ---- what a group computes --------------------------------------------------------------
def _stored(phase, group) -> list[int]:
    """Output keys the group must write: values needed outside it (or its last value)."""
    stored = [key for index in group.members for key in phase.spec(index).out_keys
              if phase.escapes(phase.table.root(key), group)]
    return stored or [phase.spec(group.members[-1]).out_keys[-1]]


def _inputs(phase, group) -> list[_Input]:
    """Buffers the group reads that no member writes, each once per broadcast shape."""
    seen, out = set(), []
    for index in group.members:
        spec = phase.spec(index)
        for key, shape in zip(spec.in_keys, spec.in_shapes):
            item = _Input(key, phase.table.root(key), tuple(shape))
            if item.root in group.produced or (item.root, item.shape) in seen:
                continue
            seen.add((item.root, item.shape))
            out.append(item)
    return out


def _composed(phase, group, inputs, stored):
    """The group's formula: members evaluated in order on the external inputs."""
    specs = [phase.spec(i) for i in group.members]
    root = phase.table.root
    wanted = [root(k) for k in stored]

    def formula(*xs):
        env = {(item.root, item.shape): x for item, x in zip(inputs, xs)}
        for spec in specs:
            args = [env[root(k)] if root(k) in env else env[(root(k), tuple(s))]
                    for k, s in zip(spec.in_keys, spec.in_shapes)]
            for key, dtype, value in zip(spec.out_keys, spec.out_dtypes, spec.values(*args)):
                env[root(key)] = builders.coerce(value, dtype)
        return tuple(env[r] for r in wanted)

    return formula


def _names(phase, group, first=()) -> tuple:
    names = list(first)
    for index in group.members:
        names.extend(phase.calls[index].node_names)
    return tuple(names)


# ---- fused elementwise kernel -----------------------------------------------------------
def _elementwise_call(phase, group, stored) -> LogicalCall:
    table = phase.table
    inputs = _inputs(phase, group)
    formula = _composed(phase, group, inputs, stored)
    params = [(L.BufferParam(f"in{i}", table.dtypes[item.root], math.prod(item.shape)),
               item.shape) for i, item in enumerate(inputs)]
    size = math.prod(group.out_shape)
    dtypes = tuple(table.dtypes[table.root(k)] for k in stored)
    outs = [L.BufferParam(f"out{j}", dtype, size) for j, dtype in enumerate(dtypes)]
    kernel = builders.elementwise_kernel(group.out_shape, params, formula, outs)
    in_keys = tuple(item.key for item in inputs)
    spec = ElementwiseSpec(in_keys, tuple(item.shape for item in inputs), tuple(stored),
                           group.out_shape, dtypes, formula)
    names = _names(phase, group)
    return LogicalCall(kernel, in_keys + tuple(stored), "+".join(names), spec, names)


# ---- matmul epilogue --------------------------------------------------------------------
def _epilogue_source(phase, group, stored):
    """Index of the matmul whose output only this group reads and can take as ``acc``."""
    if len(stored) != 1:
        return None
    inputs = _inputs(phase, group)
    for item in inputs:
        source = _matmul_writing(phase, item.root, group.members[0])
        if source is not None and _epilogue_fits(phase, source, item.root, group, inputs,
                                                 stored):
            return source
    return None


def _matmul_writing(phase, root, before):
    for index in range(before - 1, -1, -1):
        spec = phase.spec(index)
        if isinstance(spec, MatmulSpec) and phase.table.root(spec.c) == root:
            return index
    return None


def _epilogue_fits(phase, source, c_root, group, inputs, stored) -> bool:
    """acc feeds only this group; every other input is a full (M, N) buffer of the
    matmul's dtype; nothing between the two calls overwrites the matmul's operands."""
    mm, table = phase.spec(source), phase.table
    if phase.escapes(c_root, group) or math.prod(group.out_shape) != mm.size \
            or not mm.contiguous:
        return False
    if table.dtypes[table.root(stored[0])] != mm.dtype:
        return False
    if not all(item.shape == group.out_shape and table.dtypes[item.root] == mm.dtype
               for item in inputs):
        return False
    operands = {table.root(k) for k in mm.input_keys}
    between = range(source + 1, group.members[-1])
    return not any(operands & set(_writes(phase.calls[i], table)) for i in between)


def _epilogue_call(phase, group, source, stored) -> LogicalCall:
    mm = phase.spec(source)
    c_root = phase.table.root(mm.c)
    inputs = _inputs(phase, group)
    extras = [item for item in inputs if item.root != c_root]
    acc = next(item for item in inputs if item.root == c_root)
    body = _composed(phase, group, [acc] + extras, stored)

    def epilogue(m, acc, *xs):
        return body(acc, *xs)[0]

    kernel = matmul_kernel(mm.m, mm.n, mm.k, mm.trans_a, mm.trans_b, mm.dtype, bias=mm.bias,
                           epilogue=epilogue, n_extra=len(extras), batch=mm.batch,
                           steps=mm.steps, prologue=mm.prologue)
    keys = mm.input_keys + tuple(item.key for item in extras) + (stored[0],)
    keys += scratch_keys(kernel, phase.table)
    names = _names(phase, group, phase.calls[source].node_names)
    return LogicalCall(kernel, keys, "+".join(names), None, names)


# ---- matmul softmax epilogue ------------------------------------------------------------
def _softmax_epilogues(phase, fused_at, absorbed):
    """Replace each row softmax fed only by a matmul with one matmul-softmax kernel, run
    at the softmax's position; the matmul call is dropped."""
    for index, call in enumerate(phase.calls):
        spec = call.spec
        if not isinstance(spec, SoftmaxSpec) or spec.log or index in fused_at:
            continue
        source = _matmul_writing(phase, phase.table.root(spec.in_key), index)
        if source is None or source in absorbed or not _softmax_fits(phase, source, index):
            continue
        absorbed.add(source)
        fused_at[index] = _softmax_call(phase, source, index)


def _softmax_fits(phase, source, index) -> bool:
    """The logits are read by this softmax alone and stored nowhere else; its rows are
    the matmul's rows and fit one register tile; nothing between the calls writes the
    matmul's operands or its output."""
    mm, sm, table = phase.spec(source), phase.spec(index), phase.table
    c_root = table.root(mm.c)
    if c_root in phase.keep or phase.readers.get(c_root, set()) != {(phase.index, index)}:
        return False
    if (sm.rows, sm.cols) != (mm.m, mm.n) or mm.batch > 1 \
            or table.dtypes[table.root(sm.out_key)] != mm.dtype:
        return False
    if not softmax_fits(mm.n, jit.host().lanes(mm.dtype)):
        return False
    guarded = {table.root(k) for k in mm.input_keys} | {c_root}
    return not any(guarded & set(_writes(phase.calls[i], table))
                   for i in range(source + 1, index))


def _softmax_call(phase, source, index) -> LogicalCall:
    mm, sm = phase.spec(source), phase.spec(index)
    kernel = matmul_kernel(mm.m, mm.n, mm.k, mm.trans_a, mm.trans_b, mm.dtype, bias=mm.bias,
                           softmax=True)
    names = phase.calls[source].node_names + phase.calls[index].node_names
    keys = mm.input_keys + (sm.out_key,) + scratch_keys(kernel, phase.table)
    return LogicalCall(kernel, keys, "+".join(names), None, names)
