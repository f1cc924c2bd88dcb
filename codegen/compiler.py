"""Graph -> native program: autodiff, passes, inference, lowering, memory plan, JIT.

``compile_graph`` is the whole pipeline in order; each step is a call into its own module.
The result knows where every output and head gradient lives in the arena and which entry
of the phase's pointer table each argument, gradient and aux state is (those live outside
the arena, in arrays the executor owns or shares), so the executor only makes numpy
views, fills one pointer table and makes one native call per phase:
``predict`` (inference forward), ``forward`` (training forward), ``backward`` and
``forward_backward`` (both, in one call).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from codegen import fusion, limits, threadpool
from codegen import loop_ir as L
from codegen.kernels import builders, builders_nn
from codegen.lower import BufferTable, LogicalCall, LowerContext
from codegen.memplan import MemoryPlan, plan_memory, poison_dead_buffers
from codegen.program import ExternalBuffer, KernelCall, Program, compile_program
from symgraph.autodiff import gradient_entries, head_gradient_variables
from symgraph.errors import CompileError
from symgraph.graph import Entry, dump, topo_order
from symgraph.infer import infer_dtypes, infer_shapes, label_only_variables
from symgraph.passes.pipeline import optimize, optimize_for_inference


@dataclass(frozen=True)
class Slot:
    """Where one user-visible tensor lives: arena bytes at ``offset``, or entry ``ext``
    of the pointer table (arguments, gradients, aux states; ``offset`` is then -1)."""

    name: str
    shape: tuple
    dtype: str
    offset: int
    ext: int = -1

    @property
    def external(self) -> bool:
        return self.ext >= 0

    @property
    def where(self):
        """The arena offset, or the table entry as ``Ext`` (what pictures print)."""
        from codegen.program import Ext

        return Ext(self.ext) if self.external else self.offset


@dataclass(frozen=True)
class CallTrace:
    """One kernel call of the training program, kept for pictures and inspection."""

    nodes: tuple  # names of the graph nodes computed by this (possibly fused) call
    entries: tuple  # graph value bound to each kernel parameter (None: a temporary)
    stage: str  # "forward" or "backward"


@dataclass(frozen=True)
class GraphRecord:
    """The optimized graph that was lowered: nodes, their shapes/dtypes, gradient heads."""

    nodes: tuple  # topological order of forward and gradient nodes
    forward_ids: frozenset  # id() of the nodes the forward pass needs
    shapes: dict  # Entry -> shape
    dtypes: dict  # Entry -> dtype
    grads: dict  # argument name -> Entry of its gradient (or None)
    heads: tuple  # the forward outputs, in the order of CompiledGraph.outputs

    @property
    def outputs(self) -> tuple:
        """Forward outputs, then the gradients that exist (the heads that were lowered)."""
        return self.heads + tuple(g for g in self.grads.values() if g is not None)


@dataclass
class CompiledGraph:
    program: object
    plan: MemoryPlan
    args: dict = field(default_factory=dict)
    grads: dict = field(default_factory=dict)
    aux: dict = field(default_factory=dict)
    outputs: list = field(default_factory=list)
    head_grads: list = field(default_factory=list)  # Slot or None per output
    seed: Slot | None = None  # run-time random seed (graphs with Dropout)
    graph: GraphRecord | None = None
    trace: tuple = ()  # CallTrace per call of the forward_backward phase

    @property
    def arena_bytes(self) -> int:
        """The program's arena: the larger of the training and predict memory plans."""
        return self.program.program.arena_bytes

    @property
    def externals(self) -> tuple:
        """``ExternalBuffer`` per pointer-table entry (see ``Slot.ext``)."""
        return self.program.program.externals

    @property
    def graph_text(self) -> str:
        """The optimized graph with shapes, as ``symgraph.graph.dump`` prints it."""
        return dump(self.graph.outputs, self.graph.shapes)

    def full(self) -> CompiledGraph:
        """This result with every kernel's IR (``result_cache.CachedGraph`` compiles it)."""
        return self


@dataclass
class _Build:
    """Mutable state of one compilation (kept out of the function signatures)."""

    table: BufferTable = field(default_factory=BufferTable)
    keys: dict = field(default_factory=dict)  # Entry -> key
    shapes: dict = field(default_factory=dict)
    dtypes: dict = field(default_factory=dict)
    pred_heads: list = field(default_factory=list)  # what predict computes (maybe folded)


