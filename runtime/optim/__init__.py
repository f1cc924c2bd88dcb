"""Optimizers (``sg.optimizer`` / ``sg.opt``) with MXNet 1.x's lr/wd bookkeeping.

Each optimizer describes its update explicitly, so the compiled fused update and this numpy
reference share one definition:

* ``rule() -> UpdateRule(formula, state_slot_count, scalar_names)``: the scalar formula from
  :mod:`runtime.optim.update_rules` (already specialised: clip or not, momentum or not), how many
  state arrays it threads through, and the keyword scalars it needs.
* ``step_scalars(index) -> {name: float}``: the values of exactly those scalars for the next
  update of parameter ``index``. It *advances* the update count first (as MXNet's
  ``_update_count`` before ``_get_lr``), so call it exactly once per parameter per step.

``update(index, weight, grad, state)`` = ``rule()`` + ``step_scalars(index)`` evaluated with
``NumpyMath`` in the weight's dtype, written back in place.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from runtime.optim import update_rules as R
from runtime.optim.states import (
    decode_states,
    encode_states,
    optimizer_from_json,
    optimizer_to_json,
)
from symgraph.ops.scalar import NumpyMath

__all__ = [
    "UpdateRule", "Optimizer", "create", "register", "SGD", "NAG", "Adam", "AdaGrad",
    "RMSProp", "AdaDelta", "Signum", "Ftrl", "Adamax", "Nadam", "Updater", "get_updater",
]

_BASE_SCALARS = ("lr", "wd", "rescale_grad")


class UpdateRule(NamedTuple):
    """What a compiled fused update needs: formula(m, w, g, *states, **scalars) -> (w, *states)."""

    formula: Callable
    state_slot_count: int
    scalar_names: tuple


_MATHS: dict = {}


def _math_for(dtype) -> NumpyMath:
    """One NumpyMath per dtype, so the reference path does not rebuild it every step."""
    key = np.dtype(dtype)
    if key not in _MATHS:
        _MATHS[key] = NumpyMath(key)
    return _MATHS[key]


def _state_slots(state) -> tuple:
    """MXNet states are None, one array, or a tuple/list of arrays: flatten to slots."""
    if state is None:
        return ()
    if isinstance(state, (tuple, list)):
        return tuple(state)
    return (state,)


class Optimizer:
    """Base class: lr/wd multipliers, per-index update counts, scheduler; see module doc."""

    opt_registry: dict = {}

    def __init__(self, rescale_grad=1.0, param_idx2name=None, wd=0.0, clip_gradient=None,
                 learning_rate=None, lr_scheduler=None, sym=None, begin_num_update=0,
                 multi_precision=False, param_dict=None):
        self.rescale_grad = rescale_grad
        self.lr_scheduler = lr_scheduler
        if lr_scheduler is None and learning_rate is None:
            learning_rate = 0.01
        self.lr = learning_rate
        if lr_scheduler is not None and learning_rate is not None:
            if lr_scheduler.base_lr != learning_rate:
                warnings.warn("learning rate from ``lr_scheduler`` has been overwritten by "
                              "``learning_rate`` in optimizer.", UserWarning, stacklevel=2)
                lr_scheduler.base_lr = learning_rate
        self.wd = wd
        self.begin_num_update = begin_num_update
        self.num_update = begin_num_update
        self._all_index_update_counts = {0: {}}
        self._index_update_count = self._all_index_update_counts[0]
        self.clip_gradient = clip_gradient
        self.multi_precision = multi_precision
        if param_idx2name is None:
            param_idx2name = {}
        if not isinstance(param_idx2name, dict):
            raise TypeError("param_idx2name should be a dict of param indexes to names.")
        self.idx2name = param_idx2name.copy()
        self.sym_info = _sym_info(sym)
        self.param_dict = param_dict if param_dict else {}
        self.set_lr_mult({})
        self.set_wd_mult({})

    # -- registry -------------------------------------------------------------------------
    @staticmethod
    def register(klass):
        """Class decorator: ``create('<classname lower>')`` builds this optimizer."""
        name = klass.__name__.lower()
        if name in Optimizer.opt_registry:
            warnings.warn(f"WARNING: New optimizer {klass.__module__}.{klass.__name__} is "
                          f"overriding existing optimizer {name}", stacklevel=2)
        Optimizer.opt_registry[name] = klass
        return klass

    @staticmethod
    def create_optimizer(name, **kwargs):
        """Case-insensitive lookup of a registered optimizer class, built with ``kwargs``."""
        if isinstance(name, Optimizer):
            return name
        klass = Optimizer.opt_registry.get(str(name).lower())
        if klass is None:
            raise ValueError(f"Cannot find optimizer {name}")
        return klass(**kwargs)

    # -- learning rate / weight decay -------------------------------------------------------
    @property
    def learning_rate(self):
        """The scheduler's value at ``num_update`` if there is one, else the fixed lr."""
        if self.lr_scheduler is not None:
            return self.lr_scheduler(self.num_update)
        return self.lr

    def set_learning_rate(self, lr):
        """Change the fixed lr; MXNet raises (a UserWarning *exception*) with a scheduler."""
        if self.lr_scheduler is not None:
            raise UserWarning("LRScheduler of the optimizer has already been defined. Note that "
                              "set_learning_rate can mutate the value of the learning rate of "
                              "the optimizer only when the LRScheduler of the optimizer is "
                              "undefined.")
        self.lr = lr

    def set_lr_scale(self, args_lrscale):
        raise DeprecationWarning("set_lr_scale is deprecated. Use set_lr_mult instead.")

    def set_lr_mult(self, args_lr_mult):
        """``__lr_mult__`` symbol attrs first, then the given {name or index: mult}."""
        self.lr_mult = {}
        attrs, arg_names = self.sym_info
        for name in arg_names:
            if "__lr_mult__" in attrs.get(name, {}):
                self.lr_mult[name] = float(attrs[name]["__lr_mult__"])
        self.lr_mult.update(args_lr_mult)

    def set_wd_mult(self, args_wd_mult):
        """[Q] names not ending in _weight/_gamma get 0; then ``__wd_mult__`` attrs; then args."""
        self.wd_mult = {}
        for name in self.idx2name.values():
            if not (name.endswith("_weight") or name.endswith("_gamma")):
                self.wd_mult[name] = 0.0
        attrs, arg_names = self.sym_info
        for name in arg_names:
            if "__wd_mult__" in attrs.get(name, {}):
                self.wd_mult[name] = float(attrs[name]["__wd_mult__"])
        self.wd_mult.update(args_wd_mult)

    def _update_count(self, index):
        """Bump the per-index counts; ``num_update`` is the largest of them."""
        indices = index if isinstance(index, (list, tuple)) else [index]
        for idx in indices:
            count = self._index_update_count.get(idx, self.begin_num_update) + 1
            self._index_update_count[idx] = count
            self.num_update = max(count, self.num_update)

    def _mult(self, index, mults, attr):
        if index in self.param_dict:
            return getattr(self.param_dict[index], attr)
        if index in mults:
            return mults[index]
        if index in self.idx2name:
            return mults.get(self.idx2name[index], 1.0)
        return 1.0

    def _get_lr(self, index):
        """lr at the current ``num_update`` times the index's (or its name's) lr_mult."""
        lr = self.lr_scheduler(self.num_update) if self.lr_scheduler is not None else self.lr
        return lr * self._mult(index, self.lr_mult, "lr_mult")

    def _get_wd(self, index):
        return self.wd * self._mult(index, self.wd_mult, "wd_mult")

    def _get_lrs(self, indices):
        return [self._get_lr(i) for i in indices]

    def _get_wds(self, indices):
        return [self._get_wd(i) for i in indices]

    # -- the explicit update description ------------------------------------------------------
    def _clips(self) -> bool:
        """Kernel-based optimizers treat a falsy clip_gradient (None or 0) as 'no clipping'."""
        return bool(self.clip_gradient)

    def _clip_names(self) -> tuple:
        return ("clip_gradient",) if self._clips() else ()

    # False when ``_extra_scalars`` ignores ``t``: the step scalars then only change with lr,
    # the multipliers or a hyper-parameter, so a fused updater can reuse them across steps.
    scalars_depend_on_t = True

    def rule(self) -> UpdateRule:
        """(formula, state_slot_count, scalar_names) of this optimizer's update."""
        raise NotImplementedError()

    def _extra_scalars(self, index, t) -> dict:
        """Hyper-parameters and t-dependent factors; subclasses override."""
        return {}

    def step_scalars(self, index) -> dict:
        """Advance ``index``'s update count, then return exactly the scalars ``rule()`` names."""
        self._update_count(index)
        return self.scalars_at(index, self._index_update_count[index])

    def scalars_at(self, index, t) -> dict:
        """The scalars of ``index``'s update number ``t``, counts left as they are."""
        values = {"lr": self._get_lr(index), "wd": self._get_wd(index),
                  "rescale_grad": self.rescale_grad, "clip_gradient": self.clip_gradient}
        values.update(self._extra_scalars(index, t))
        return {name: float(values[name]) for name in self.rule().scalar_names}

    # -- state and update ---------------------------------------------------------------------
    def create_state(self, index, weight):
        """Zero state arrays shaped like ``weight``: None, one array, or a tuple."""
        return None

    def create_state_multi_precision(self, index, weight):
        """fp16 weights with multi_precision keep an fp32 master copy: (state, weight32)."""
        if self.multi_precision and weight.dtype == np.float16:
            weight32 = weight.astype(np.float32)
            return (self.create_state(index, weight32), weight32)
        return self.create_state(index, weight)

    def update(self, index, weight, grad, state):
        """Apply one step in place on numpy arrays through ``rule()`` and ``step_scalars()``."""
        rule = self.rule()
        apply_rule(rule, weight, grad, state, self.step_scalars(index))

    def update_multi_precision(self, index, weight, grad, state):
        """Update the fp32 master copy and cast it back when multi_precision applies."""
        if self.multi_precision and weight.dtype == np.float16:
            inner, weight32 = state
            self.update(index, weight32, grad.astype(np.float32), inner)
            weight[...] = weight32
            return
        self.update(index, weight, grad, state)

    def __getstate__(self):
        raise TypeError("symgraph optimizers are never pickled; use Updater.get_states()")


