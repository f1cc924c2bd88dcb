"""Gluon ``Block`` and ``HybridBlock``: layers as Python objects whose calls are traced.

A Block call pushes its name on the tracer's block stack, so every op it issues is recorded
(inside ``record()`` for training, outside it for inference) and shape errors name the
block. ``HybridBlock.forward`` calls ``hybrid_forward(F, x, **params)`` with ``F`` the
``sg.nd`` namespace; since tracing already compiles imperative code, ``hybridize()`` only
skips re-running the Python ``forward``: a top-level call replays the nodes its first call
with that input signature recorded (:mod:`.hybrid`), and ``export`` becomes possible.

Names follow MXNet: a block's prefix is its class hint plus a counter (``dense0_``), taken
from the parent's counters inside its ``name_scope()`` (``sequential0_dense0_``), and a
parameter's name is prefix + ``weight``/``bias``/... ``save_parameters`` uses the
structural attribute paths instead (``0.weight``, ``conv1.bias``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from runtime.gluon.parameter import EPOCH, Parameter, ParameterDict, _assign, bump_epoch
from runtime.ndarray import state
from runtime.ndarray.ndarray import NDArray
from symgraph.errors import SerializationError
from symgraph.names import current as _current_names


class _Scope(threading.local):
    def __init__(self):
        self.current = None


_SCOPE = _Scope()


class _BlockScope:
    """The name scope of one block: counters for the children created inside it."""

    def __init__(self, block):
        self._block = block
        self._counter = {}
        self._old = None

    @staticmethod
    def create(prefix, params, hint):
        current = _SCOPE.current
        if current is None:
            if prefix is None:
                prefix = _current_names().get(None, hint) + "_"
            params = ParameterDict(prefix) if params is None else ParameterDict(
                params.prefix, params)
            return prefix, params
        if prefix is None:
            count = current._counter.get(hint, 0)
            prefix = f"{hint}{count}_"
            current._counter[hint] = count + 1
        parent = current._block.params
        if params is None:
            params = ParameterDict(parent.prefix + prefix, parent._shared)
        else:
            params = ParameterDict(params.prefix, params)
        return current._block.prefix + prefix, params

    def __enter__(self):
        # A block made with prefix='' has no scope of its own (as in MXNet): blocks created
        # "inside" it count in the enclosing scope, so two such containers never hand out
        # the same name twice (AlexNet's features and output Dense layers).
        if self._block._empty_prefix:
            return self
        self._old, _SCOPE.current = _SCOPE.current, self
        return self

    def __exit__(self, *exc):
        if self._block._empty_prefix:
            return
        _SCOPE.current = self._old


class Block:
    """Base class of every layer and model (MXNet's ``gluon.Block``)."""

    _symbolic_when_hybridized = False  # a plain Block's forward always runs imperatively

    def __init__(self, prefix=None, params=None):
        self._empty_prefix = prefix == ""
        self._prefix, self._params = _BlockScope.create(prefix, params, self._alias())
        self._name = self._prefix[:-1] if self._prefix.endswith("_") else self._prefix
        self._scope = _BlockScope(self)
        self._children = OrderedDict()
        self._reg_params = OrderedDict()
        self._active = False

    def __repr__(self):
        lines = [f"{type(self).__name__}("]
        for key, child in self._children.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({key}): {body}")
        return "\n".join(lines) + "\n)" if self._children else f"{type(self).__name__}()"

    def __setattr__(self, name, value):
        if isinstance(value, Block):
            self.__dict__.setdefault("_children", OrderedDict())[name] = value
            bump_epoch()
        elif isinstance(value, Parameter):
            self.__dict__.setdefault("_reg_params", OrderedDict())[name] = value
            bump_epoch()
        object.__setattr__(self, name, value)

    # ---- names and parameters ------------------------------------------------------------
    def _alias(self) -> str:
        return type(self).__name__.lower()

    @property
    def prefix(self):
        return self._prefix

    @property
    def name(self):
        return self._name

    @property
    def params(self):
        return self._params

    def name_scope(self):
        return self._scope

    def register_child(self, block, name=None):
        if name is None:
            name = str(len(self._children))
        self._children[name] = block
        bump_epoch()
        return block

    def register_parameter(self, name, param):
        self._reg_params[name] = param
        bump_epoch()
        return param

    def collect_params(self, select=None) -> ParameterDict:
        result = ParameterDict(self._params.prefix)
        self._collect(result)
        if select is not None:
            result = result.select(select)
        return result

    def _collect(self, result):
        for param in list(self._params.values()) + list(self._reg_params.values()):
            if param.name not in result:
                result._params[param.name] = param
        for child in self._children.values():
            child._collect(result)

    def _structural_params(self, prefix="") -> OrderedDict:
        """Parameters by attribute path (``features.0.weight``): save_parameters' keys."""
        found = OrderedDict()
        for key, param in self._reg_params.items():
            found[prefix + key] = param
        for key, child in self._children.items():
            found.update(child._structural_params(f"{prefix}{key}."))
        return found

    def initialize(self, init=None, ctx=None, verbose=False, force_reinit=False,
                   device=None):
        self.collect_params().initialize(init, ctx, verbose, force_reinit, device)

    def zero_grad(self):
        self.collect_params().zero_grad()

    def reset_ctx(self, ctx):
        self.collect_params().reset_ctx(ctx)

    reset_device = reset_ctx

    def cast(self, dtype):
        bump_epoch()
        for child in self._children.values():
            child.cast(dtype)
        for param in self._reg_params.values():
            param.cast(dtype)

    def apply(self, fn):
        for child in self._children.values():
            child.apply(fn)
        fn(self)
        return self

    def hybridize(self, active=True, **kwargs):
        bump_epoch()
        self._active = active
        for child in self._children.values():
            child.hybridize(active, **kwargs)

    # ---- files -----------------------------------------------------------------------------
    def save_parameters(self, filename, deduplicate=False):
        from runtime.ndarray_io import save

        arrays, seen = {}, {}
        for key, param in self._structural_params().items():
            if deduplicate and id(param) in seen:
                continue
            seen[id(param)] = key
            arrays[key] = np.asarray(param.data())
        save(filename, arrays)

    def load_parameters(self, filename, ctx=None, allow_missing=False, ignore_extra=False,
                        cast_dtype=False, dtype_source="current", device=None):
        from runtime.ndarray_io import load

        loaded = load(filename)
        if isinstance(loaded, list):
            raise SerializationError(f"'{filename}' holds an unnamed list of arrays, not "
                                     "parameters")
        ctx = device if device is not None else ctx
        if not any("." in k for k in loaded):  # legacy files: names, arg:/aux: tags
            params = {p.name: p for p in self.collect_params().values()}
            loaded = {self._legacy_name(k.split(":", 1)[-1], params): v
                      for k, v in loaded.items()}
        else:
            params = self._structural_params()
        _assign(params, loaded, allow_missing, ignore_extra, filename, ctx, cast_dtype)

    def _legacy_name(self, name, params):
        """A legacy file's name as this block's parameter name: full names as they are,
        names without the block's prefix (MXNet 1.x ``save_params`` strips it, and its
        loader prepends it again) with the prefix."""
        if name in params or self._prefix + name not in params:
            return name
        return self._prefix + name

    save_params = save_parameters
    load_params = load_parameters

    # ---- calling ------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        st = state.STATE
        if args and not kwargs and self._replayable():
            return _replay_call(self, args, st)
        if st.block_depth == 0 and not st.recording:
            _settle_pending()
        return self._traced_call(*args, **kwargs)

    def _replayable(self) -> bool:
        """True when this call may replay the nodes an earlier call with the same inputs
        recorded instead of running ``forward``: the block and all its children are the
        library's own layers and containers (their forward is a fixed function of the
        input shapes and modes, written to hybridize) and have no hooks. User code is
        never skipped. Cached until a structure or parameter changes (``EPOCH``)."""
        cached = self.__dict__.get("_pure")
        if cached is not None and cached[0] == EPOCH[0]:
            return cached[1]
        pure = _library_block(self) and all(c._replayable() for c in self._children.values())
        self.__dict__["_pure"] = (EPOCH[0], pure)
        return pure

    def _traced_call(self, *args, **kwargs):
        stack = state.STATE
        hooks = self.__dict__.get("_hooks")
        if hooks:
            for hook in hooks["pre"]:
                hook(self, args)
        symbolic = self._active and self._symbolic_when_hybridized
        stack.block_depth += 1
        if symbolic:
            stack.symbolic += 1
        blocks = stack.blocks
        blocks.append(self._name)
        try:
            out = self.forward(*args, **kwargs)
        finally:
            blocks.pop()
            if symbolic:
                stack.symbolic -= 1
            stack.block_depth -= 1
        if hooks:
            for hook in hooks["post"]:
                hook(self, args, out)
        return out

    def register_forward_pre_hook(self, hook):
        """``hook(block, inputs)`` before every forward; returns a handle with detach()."""
        return self._add_hook("pre", hook)

    def register_forward_hook(self, hook):
        """``hook(block, inputs, outputs)`` after every forward."""
        return self._add_hook("post", hook)

    def _add_hook(self, kind, hook):
        hooks = self.__dict__.setdefault("_hooks", {"pre": [], "post": []})
        hooks[kind].append(hook)
        bump_epoch()
        return _HookHandle(hooks[kind], hook)

    def forward(self, *args):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def summary(self, *inputs):
        """Print each child's parameter count (after one forward, so deferred shapes are
        known) and the output shape; returns the total number of parameters."""
        if inputs:
            out = self(*inputs)
            print(f"output shape: {getattr(out, 'shape', None)}")

        def count(block):
            return sum(int(np.prod(p.shape)) for p in block.collect_params().values()
                       if p.shape is not None)

        for key, child in self._children.items():
            print(f"{key:>12}  {type(child).__name__:<20} {count(child):>10}")
        total = count(self)
        print(f"Parameters in total: {total}")
        return total


class _HookHandle:
    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def detach(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)
            bump_epoch()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.detach()


_USER_CODE = ("Lambda", "HybridLambda", "SymbolBlock")  # library classes running user code


def _library_block(block) -> bool:
    cls = type(block)
    return (cls.__module__.startswith("runtime.gluon.") and cls.__name__ not in _USER_CODE
            and not block.__dict__.get("_hooks", {}).get("pre")
            and not block.__dict__.get("_hooks", {}).get("post"))


def _replay_call(block, args, st):
    """A call of a library block: replay the segment its first call with this input
    signature recorded (:mod:`runtime.gluon.hybrid`), else trace it and keep the segment.
    Like a hybridized call, but the forward's arrays keep their values (no refusal of
    reads: the library's layers do not read them)."""
    if st.block_depth == 0 and not st.recording:
        _settle_pending()
    for a in args:
        if type(a) is not NDArray:
            return block._traced_call(*args)
    hybrid = _hybrid()
    cache = block.__dict__.get("_auto_segments")
    if cache is None or cache[0] != EPOCH[0]:
        cache = block.__dict__["_auto_segments"] = (EPOCH[0], {})
    sig = hybrid.signature(args)
    segment = cache[1].get(sig)
    if segment:
        return hybrid.replay(segment, args)
    if segment is False:  # this signature's call cannot be captured: always trace it
        return block._traced_call(*args)
    return hybrid.record(block, args, lambda: block._traced_call(*args), sig, cache[1])


def _settle_pending():
    """A top-level inference call starts its own graph: the previous one runs now if any of
    its results are still held (else it is dropped), so unread outputs never pile up."""
    trace = state.STATE.trace
    if trace is None or trace.closed:
        return
    if trace.alive():
        from runtime.ndarray.runner import run

        run(trace)
    trace.closed = True


def _nd():
    """The ``F`` of hybrid_forward (imported late: runtime.nd imports the Gluon package)."""
    module = _ND.get("nd")
    if module is None:
        from runtime import nd as module

        _ND["nd"] = module
    return module


_ND: dict = {}


def _hybrid():
    module = _ND.get("hybrid")
    if module is None:
        from runtime.gluon import hybrid as module

        _ND["hybrid"] = module
    return module


class HybridBlock(Block):
    """A Block written once for both worlds: ``hybrid_forward(F, x, **params)``.

    Hybridized, its forward runs with arrays that stand for graph values: reading one
    (``asnumpy``, ``float()``, ``if x``, printing, indexing, iterating) raises
    :class:`HybridizedReadError`, as MXNet's symbols do, because later calls replay the
    recorded nodes without running the Python. Shapes can be read: the replay cache is
    keyed by the input shapes, so shape-dependent Python stays correct (MXNet 2's
    deferred-compute hybridization allows it too).
    """

    _symbolic_when_hybridized = True

    def __init__(self, prefix=None, params=None):
        super().__init__(prefix, params)
        self._cached_export = None
        self._segments = {}

    def forward(self, x, *args):
        ctx = getattr(x, "_ctx", None)  # an NDArray's device (numpy arrays: the first)
        params = {name: p.data(ctx) for name, p in self._reg_params.items()}
        return self.hybrid_forward(_nd(), x, *args, **params)

    def hybrid_forward(self, F, x, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define hybrid_forward()")

    def __call__(self, *args, **kwargs):
        if not self._active:
            return super().__call__(*args, **kwargs)
        st = state.STATE
        if st.block_depth or kwargs or not args or not all(
                [type(a) is NDArray for a in args]):
            out = super().__call__(*args, **kwargs)
        else:
            hybrid = _hybrid()
            if not st.recording:
                _settle_pending()
            sig = hybrid.signature(args)
            segment = self._segments.get(sig)
            if segment is not None:
                out = hybrid.replay(segment, args)
            else:
                out = hybrid.record(self, args, lambda: self._traced_call(*args), sig)
            self.__dict__["_cached_export"] = sig  # export() reads shapes, dtypes, device
            return out
        self._cached_export = (tuple((a.shape, a._dtype) for a in args), args[0].context) \
            if args else ((), None)
        return out

    def hybridize(self, active=True, **kwargs):
        self._segments = {}
        super().hybridize(active, **kwargs)

    def cast(self, dtype):
        self._segments = {}  # the recorded nodes carry the old parameter dtypes
        super().cast(dtype)

    def infer_shape(self, *args):
        self(*args)

    def export(self, path, epoch=0, remove_amp_cast=True):
        """Write ``path-symbol.json`` and ``path-%04d.params`` (Module checkpoint format)."""
        from runtime.gluon.export import export_block

        return export_block(self, path, epoch)
