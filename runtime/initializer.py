"""Parameter initializers (``sg.init``), following ``mx.init`` rule for rule.

An initializer is called as ``init(InitDesc(name, attrs), arr)`` on a numpy array and fills
it in place. The variable's ``__init__`` attribute (a JSON ``[name, kwargs]`` string) wins
over the global initializer whatever the name; otherwise the name suffix picks the rule.
Random numbers come from :func:`runtime.random.get_rng`, so ``runtime.random.seed`` makes
initial values reproducible (they cannot match MXNet's own generator bit for bit).
"""

from __future__ import annotations

import json
import logging
import re
import warnings

import numpy as np

from runtime.random import get_rng
from runtime.registry import Registry
from symgraph.errors import ShapeError

__all__ = [
    "InitDesc", "Initializer", "register", "alias", "create", "Uniform", "Normal", "Xavier",
    "MSRAPrelu", "Constant", "Zero", "One", "Orthogonal", "Bilinear", "LSTMBias", "Mixed",
    "Load",
]

_REGISTRY = Registry("initializer", dict_key="initializer")
register = _REGISTRY.register
alias = _REGISTRY.alias


class InitDesc(str):
    """A parameter name that also carries the variable's attrs and the global initializer."""

    def __new__(cls, name, attrs=None, global_init=None):
        ret = super().__new__(cls, name)
        ret.attrs = dict(attrs) if attrs else {}
        ret.global_init = global_init
        return ret


def create(name, *args, **kwargs):
    """Registry lookup as MXNet's: instance, lower-case name, ``'[name, {kw}]'`` JSON or dict."""
    if isinstance(name, (Initializer, Mixed, Load)):
        return name
    return _REGISTRY.create(name, *args, **kwargs)


def _norm_stat(arr) -> str:
    """Default verbose statistic: ``||x|| / sqrt(size)``, as MXNet's ``asum_stat``."""
    arr = np.asarray(arr, dtype=np.float64)
    return str(float(np.linalg.norm(arr) / np.sqrt(max(arr.size, 1))))


# Suffix → constant fill, checked in MXNet's order after ``weight`` (moving_* are our extras).
_SUFFIX_FILLS = (
    ("bias", 0.0), ("gamma", 1.0), ("beta", 0.0), ("min", 0.0), ("max", 1.0),
    ("moving_mean", 0.0), ("moving_var", 1.0), ("moving_inv_var", 0.0), ("moving_avg", 0.0),
)


class Initializer:
    """Base class: dispatches on ``__init__`` attr or name suffix; subclasses give _init_weight."""

    def __init__(self, **kwargs):
        self._kwargs = kwargs
        self._verbose = False
        self._print_func = None

    def set_verbosity(self, verbose=False, print_func=None):
        """Log ``Initialized <name> as <rule>: <stat>`` for every array initialized."""
        self._verbose = verbose
        self._print_func = print_func if print_func is not None else _norm_stat
        return self

    def _verbose_print(self, desc, init, arr):
        if self._verbose and self._print_func:
            logging.info("Initialized %s as %s: %s", desc, init, self._print_func(arr))

    def dumps(self) -> str:
        """``json.dumps([classname.lower(), kwargs])``: the format ``__init__`` attrs use."""
        return json.dumps([self.__class__.__name__.lower(), self._kwargs])

    def __call__(self, desc, arr):
        """Fill ``arr`` in place according to MXNet's dispatch rules (see module doc)."""
        if not isinstance(desc, InitDesc):
            self._legacy_init(desc, arr)
            return
        if desc.global_init is None:
            desc.global_init = self
        init = desc.attrs.get("__init__", "")
        if init:
            create(init)._init_weight(desc, arr)
            self._verbose_print(desc, init, arr)
            return
        self._init_by_suffix(desc, arr)

    def _init_by_suffix(self, desc, arr):
        if desc.endswith("weight"):
            self._init_weight(desc, arr)
            self._verbose_print(desc, "weight", arr)
            return
        for suffix, value in _SUFFIX_FILLS:
            if desc.endswith(suffix):
                arr[...] = value
                self._verbose_print(desc, suffix, arr)
                return
        if desc.endswith("weight_quantize"):
            arr[...] = get_rng().integers(-127, 127, size=np.shape(arr))
        elif desc.endswith("bias_quantize"):
            arr[...] = 0
        else:
            self._init_default(desc, arr)

    def _legacy_init(self, name, arr):
        """Plain-str names (deprecated in MXNet) also know upsampling and stn_loc layers."""
        warnings.warn("Calling initializer with init(str, NDArray) has been deprecated. "
                      "Please use init(mx.init.InitDesc(...), NDArray) instead.",
                      DeprecationWarning, stacklevel=3)
        if not isinstance(name, str):
            raise TypeError("name must be string")
        if name.startswith("upsampling"):
            Bilinear()._init_weight(name, arr)
        elif name.startswith("stn_loc") and name.endswith("weight"):
            arr[...] = 0
        elif name.startswith("stn_loc") and name.endswith("bias"):
            arr[...] = np.array([1, 0, 0, 0, 1, 0], dtype=arr.dtype).reshape(arr.shape)
        else:
            self._init_by_suffix(InitDesc(name), arr)

    def _init_weight(self, name, arr):
        raise NotImplementedError("Must override it")

    def _init_default(self, name, _arr):
        raise ValueError(
            f'Unknown initialization pattern for {name}. Default initialization is now limited to '
            '"weight", "bias", "gamma" (1.0), and "beta" (0.0).Please use '
            "mx.sym.Variable(init=mx.init.*) to set initialization pattern")

    def __eq__(self, other):
        return (isinstance(other, Initializer) and type(self) is type(other)
                and self._kwargs == other._kwargs)

    __hash__ = object.__hash__

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._kwargs.items())
        return f"{type(self).__name__}({args})"