def apply_rule(rule: UpdateRule, weight, grad, state, scalars) -> None:
    """Evaluate ``rule`` with NumpyMath in the weight's dtype and write results in place."""
    slots = _state_slots(state)
    if len(slots) != rule.state_slot_count:
        raise ValueError(f"optimizer state has {len(slots)} arrays, the update rule needs "
                         f"{rule.state_slot_count}")
    m = _math_for(weight.dtype)
    cast = m.dtype.type
    typed = {name: cast(value) for name, value in scalars.items()}
    with np.errstate(all="ignore"):
        out = rule.formula(m, weight, grad, *slots, **typed)
    weight[...] = out[0]
    for slot, new in zip(slots, out[1:]):
        slot[...] = new


def _sym_info(sym):
    """(attr_dict, argument names) of the symbol, for ``__lr_mult__``/``__wd_mult__``."""
    if sym is None:
        return {}, []
    attrs = sym.attr_dict()
    names = sym.list_arguments() if hasattr(sym, "list_arguments") else list(attrs)
    return attrs, names


register = Optimizer.register
create = Optimizer.create_optimizer


def _zeros(weight):
    return np.zeros(weight.shape, dtype=weight.dtype)


@register
class SGD(Optimizer):
    """SGD, optionally with momentum (lr inside the momentum buffer, as MXNet's kernel)."""

    scalars_depend_on_t = False

    def __init__(self, momentum=0.0, lazy_update=True, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.lazy_update = lazy_update

    def create_state(self, index, weight):
        return _zeros(weight) if self.momentum != 0.0 else None

    def rule(self):
        if self.momentum != 0.0:
            names = _BASE_SCALARS + ("momentum",) + self._clip_names()
            return UpdateRule(R.sgd_momentum, 1, names)
        return UpdateRule(R.sgd, 0, _BASE_SCALARS + self._clip_names())

    def _extra_scalars(self, index, t):
        return {"momentum": self.momentum}


@register
class NAG(SGD):
    """Nesterov momentum; with momentum 0 it is plain SGD."""

    def __init__(self, momentum=0.0, **kwargs):
        super().__init__(momentum=momentum, **kwargs)

    def rule(self):
        if self.momentum != 0.0:
            names = _BASE_SCALARS + ("momentum",) + self._clip_names()
            return UpdateRule(R.nag_momentum, 1, names)
        return UpdateRule(R.sgd, 0, _BASE_SCALARS + self._clip_names())


@register
class Adam(Optimizer):
    """Adam; ``lr`` in step_scalars is lr·sqrt(1−β2^t)/(1−β1^t) with t the index's count."""

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8,
                 lazy_update=True, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.lazy_update = lazy_update

    def create_state(self, index, weight):
        return (_zeros(weight), _zeros(weight))

    def rule(self):
        names = _BASE_SCALARS + ("beta1", "beta2", "epsilon") + self._clip_names()
        return UpdateRule(R.adam, 2, names)

    def _extra_scalars(self, index, t):
        coef1, coef2 = 1.0 - self.beta1 ** t, 1.0 - self.beta2 ** t
        return {"lr": self._get_lr(index) * math.sqrt(coef2) / coef1, "beta1": self.beta1,
                "beta2": self.beta2, "epsilon": self.epsilon}


@register
class AdaGrad(Optimizer):
    """Dense AdaGrad; [Q] clips whenever clip_gradient is not None (even 0)."""

    scalars_depend_on_t = False

    def __init__(self, eps=1e-7, **kwargs):
        super().__init__(**kwargs)
        self.float_stable_eps = eps

    def _clips(self):
        return self.clip_gradient is not None

    def create_state(self, index, weight):
        return _zeros(weight)

    def rule(self):
        return UpdateRule(R.adagrad, 1, _BASE_SCALARS + ("epsilon",) + self._clip_names())

    def _extra_scalars(self, index, t):
        return {"epsilon": self.float_stable_eps}


@register
class RMSProp(Optimizer):
    """RMSProp (Tieleman & Hinton) or, with ``centered``, Graves' variant; clip_weights clamps w."""

    scalars_depend_on_t = False

    def __init__(self, learning_rate=0.001, gamma1=0.9, gamma2=0.9, epsilon=1e-8,
                 centered=False, clip_weights=None, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.gamma1, self.gamma2, self.epsilon = gamma1, gamma2, epsilon
        self.centered = centered
        self.clip_weights = clip_weights

    def create_state(self, index, weight):
        if self.centered:
            return (_zeros(weight), _zeros(weight), _zeros(weight))
        return (_zeros(weight),)

    def rule(self):
        clips = self._clip_names() + (("clip_weights",) if self.clip_weights else ())
        if self.centered:
            names = _BASE_SCALARS + ("gamma1", "gamma2", "epsilon") + clips
            return UpdateRule(R.rmsprop_centered, 3, names)
        return UpdateRule(R.rmsprop, 1, _BASE_SCALARS + ("gamma1", "epsilon") + clips)

    def _extra_scalars(self, index, t):
        return {"gamma1": self.gamma1, "gamma2": self.gamma2, "epsilon": self.epsilon,
                "clip_weights": self.clip_weights}


@register
class AdaDelta(Optimizer):
    """AdaDelta (no lr); [Q] clips whenever clip_gradient is not None."""

    scalars_depend_on_t = False

    def __init__(self, rho=0.90, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.rho, self.epsilon = rho, epsilon

    def _clips(self):
        return self.clip_gradient is not None

    def create_state(self, index, weight):
        return (_zeros(weight), _zeros(weight))

    def rule(self):
        names = ("wd", "rescale_grad", "rho", "epsilon") + self._clip_names()
        return UpdateRule(R.adadelta, 2, names)

    def _extra_scalars(self, index, t):
        return {"rho": self.rho, "epsilon": self.epsilon}


@register
class Signum(Optimizer):
    """Signum; with momentum 0 it is signSGD (rescale and clip ignored)."""

    scalars_depend_on_t = False

    def __init__(self, learning_rate=0.01, momentum=0.9, wd_lh=0.0, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = momentum
        self.wd_lh = wd_lh

    def create_state(self, index, weight):
        return _zeros(weight) if self.momentum != 0.0 else None

    def rule(self):
        if self.momentum != 0.0:
            names = _BASE_SCALARS + ("momentum", "wd_lh") + self._clip_names()
            return UpdateRule(R.signum, 1, names)
        return UpdateRule(R.signsgd, 0, ("lr", "wd"))

    def _extra_scalars(self, index, t):
        return {"momentum": self.momentum, "wd_lh": self.wd_lh}


@register
class Ftrl(Optimizer):
    """FTRL-proximal; states (z, n)."""

    scalars_depend_on_t = False

    def __init__(self, lamda1=0.01, learning_rate=0.1, beta=1, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.lamda1, self.beta = lamda1, beta

    def create_state(self, index, weight):
        return (_zeros(weight), _zeros(weight))

    def rule(self):
        return UpdateRule(R.ftrl, 2, _BASE_SCALARS + ("lamda1", "beta") + self._clip_names())

    def _extra_scalars(self, index, t):
        return {"lamda1": self.lamda1, "beta": self.beta}


@register
class Adamax(Optimizer):
    """AdaMax; ``lr`` in step_scalars is lr/(1 − β1^t). Clips when clip_gradient is not None."""

    def __init__(self, learning_rate=0.002, beta1=0.9, beta2=0.999, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1, self.beta2 = beta1, beta2

    def _clips(self):
        return self.clip_gradient is not None

    def create_state(self, index, weight):
        return (_zeros(weight), _zeros(weight))

    def rule(self):
        return UpdateRule(R.adamax, 2, _BASE_SCALARS + ("beta1", "beta2") + self._clip_names())

    def _extra_scalars(self, index, t):
        return {"lr": self._get_lr(index) / (1.0 - self.beta1 ** t), "beta1": self.beta1,
                "beta2": self.beta2}


_NADAM_SCALARS = ("beta1", "beta2", "epsilon", "momentum_t", "momentum_t_1", "m_schedule",
                  "m_schedule_next", "beta2_pow_t")


@register
class Nadam(Optimizer):
    """Nadam; [Q] ``m_schedule`` is one product shared by all indices, as in MXNet."""

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8,
                 schedule_decay=0.004, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.schedule_decay = schedule_decay
        self.m_schedule = 1.0

    def _clips(self):
        return self.clip_gradient is not None

    def create_state(self, index, weight):
        return (_zeros(weight), _zeros(weight))

    def rule(self):
        return UpdateRule(R.nadam, 2, _BASE_SCALARS + _NADAM_SCALARS + self._clip_names())

    def _extra_scalars(self, index, t):
        momentum_t = self.beta1 * (1.0 - 0.5 * 0.96 ** (t * self.schedule_decay))
        momentum_t_1 = self.beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * self.schedule_decay))
        self.m_schedule = self.m_schedule * momentum_t
        return {"beta1": self.beta1, "beta2": self.beta2, "epsilon": self.epsilon,
                "momentum_t": momentum_t, "momentum_t_1": momentum_t_1,
                "m_schedule": self.m_schedule, "m_schedule_next": self.m_schedule * momentum_t_1,
                "beta2_pow_t": self.beta2 ** t}


# -- Updater and its pickle-free state format (runtime/optim/states.py) ------------------


class Updater:
    """Applies an optimizer to (index, grad, weight); states are created on first use.

    ``get_states()`` returns pickle-free bytes (layout in :mod:`runtime.optim.states`);
    ``set_states()`` checks every field of such bytes and raises SerializationError for a
    damaged or foreign blob. The optimizer block (dump_optimizer=True) keeps its class name
    and plain attributes; the lr_scheduler and symbol info stay those of the current one.
    """

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.states = {}
        self.states_synced = {}
        self.aggregate_updates = False

    def __call__(self, index, grad, weight):
        """Update one parameter or, given lists, several in order."""
        if not isinstance(index, (list, tuple)):
            index, grad, weight = [index], [grad], [weight]
        for idx, g, w in zip(index, grad, weight):
            if idx not in self.states:
                self.states[idx] = self.optimizer.create_state_multi_precision(idx, w)
                self.states_synced[idx] = True
            self.optimizer.update_multi_precision(idx, w, g, self.states[idx])

    def sync_state_context(self, state, context):
        """Arrays live in host memory; nothing to move."""
        return state

    def get_states(self, dump_optimizer=False) -> bytes:
        """Serialise ``states`` (and optionally the optimizer) in the layout documented above."""
        opt = optimizer_to_json(self.optimizer) if dump_optimizer else None
        return encode_states(self.states, opt)

    def set_states(self, states: bytes) -> None:
        """Restore from ``get_states()`` bytes; an optimizer block replaces ``self.optimizer``."""
        new_states, opt = decode_states(states)
        optimizer = self.optimizer if opt is None else \
            optimizer_from_json(opt, self.optimizer, Optimizer.opt_registry)
        self.states, self.optimizer = new_states, optimizer
        self.states_synced = dict.fromkeys(self.states, False)


def get_updater(optimizer) -> Updater:
    """The closure-like Updater MXNet's Module uses when not updating on a kvstore."""
    return Updater(optimizer)