def compile_graph(symbol, shapes: dict, dtypes: dict, grad_req: dict, name_hint="graph",
                  poison: bool = False):
    """Compile ``symbol`` for the given input shapes/dtypes and per-argument grad_req.

    ``poison=True`` is a test mode: every intermediate buffer is NaN-filled right after its
    last use, so a wrong memory plan shows up as wrong numbers.
    """
    heads = list(symbol.outputs)
    arg_names = symbol.list_arguments()
    aux_names = symbol.list_auxiliary_states()
    variables = {n.name: n for n in topo_order(heads) if n.is_variable}
    wrt = [name for name in arg_names if grad_req.get(name, "null") != "null"]
    head_vars = head_gradient_variables(heads) if wrt else [None] * len(heads)
    grads = gradient_entries(heads, [variables[n] for n in wrt], head_vars) if wrt else []
    grad_heads = [g for g in grads if g is not None]
    all_heads = optimize(tuple(heads) + tuple(grad_heads))
    fwd_heads, grad_heads = list(all_heads[: len(heads)]), list(all_heads[len(heads):])
    grads = _realign(grads, grad_heads)
    build = _Build()
    _infer(build, all_heads, heads, head_vars, shapes, _input_dtypes(heads, dtypes))
    _check_tensor_sizes(build)
    # without gradients nothing reads predict's intermediate values, so predict may run
    # the inference-only rewrites (BatchNorm folded into its layer)
    build.pred_heads = fwd_heads if wrt else _inference_heads(build, fwd_heads)
    return _lower_and_compile(build, symbol, fwd_heads, all_heads, grads, wrt, head_vars,
                              grad_req, arg_names, aux_names, name_hint, poison)


#: dtypes an input may be given in that native code does not store, and what it stores
#: instead (values are converted when they are copied in, as numpy's casting='unsafe')
_STORED_AS = {"float16": "float32", "int8": "int64", "int16": "int64", "int32": "int64",
              "uint8": "int64", "uint16": "int64", "uint32": "int64", "uint64": "int64"}


def _input_dtypes(heads, dtypes: dict) -> dict:
    """The dtypes inputs are stored in: labels of loss ops take the graph's float dtype
    whatever they were given as, other inputs the nearest dtype native code has."""
    labels = label_only_variables(heads)
    out = {}
    for name, dtype in dtypes.items():
        if name in labels and dtype not in ("float32", "float64"):
            continue
        out[name] = _STORED_AS.get(dtype, dtype)
    return out


def _inference_heads(build, fwd_heads):
    pred_heads = list(optimize_for_inference(fwd_heads))
    if all(p == f for p, f in zip(pred_heads, fwd_heads)):
        return fwd_heads
    # the rewrite adds no variables: seed every one with what the full graph inferred
    variables = [Entry(n, 0) for n in topo_order(pred_heads) if n.is_variable]
    build.shapes.update(infer_shapes(pred_heads, {e.node.name: build.shapes[e]
                                                  for e in variables}))
    build.dtypes.update(infer_dtypes(pred_heads, {e.node.name: build.dtypes[e]
                                                  for e in variables}, default="float32"))
    return pred_heads


def _realign(grads, optimized):
    it = iter(optimized)
    return [None if g is None else next(it) for g in grads]


def _infer(build, all_heads, heads, head_vars, shapes, dtypes):
    known = dict(shapes)
    fwd = infer_shapes(heads, known)
    for head, var in zip(heads, head_vars):
        if var is not None and fwd.get(head) is not None:
            known[var.node.name] = fwd[head]
    build.shapes = {**fwd, **infer_shapes(all_heads, known)}
    known_types = dict(dtypes)
    fwd_types = infer_dtypes(heads, known_types, default="float32")
    for head, var in zip(heads, head_vars):
        if var is not None and fwd_types.get(head) is not None:
            known_types[var.node.name] = fwd_types[head]
    build.dtypes = {**fwd_types, **infer_dtypes(all_heads, known_types, default="float32")}
    missing = [n.name for n in topo_order(all_heads)
               if any(build.shapes.get(Entry(n, i)) is None for i in range(n.num_outputs()))]
    if missing:
        raise CompileError(f"cannot compile: shapes unknown for {missing[:8]}; give the "
                           "shapes of all data inputs")


def _check_tensor_sizes(build):
    """Before anything is lowered: no single tensor may exceed the memory limit."""
    limits.check_tensors((_describe_entry(entry), shape,
                          np.dtype(build.dtypes.get(entry) or "float32").itemsize)
                         for entry, shape in build.shapes.items() if shape is not None)


