"""The optimization pipeline: the graph passes in one explicit order, to a fixed point.

Order: composite ops are decomposed first (every later pass and codegen's fusion then
sees only primitive ops), dead nodes next (less work for the rest), then CSE (exposes
identical operands), algebraic identities, constant folding. Folding can expose new identities
(``x * ones_like(..)``) and merges, so the sequence repeats until a round changes nothing,
bounded by ``MAX_ROUNDS``. Passes reuse untouched nodes, so "nothing changed" is identity
of the head entries.
"""

from __future__ import annotations

from ..graph import Entry, make_op_node
from .cse import eliminate_common_subexpressions
from .dce import eliminate_dead_nodes
from .decompose import decompose_composites
from .fold import fold_constants
from .fold_bn import fold_batchnorm
from .simplify import simplify_algebra

PASSES = (decompose_composites, eliminate_dead_nodes, eliminate_common_subexpressions,
          simplify_algebra, fold_constants)
# rewrites that are only true in inference (BatchNorm on its moving statistics)
INFERENCE_PASSES = (fold_batchnorm,)
MAX_ROUNDS = 8


def _same(a, b) -> bool:
    return len(a) == len(b) and all(x.node is y.node and x.index == y.index
                                    for x, y in zip(a, b))


def optimize(heads, passes=PASSES, max_rounds: int = MAX_ROUNDS) -> tuple[Entry, ...]:
    """Heads of an equivalent graph after running ``passes`` in order until stable."""
    heads = tuple(heads)
    for _ in range(max_rounds):
        before = heads
        for run in passes:
            heads = run(heads)
        if _same(before, heads):
            break
    return heads


def optimize_for_inference(heads) -> tuple[Entry, ...]:
    """The inference graph: the inference-only rewrites once, then the common pipeline.

    Only for graphs that are never run in training mode (an executor without gradients
    uses it for its inference forward; its training forward keeps the full graph). When
    no inference rewrite applies the heads come back unchanged (``heads`` is assumed
    optimized already), so the common passes do not run twice.
    """
    before = heads = tuple(heads)
    for run in INFERENCE_PASSES:
        heads = run(heads)
    return before if _same(before, heads) else optimize(heads)


def _keep_label(old: Entry, new: Entry) -> Entry:
    """A head whose output name would change gets an identity node carrying the old name.

    Output names are API (executor outputs, ``sym['fc1_output']``); a pass that replaced
    ``x * 1`` at a head by ``x`` must not rename the output. (A multi-output head merged
    by CSE into a differently named node keeps the survivor's names.)
    """
    if new.label == old.label or old.node.num_outputs() != 1:
        return new
    return Entry(make_op_node("_copy", old.node.name, [new], {}), 0)


def optimize_symbol(symbol, passes=PASSES):
    """An optimized Symbol with the same ``list_outputs()`` as ``symbol``."""
    from ..symbol import Symbol

    heads = optimize(symbol.outputs, passes)
    return Symbol(tuple(_keep_label(o, n) for o, n in zip(symbol.outputs, heads)))
