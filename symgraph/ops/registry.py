"""The op registry: every op is one :class:`OpDef` subclass holding all of its rules.

An op says, in one class: its parameters, its input and output names, how shapes and
dtypes propagate (in both directions, as MXNet's inference does), a numpy reference
implementation, its gradient as a graph of registered ops, and how it lowers to loops.
``check_complete`` is what the registry test runs over ``all_ops()``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import DTypeError, OpAttributeError, ShapeError, UnknownOpError, format_shape
from .params import Params, ParamSpec, parse_params

_REGISTRY: dict[str, OpDef] = {}
_ALIASES: dict[str, str] = {}

REQUIRED_HOOKS = ("infer_shape", "reference", "gradient", "lower")


class OpDef:
    """Base class of op definitions. Subclasses override the hooks they need."""

    name: str = ""
    hint: str = ""
    aliases: tuple[str, ...] = ()
    params: tuple[ParamSpec, ...] = ()
    arguments: tuple[str, ...] = ("data",)
    variadic: bool = False
    ignores_head_grad: bool = False
    #: inputs read as targets (class indices, regression values): a variable feeding only
    #: these may be bound with any numeric dtype and is converted to the op's float dtype
    label_inputs: tuple[str, ...] = ()
    #: outputs after ``output`` that only the gradient or the runtime reads (statistics,
    #: masks): not part of the symbol's visible outputs unless num_visible_outputs says so
    hidden_outputs: tuple[str, ...] = ()
    differentiable: bool = True
    is_elementwise: bool = False
    extra_attrs: tuple[str, ...] = ()

    # ---- structure ------------------------------------------------------------------
    def parse(self, attrs: dict, node_name: str) -> Params:
        return parse_params(self.params, attrs, self.name, node_name, self.extra_attrs)

    def input_names(self, p: Params) -> list[str]:
        if self.variadic:
            return [f"arg{i}" for i in range(p.num_args)]
        return list(self.arguments)

    def mutate_inputs(self, p: Params) -> tuple[int, ...]:
        """Indices of inputs this op updates in place: they become auxiliary states."""
        return ()

    def num_outputs(self, p: Params) -> int:
        return 1 + len(self.hidden_outputs)

    def num_visible_outputs(self, p: Params) -> int:
        return 1 if self.hidden_outputs else self.num_outputs(p)

    def output_names(self, p: Params) -> list[str]:
        if self.hidden_outputs:
            return ["output", *self.hidden_outputs]
        count = self.num_outputs(p)
        return ["output"] if count == 1 else [f"output{i}" for i in range(count)]

    # ---- inference --------------------------------------------------------------------
    def infer_shape(self, p: Params, in_shapes: list) -> tuple[list, list]:
        raise NotImplementedError

    def infer_type(self, p: Params, in_types: list) -> tuple[list, list]:
        """Default rule: every input and output has one dtype."""
        known = {t for t in in_types if t is not None}
        if len(known) > 1:
            raise DTypeError(f"{self.name}: inputs disagree on dtype: {sorted(known)}")
        dtype = known.pop() if known else None
        n_out = self.num_outputs(p)
        return [dtype] * len(in_types), [dtype] * n_out

    # ---- semantics --------------------------------------------------------------------
    def reference(self, p: Params, inputs: list[np.ndarray], ctx) -> list[np.ndarray]:
        raise NotImplementedError

    def gradient(self, p: Params, g) -> list:
        raise NotImplementedError

    def lower(self, p: Params, ctx) -> None:
        raise NotImplementedError

    # ---- composite ops ----------------------------------------------------------------
    def decompose(self, p: Params, b) -> list | None:
        """The op as a graph of other registered ops, or None for a primitive op.

        ``b`` is a builder (``symgraph.passes.decompose.Decomposer``): ``b.inputs`` are the
        node's input entries and ``b.op(name, *entries, **attrs)`` adds a node. Return one
        entry per output (hidden outputs included). The rule may not depend on shapes: it
        runs in the pass pipeline before shape inference, and the same rule gives the
        op's gradient (see ``composite.CompositeOp``). Composite ops are replaced by their
        decomposition before lowering, so fusion sees only primitive ops.
        """
        return None

    @property
    def is_composite(self) -> bool:
        return type(self).decompose is not OpDef.decompose



class ShapedLikeGrad(OpDef):
    """Base of the private gradient ops whose one result has the shape of the input named
    ``shaped_like`` (the forward op's operand, passed for its shape and the geometry derived
    from it): one shape rule for all of them, and they are never differentiated again."""

    arguments = ("dy", "data")
    shaped_like = "data"
    differentiable = False

    def infer_shape(self, p, in_shapes):
        return in_shapes, [in_shapes[self.arguments.index(self.shaped_like)]]

def register(cls):
    """Class decorator: instantiate, check and register an op definition."""
    op = cls()
    if not op.name:
        op.name = cls.__name__
    if not op.hint:
        op.hint = op.name.lower()
    if op.name in _REGISTRY:
        raise ValueError(f"op {op.name} registered twice")
    _REGISTRY[op.name] = op
    for alias in op.aliases:
        _ALIASES[alias] = op.name
    return cls


def _load_families() -> None:
    from . import all as _all  # noqa: F401  (registers every op family)


def get_op(name: str) -> OpDef:
    if not _REGISTRY:
        _load_families()
    canonical = _ALIASES.get(name, name)
    try:
        return _REGISTRY[canonical]
    except KeyError:
        raise UnknownOpError(f"unknown op '{name}': no such operator is registered") from None


def has_op(name: str) -> bool:
    _load_families()
    return _ALIASES.get(name, name) in _REGISTRY


def all_ops() -> list[OpDef]:
    _load_families()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def missing_hooks(op: OpDef) -> list[str]:
    """The hooks an op still inherits unimplemented from OpDef (registry completeness)."""
    missing = []
    for hook in REQUIRED_HOOKS:
        if hook == "gradient" and not op.differentiable:
            continue
        if getattr(type(op), hook) is getattr(OpDef, hook):
            missing.append(hook)
    return missing


# ---- helpers shared by shape rules ----------------------------------------------------
def merge_shape(what: str, known, proposed):
    """Combine two views of one shape; contradictions are a ShapeError naming both.

    The inference engine prefixes the message with the node and op.
    """
    if known is None:
        return None if proposed is None else tuple(proposed)
    if proposed is None or tuple(known) == tuple(proposed):
        return tuple(known)
    raise ShapeError(f"{what} has shape {format_shape(known)}, expected {format_shape(proposed)}")


def same_shape_rule(names: Sequence[str], in_shapes: list, n_out: int = 1):
    """All inputs and outputs share one shape (plain elementwise ops)."""
    shape = None
    for name, given in zip(names, in_shapes):
        shape = merge_shape(f"input '{name}'", given, shape)
    return [shape] * len(in_shapes), [shape] * n_out


def require_attr(op: str, node: str, condition: bool, message: str):
    if not condition:
        raise OpAttributeError(f"{op} node '{node}': {message}")