def _describe_entry(entry) -> str:
    node = entry.node
    if node.is_variable:
        return f"input '{node.name}'"
    return f"output {entry.index} of {node.op} node '{node.name}'"


def _key(build, entry) -> int:
    if entry not in build.keys:
        shape = build.shapes.get(entry)
        if shape is None:
            raise CompileError(f"no shape for '{entry.label}'")
        dtype = build.dtypes.get(entry) or "float32"
        build.keys[entry] = build.table.new(math.prod(shape), dtype)
    return build.keys[entry]


def _lower_nodes(build, nodes, is_train) -> list[LogicalCall]:
    calls: list[LogicalCall] = []
    for node in nodes:
        if node.is_variable:
            _key(build, Entry(node, 0))
            continue
        ins = [_key(build, e) for e in node.inputs]
        outs = [_key(build, Entry(node, i)) for i in range(node.num_outputs())]
        ctx = LowerContext(node, ins, outs, [build.shapes[e] for e in node.inputs],
                           [build.shapes[Entry(node, i)] for i in range(node.num_outputs())],
                           build.dtypes.get(Entry(node, 0)) or "float32", is_train,
                           build.table, calls)
        try:
            node.opdef.lower(node.params, ctx)
        except CompileError:
            raise
        except Exception as exc:
            raise CompileError(f"lowering {node.op} node '{node.name}' failed: {exc}") from exc
    return calls


def _lower_and_compile(build, symbol, fwd_heads, all_heads, grads, wrt, head_vars, grad_req,
                       arg_names, aux_names, name_hint, poison):
    order = topo_order(all_heads)
    fwd_ids = {id(n) for n in topo_order(fwd_heads)}
    fwd_nodes = [n for n in order if id(n) in fwd_ids]
    bwd_nodes = [n for n in order if id(n) not in fwd_ids]
    fwd_calls = _mutations_last(_lower_nodes(build, fwd_nodes, True))
    bwd_calls = _lower_nodes(build, bwd_nodes, True)
    pred_calls = _lower_nodes(build, topo_order(build.pred_heads), False)
    # a backward after an inference forward differentiates the inference function
    pred_bwd_calls = _lower_nodes(build, bwd_nodes, False)
    variables = {n.name: Entry(n, 0) for n in topo_order(symbol.outputs) if n.is_variable}
    variables.update({n.name: Entry(n, 0) for n in order if n.is_variable})
    out_keys, extra = _output_keys(build, fwd_heads, variables)
    grad_keys, grad_calls = _grad_keys(build, wrt, grads, grad_req, variables, set(out_keys))
    persistent = _persistent(build, arg_names, aux_names, variables, grad_keys, out_keys,
                             head_vars)
    keep = {build.table.root(k) for k in persistent}
    _check_mutations(build, fwd_calls + bwd_calls + pred_calls + pred_bwd_calls, keep)
    external, ext_specs = _externals(build, arg_names, aux_names, variables, grad_keys)
    raw_bwd = bwd_calls + grad_calls
    fwd_calls, bwd_calls = fusion.fuse([fwd_calls + extra, raw_bwd], build.table, keep)
    # predict is fused and planned followed by the backward calls, so that a backward()
    # after an inference forward (MXNet allows it) finds every value it reads
    pred_extra = _predict_outputs(build, fwd_heads, out_keys, extra,
                                  fwd_calls + bwd_calls + grad_calls, keep)
    pred_calls, pred_bwd = fusion.fuse([pred_calls + pred_extra, pred_bwd_calls + grad_calls],
                                       build.table, keep)
    plan = plan_memory(fwd_calls + bwd_calls, build.table, persistent, external)
    pred_plan = plan_memory(pred_calls + pred_bwd, build.table, persistent, external)
    if poison:
        def nan_fill(key):
            return _fill_call(key, build.table.sizes[key], build.table.dtypes[key], float("nan"))

        both = poison_dead_buffers(fwd_calls + bwd_calls, build.table, plan, nan_fill)
        fwd_calls, bwd_calls = both, []
    phases = {"predict": (pred_calls, pred_plan), "forward": (fwd_calls, plan),
              "backward": (bwd_calls, plan), "forward_backward": (fwd_calls + bwd_calls, plan),
              "predict_backward": (pred_bwd, pred_plan)}
    program = _program(phases, build.table, ext_specs)
    limits.check_program(program, name_hint)
    compiled = compile_program(program, name_hint)
    result = _describe(compiled, plan, build, symbol, variables, arg_names, aux_names,
                       grad_keys, out_keys, head_vars, fwd_heads)
    result.graph = GraphRecord(tuple(order), frozenset(fwd_ids), dict(build.shapes),
                               dict(build.dtypes), dict(zip(wrt, grads)), tuple(fwd_heads))
    result.trace = _trace(build, fwd_calls, bwd_calls)
    return result


