"""``sg.gluon``: MXNet's imperative API, traced and compiled (see runtime/ndarray)."""

from runtime import metric  # noqa: F401
from runtime.gluon import contrib, data, loss, model_zoo, nn, utils  # noqa: F401
from runtime.gluon.block import Block, HybridBlock  # noqa: F401
from runtime.gluon.parameter import (  # noqa: F401
    Constant,
    DeferredInitializationError,
    Parameter,
    ParameterDict,
)
from runtime.gluon.symbol_block import SymbolBlock  # noqa: F401
from runtime.gluon.trainer import Trainer  # noqa: F401