@register
class Uniform(Initializer):
    """U(-scale, scale). Module.fit's default is ``Uniform(0.01)``."""

    def __init__(self, scale=0.07):
        super().__init__(scale=scale)
        self.scale = scale

    def _init_weight(self, _, arr):
        arr[...] = get_rng().uniform(-self.scale, self.scale, size=np.shape(arr))


@register
class Normal(Initializer):
    """N(0, sigma²)."""

    def __init__(self, sigma=0.01):
        super().__init__(sigma=sigma)
        self.sigma = sigma

    def _init_weight(self, _, arr):
        arr[...] = get_rng().normal(0.0, self.sigma, size=np.shape(arr))


@register
class Constant(Initializer):
    """Fill every matched array (weight or not, via _init_weight) with ``value``."""

    def __init__(self, value):
        if isinstance(value, np.ndarray):
            value = value.tolist()
        super().__init__(value=value)
        self.value = value

    def _init_weight(self, _, arr):
        arr[...] = np.asarray(self.value, dtype=np.asarray(arr).dtype)


@register
@alias("zeros")
class Zero(Initializer):
    """Fill with 0 (create name ``zero`` or ``zeros``)."""

    def _init_weight(self, _, arr):
        arr[...] = 0


@register
@alias("ones")
class One(Initializer):
    """Fill with 1 (create name ``one`` or ``ones``)."""

    def _init_weight(self, _, arr):
        arr[...] = 1


def _xavier_factor(name, shape, factor_type):
    """Fan of a ≥2-D weight: (fan_in+fan_out)/2, fan_in or fan_out, with hw = prod(shape[2:])."""
    if len(shape) < 2:
        raise ValueError(f"Xavier initializer cannot be applied to vector {name}. "
                         "It requires at least 2D.")
    hw_scale = float(np.prod(shape[2:])) if len(shape) > 2 else 1.0
    fan_in, fan_out = shape[1] * hw_scale, shape[0] * hw_scale
    factors = {"avg": (fan_in + fan_out) / 2.0, "in": fan_in, "out": fan_out}
    if factor_type not in factors:
        raise ValueError("Incorrect factor type")
    return factors[factor_type]


@register
class Xavier(Initializer):
    """Glorot: scale = sqrt(magnitude / factor); uniform U(-s, s) or gaussian N(0, s²)."""

    def __init__(self, rnd_type="uniform", factor_type="avg", magnitude=3):
        super().__init__(rnd_type=rnd_type, factor_type=factor_type, magnitude=magnitude)
        self.rnd_type = rnd_type
        self.factor_type = factor_type
        self.magnitude = float(magnitude)

    def _init_weight(self, name, arr):
        shape = np.shape(arr)
        scale = np.sqrt(self.magnitude / _xavier_factor(name, shape, self.factor_type))
        if self.rnd_type == "uniform":
            arr[...] = get_rng().uniform(-scale, scale, size=shape)
        elif self.rnd_type == "gaussian":
            arr[...] = get_rng().normal(0.0, scale, size=shape)
        else:
            raise ValueError("Unknown random type")


