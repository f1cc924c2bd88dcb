"""Composite ops: defined by a decomposition into registered ops (``OpDef.decompose``).

A composite op keeps its own shape rule (so errors name the op the user wrote) and its
own numpy reference (an independent oracle the decomposition is tested against). Its
gradient is the gradient of its decomposition: the rule is applied to placeholder
variables, differentiated with the ordinary autodiff, and the placeholders are replaced
by the node's real inputs. The forward nodes that gradient rebuilds are identical to the
ones the decompose pass produces, so CSE merges them and nothing is computed twice.
Lowering never sees a composite op: the decompose pass runs first in the pipeline.
"""

from __future__ import annotations

from ..errors import CompileError
from .registry import OpDef


class CompositeOp(OpDef):
    def decompose(self, p, b):
        raise NotImplementedError

    def gradient(self, p, g):
        from ..autodiff import gradient_entries
        from ..graph import Entry, make_variable
        from ..passes.decompose import expand
        from ..passes.rewrite import rebuild

        holders = [make_variable(f"{g.node.name}__input{i}") for i in range(len(g.inputs))]
        outputs = expand(self, p, g.node.name, [Entry(h, 0) for h in holders])
        wanted = [h for h, need in zip(holders, g.needs) if need]
        grads = gradient_entries(outputs, wanted, list(g.out_grads))
        present = [e for e in grads if e is not None]
        real = {id(h): e for h, e in zip(holders, g.inputs)}

        def visit(node, new_inputs):
            if id(node) in real:
                return [real[id(node)]]
            return None

        replaced = iter(rebuild(present, visit)) if present else iter(())
        by_holder = {id(h): (next(replaced) if e is not None else None)
                     for h, e in zip(wanted, grads)}
        return [by_holder.get(id(h)) for h in holders]

    def lower(self, p, ctx):
        raise CompileError(f"{self.name} node '{ctx.node.name}' is composite and must be "
                           "decomposed before lowering (symgraph.passes.decompose)")
