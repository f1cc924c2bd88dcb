"""``sg.sym`` / ``sg.symbol``: MXNet's symbol namespace.

Everything here is a real function or class you can grep: the Symbol type, Variable,
Group, load/load_json, the op front-end functions, and ``grad`` (symbolic gradient).
"""

from __future__ import annotations

from .autodiff import grad  # noqa: F401
from .frontend.batchnorm import *  # noqa: F401,F403
from .frontend.core import *  # noqa: F401,F403
from .frontend.core import abs, max, min, pow, round, sum  # noqa: F401,A004
from .names import AttrScope, NameManager, Prefix  # noqa: F401
from .ops import all as _ops  # noqa: F401
from .symbol import Group, Symbol, Variable, load, load_json, var  # noqa: F401

try:  # families added by later issues register their front ends here
    from .frontend.model_ops import *  # noqa: F401,F403
    from .frontend.tensor import *  # noqa: F401,F403
except ImportError:  # pragma: no cover - only while a family is being written
    pass
