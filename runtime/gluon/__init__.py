"""``sg.gluon``: MXNet's imperative API, traced and compiled (see runtime/ndarray)."""

from runtime import metric  # noqa: F401

from . import contrib, data, loss, model_zoo, nn, utils  # noqa: F401
from .block import Block, HybridBlock  # noqa: F401
from .parameter import (  # noqa: F401
    Constant,
    DeferredInitializationError,
    Parameter,
    ParameterDict,
)
from .symbol_block import SymbolBlock  # noqa: F401
from .trainer import Trainer  # noqa: F401
