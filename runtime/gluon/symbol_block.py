"""``SymbolBlock``: a Symbol graph (for example an exported model) as a Gluon block.

Its forward walks the graph and calls each op through the tracer, so it trains and
predicts like any other block; every non-input argument is a Parameter (aux states get
``grad_req='null'``).
"""

from __future__ import annotations

from runtime.gluon.block import HybridBlock
from runtime.gluon.parameter import Parameter
from runtime.ndarray.invoke import call
from symgraph.graph import topo_order


class SymbolBlock(HybridBlock):
    def __init__(self, outputs, inputs, params=None):
        super().__init__(prefix="", params=None)
        inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        self._input_names = [i.name for i in inputs]
        self._symbol = outputs
        aux = set(outputs.list_auxiliary_states())
        for name in outputs.list_inputs():
            if name in self._input_names:
                continue
            param = params[name] if params is not None and name in params else Parameter(
                name, grad_req="null" if name in aux else "write", allow_deferred_init=True)
            self._params._params[name] = param

    def forward(self, *args):
        if len(args) != len(self._input_names):
            raise ValueError(f"SymbolBlock takes {len(self._input_names)} inputs "
                             f"({self._input_names}), got {len(args)}")
        ctx = args[0].context
        values = dict(zip(self._input_names, args))
        env = {}
        for node in topo_order(self._symbol.outputs):
            if node.is_variable:
                value = values.get(node.name)
                env[(id(node), 0)] = value if value is not None else \
                    self._params[node.name].data(ctx)
                continue
            attrs = {k: v for k, v in node.attrs.items() if not k.startswith("__")}
            result = call(node.op, [env[(id(e.node), e.index)] for e in node.inputs], attrs)
            results = result if isinstance(result, list) else [result]
            for index, value in enumerate(results):
                env[(id(node), index)] = value
        outs = [env[(id(e.node), e.index)] for e in self._symbol.outputs]
        return outs[0] if len(outs) == 1 else outs

    @staticmethod
    def imports(symbol_file, input_names, param_file=None, ctx=None, allow_missing=False,
                ignore_extra=False, device=None):
        from symgraph import symbol as S

        symbol = S.load(symbol_file)
        names = [input_names] if isinstance(input_names, str) else list(input_names)
        block = SymbolBlock(symbol, [S.Variable(n) for n in names])
        if param_file is not None:
            block.collect_params().load(param_file, ctx=device if device is not None else ctx,
                                        allow_missing=allow_missing, ignore_extra=ignore_extra)
        return block