def _predict_outputs(build, fwd_heads, out_keys, extra, training_calls, keep) -> list:
    """The output calls of predict: the training copies, unless predict computes a head
    with other nodes (inference rewrites); then that node writes the output slot itself
    (its buffer becomes an alias of the slot) or, if its buffer is shared, is copied."""
    changed = {i for i, (p, f) in enumerate(zip(build.pred_heads, fwd_heads)) if p != f}
    if not changed:
        return extra
    targets = {build.table.root(out_keys[i]) for i in changed}
    calls = [c for c in extra if build.table.root(c.keys[-1]) not in targets]
    taken = {build.table.root(k) for c in training_calls for k in c.keys} | set(keep)
    for i in sorted(changed):
        key = _key(build, build.pred_heads[i])
        root, slot = build.table.root(key), build.table.root(out_keys[i])
        if root in taken:
            dtype = build.table.dtypes[slot]
            size = build.table.sizes[slot]
            kernel = builders_nn.copy_kernel(size, L.BufferParam("in0", dtype, size),
                                             L.BufferParam("out0", dtype, size))
            calls.append(LogicalCall(kernel, (key, slot), "copy"))
        else:
            build.table.alias_of[root] = slot
            taken.add(root)
    return calls


def _mutations_last(calls) -> list:
    """Calls that update an input in place (aux states: BatchNorm's moving statistics) run
    after every other call of the phase, so each reader of the state sees the value it had
    when the phase began, whatever the topological order of the readers."""
    return [c for c in calls if not c.mutates] + [c for c in calls if c.mutates]


def _check_mutations(build, calls, keep) -> None:
    """An in-place update must land in a persistent slot (an aux state the executor keeps),
    never in a scratch value that other calls may share."""
    for call in calls:
        for key in call.mutates:
            if build.table.root(key) not in keep:
                raise CompileError(f"node '{call.node_name}' updates an input in place, but "
                                   "that input is a computed value, not a variable: pass a "
                                   "Variable (an auxiliary state) there")


def _trace(build, fwd_calls, bwd_calls) -> tuple:
    entry_of = {key: entry for entry, key in build.keys.items()}
    return tuple(CallTrace(call.node_names, tuple(entry_of.get(k) for k in call.keys), stage)
                 for stage, calls in (("forward", fwd_calls), ("backward", bwd_calls))
                 for call in calls)


def _output_keys(build, fwd_heads, variables):
    """Each output gets its own persistent buffer; copy when it would share one."""
    var_roots = {build.table.root(_key(build, e)) for e in variables.values()}
    out_keys, extra, seen = [], [], set()
    for head in fwd_heads:
        key = _key(build, head)
        root = build.table.root(key)
        if root in var_roots or root in seen:
            key = _copy_into_new(build, key, head, extra)
        seen.add(build.table.root(key))
        out_keys.append(key)
    return out_keys, extra


def _copy_into_new(build, key, entry, calls):
    size, dtype = build.table.sizes[build.table.root(key)], build.table.dtypes[key]
    new = build.table.new(size, dtype)
    src = L.BufferParam("in0", dtype, size)
    dst = L.BufferParam("out0", dtype, size)
    calls.append(LogicalCall(builders_nn.copy_kernel(size, src, dst), (key, new), "copy"))
    return new


def _grad_keys(build, wrt, grads, grad_req, variables, taken):
    """Gradient buffers: written in place by their producer when possible."""
    keys, calls, used = {}, [], set(taken)
    var_roots = {build.table.root(_key(build, e)) for e in variables.values()}
    for name, grad in zip(wrt, grads):
        var_key = _key(build, variables[name])
        size, dtype = build.table.sizes[var_key], build.table.dtypes[var_key]
        if grad is None:
            keys[name] = build.table.new(size, dtype)
            if grad_req[name] == "write":
                calls.append(_fill_call(keys[name], size, dtype))
            continue
        key = _key(build, grad)
        root = build.table.root(key)
        if grad_req[name] == "add":
            keys[name] = build.table.new(size, dtype)
            calls.append(_accumulate_call(key, keys[name], size, dtype))
        elif root in var_roots or root in used:
            keys[name] = _copy_into_new(build, key, grad, calls)
        else:
            keys[name] = key
        used.add(build.table.root(keys[name]))
    return keys, calls