@register
class MSRAPrelu(Xavier):
    """He et al.: gaussian Xavier with magnitude 2 / (1 + slope²)."""

    def __init__(self, factor_type="avg", slope=0.25):
        super().__init__("gaussian", factor_type, 2.0 / (1 + slope ** 2))
        self._kwargs = {"factor_type": factor_type, "slope": slope}


@register
class Orthogonal(Initializer):
    """Saxe et al.: SVD of a (nout, prod(rest)) random matrix, times ``scale``."""

    def __init__(self, scale=1.414, rand_type="uniform"):
        super().__init__(scale=scale, rand_type=rand_type)
        self.scale = scale
        self.rand_type = rand_type

    def _init_weight(self, _, arr):
        shape = np.shape(arr)
        nout, nin = shape[0], int(np.prod(shape[1:]))
        if self.rand_type == "uniform":
            tmp = get_rng().uniform(-1.0, 1.0, size=(nout, nin))
        elif self.rand_type == "normal":
            tmp = get_rng().normal(0.0, 1.0, size=(nout, nin))
        else:
            raise ValueError(f"Unknown random type {self.rand_type}")
        u, _s, v = np.linalg.svd(tmp, full_matrices=False)
        res = u if u.shape == tmp.shape else v
        arr[...] = self.scale * res.reshape(shape)


@register
class Bilinear(Initializer):
    """The bilinear upsampling kernel for Deconvolution weights (N, C, H, W)."""

    def _init_weight(self, _, arr):
        shape = np.shape(arr)
        f = np.ceil(shape[3] / 2.0)
        c = (2 * f - 1 - f % 2) / (2.0 * f)
        x = np.arange(shape[3])
        y = np.arange(shape[2])
        kernel = np.outer(1 - np.abs(y / f - c), 1 - np.abs(x / f - c))
        arr[...] = np.broadcast_to(kernel, shape)


@register
class LSTMBias(Initializer):
    """Zero bias except the forget gate block (second quarter), set to ``forget_bias``."""

    def __init__(self, forget_bias=1.0):
        super().__init__(forget_bias=forget_bias)
        self.forget_bias = forget_bias

    def _init_weight(self, _, arr):
        arr[...] = 0
        num_hidden = np.shape(arr)[0] // 4
        arr[num_hidden:2 * num_hidden] = self.forget_bias


class Mixed:
    """First regex (``re.match``: anchored at the start) matching the name picks the initializer."""

    def __init__(self, patterns, initializers):
        if len(patterns) != len(initializers):
            raise ValueError("patterns and initializers must have the same length")
        self.map = list(zip([re.compile(p) for p in patterns], initializers))

    def __call__(self, name, arr):
        for prog, init in self.map:
            if prog.match(name):
                init(name, arr)
                return
        raise ValueError(f'Parameter name {name} did not match any pattern. Consider add a ".*" '
                         "pattern at the and with default Initializer.")


def _load_param_file(path):
    """Read a ``.params`` file with the NDArray-list reader (imported lazily: owned elsewhere)."""
    from runtime import ndarray_io  # noqa: PLC0415 - colleague module, import on demand

    return ndarray_io.load(path)


class Load:
    """Initialize from saved values (dict or file); ``arg:``/``aux:`` prefixes are stripped."""

    def __init__(self, param, default_init=None, verbose=False):
        if isinstance(param, str):
            param = _load_param_file(param)
        self.param = {}
        for name, arr in param.items():
            key = name[4:] if name.startswith(("arg:", "aux:")) else name
            self.param[key] = np.asarray(arr)
        self.default_init = default_init
        self.verbose = verbose

    def __call__(self, name, arr):
        if name in self.param:
            loaded = self.param[name]
            if np.shape(arr) != loaded.shape:
                raise ShapeError(f"Parameter {name} cannot be initialized from loading. Shape "
                                 f"mismatch, target {np.shape(arr)} vs loaded {loaded.shape}")
            arr[...] = loaded
            if self.verbose:
                logging.info("Initialized %s by loading", name)
            return
        if self.default_init is None:
            raise ValueError(f"Cannot Initialize {name}. Not found in loaded param and no default "
                             "Initializer is provided.")
        self.default_init(name, arr)
        if self.verbose:
            logging.info("Initialized %s by default", name)