def _fill_call(key, size, dtype, value=0.0):
    out = L.BufferParam("out0", dtype, size)
    kernel = builders.elementwise_kernel((size,), [], lambda: L.Const(value, dtype), [out])
    return LogicalCall(kernel, (key,), "fill")


def _accumulate_call(src_key, dst_key, size, dtype):
    src = L.BufferParam("in0", dtype, size)
    dst = L.BufferParam("out0", dtype, size)
    kernel = builders.elementwise_kernel((size,), [(src, (size,)), (dst, (size,))],
                                         lambda g, acc: acc + g, [dst])
    return LogicalCall(kernel, (src_key, dst_key), "grad_add")


def _persistent(build, arg_names, aux_names, variables, grad_keys, out_keys, head_vars):
    keys = [_key(build, variables[n]) for n in arg_names + aux_names if n in variables]
    keys += list(grad_keys.values()) + list(out_keys)
    keys += [_key(build, v) for v in head_vars if v is not None and v in build.keys]
    if "seed" in build.table.__dict__:
        keys.append(build.table.seed_key())
    return keys


def _externals(build, arg_names, aux_names, variables, grad_keys):
    """Arguments, aux states and gradients live outside the arena, one pointer-table
    entry each (root -> index, and the ExternalBuffer per index): callers may then share
    their own arrays, executors one set of parameters, and the gradients one bucket."""
    table, index, specs = build.table, {}, []
    named = [("arg", n, _key(build, variables[n])) for n in arg_names if n in variables]
    named += [("aux", n, _key(build, variables[n])) for n in aux_names if n in variables]
    named += [("grad", n, k) for n, k in grad_keys.items()]
    for kind, name, key in named:
        root = table.root(key)
        if root in index:
            raise CompileError(f"{kind} '{name}' shares its buffer with another external "
                               "buffer")
        index[root] = len(specs)
        specs.append(ExternalBuffer(f"{kind}:{name}", table.dtypes[root], table.sizes[root]))
    return index, tuple(specs)


def _program(phases, table, externals):
    """Phases name (calls, plan): predict has its own scratch plan, since its calls fuse
    differently from training's; persistent slots are laid out identically in both and
    external buffers are the same table entries."""
    kernels, out, arena = {}, {}, 64
    for phase, (calls, plan) in phases.items():
        lowered = []
        for call in calls:
            kernels.setdefault(call.kernel.name, call.kernel)
            offsets = tuple(plan.location(table.root(k)) for k in call.keys)
            lowered.append(KernelCall(call.kernel, offsets, call.node_names))
        out[phase] = lowered
        arena = max(arena, plan.arena_bytes)
    return Program(tuple(kernels.values()), arena, out, externals,
                   threads=threadpool.compile_threads())


def _slot(build, plan, name, key, entry):
    root = build.table.root(key)
    if root in plan.external:
        return Slot(name, tuple(build.shapes[entry]), build.table.dtypes[key], -1,
                    plan.external[root])
    return Slot(name, tuple(build.shapes[entry]), build.table.dtypes[key], plan.offsets[root])


def _describe(compiled, plan, build, symbol, variables, arg_names, aux_names, grad_keys,
              out_keys, head_vars, fwd_heads):
    result = CompiledGraph(compiled, plan)
    for name in arg_names:
        result.args[name] = _slot(build, plan, name, _key(build, variables[name]),
                                  variables[name])
    for name in aux_names:
        result.aux[name] = _slot(build, plan, name, _key(build, variables[name]),
                                 variables[name])
    for name, key in grad_keys.items():
        result.grads[name] = _slot(build, plan, name, key, variables[name])
    names = symbol.list_outputs()
    for name, key, head in zip(names, out_keys, fwd_heads):
        result.outputs.append(_slot(build, plan, name, key, head))
    if "seed" in build.table.__dict__:
        key = build.table.seed_key()
        result.seed = Slot("__seed__", (1,), "int64", plan.offsets[key])
    for head, var in zip(fwd_heads, head_vars):
        live = var is not None and var in build.keys
        result.head_grads.append(_slot(build, plan, var.node.name, build.keys[var], head)
                                 if live else None)
    return result
