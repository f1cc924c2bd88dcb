"""Module's bind-time checks: values that would otherwise give wrong numbers silently.

MXNet refuses a batch whose feature shape differs from the bound one ("Shape of unspecified
arg: fc1_weight changed"), parameters whose shapes do not fit, unknown parameter names and
label names the data does not provide. Module calls these before it compiles anything, so
the error is raised where the user made the mistake and names the input or parameter, the
shape it has and the shape that was expected.
"""

from __future__ import annotations

import numpy as np

from symgraph.errors import BindError, ParameterError, ShapeError, format_shape
from symgraph.infer import label_only_variables


def _shape_of(value) -> tuple:
    return tuple(np.shape(value))


def expected_param_shapes(symbol, descs) -> dict:
    """Shapes of every argument and aux state, inferred from the input descriptors
    (unknown ones are left out; inference errors are raised as they are)."""
    args = set(symbol.list_arguments())
    shapes = {d.name: tuple(d.shape) for d in descs if d.name in args}
    arg_shapes, _, aux_shapes = symbol.infer_shape_partial(**shapes)
    names = symbol.list_arguments() + symbol.list_auxiliary_states()
    return {n: tuple(s) for n, s in zip(names, list(arg_shapes) + list(aux_shapes)) if s}


def _describe_inputs(descs) -> str:
    return ", ".join(f"'{d.name}' {format_shape(tuple(d.shape))}" for d in descs)


def check_reshape(symbol, bound_descs, new_descs, current: dict):
    """Only the batch size may change after bind: a new shape that would change a
    parameter's shape is a ShapeError naming the input(s), bound and given shapes."""
    expected = expected_param_shapes(symbol, new_descs)
    changed = [(n, _shape_of(v), expected[n]) for n, v in current.items()
               if n in expected and _shape_of(v) != expected[n]]
    if not changed:
        return
    old = {d.name: tuple(d.shape) for d in bound_descs}
    moved = [d for d in new_descs if d.name in old and old[d.name][1:] != tuple(d.shape)[1:]]
    moved = moved or [d for d in new_descs if d.name in old and old[d.name] != tuple(d.shape)]
    inputs = "; ".join(f"input '{d.name}' was bound with shape {format_shape(old[d.name])}, "
                       f"the batch has shape {format_shape(tuple(d.shape))}" for d in moved)
    params = ", ".join(f"'{n}' {format_shape(a)} -> {format_shape(b)}" for n, a, b in changed)
    raise ShapeError(f"{inputs or 'input shapes changed'}: only the batch size may change "
                     f"after bind (the parameters would change shape: {params}); bind the "
                     "module again (force_rebind=True) for the new input shape")


def check_param_values(given: dict | None, expected: dict, what: str, source: str):
    """Every given value must have the exact shape the bound symbol needs (numpy would
    broadcast a (1, 16) value into a (64, 16) weight without a word)."""
    for name, value in (given or {}).items():
        want = expected.get(name)
        if want is not None and _shape_of(value) != tuple(want):
            raise ShapeError(f"{source}: {what} '{name}' has shape "
                             f"{format_shape(_shape_of(value))}, the symbol needs "
                             f"{format_shape(tuple(want))}")


def check_extra(given: dict | None, own, what: str, source: str):
    """Names the symbol does not have raise (MXNet's 'Find name ... that is not in the
    arguments'), unless the caller passed allow_extra."""
    extra = sorted(n for n in (given or {}) if n not in own)
    if extra:
        raise ParameterError(f'{source}: Find name "{extra[0]}" that is not in the {what} '
                             f"(unknown: {', '.join(extra)}; the symbol has "
                             f"{', '.join(sorted(own)) or 'none'}); pass allow_extra=True "
                             "to ignore them")


def check_missing(given: dict | None, own, what: str, source: str):
    """Values a checkpoint lacks would stay zero: name them."""
    missing = sorted(n for n in own if n not in (given or {}))
    if missing:
        raise ParameterError(f"{source}: no value for the {what} {', '.join(missing)}; "
                             "to initialize them instead, create Module(symbol), bind it and "
                             "call init_params(arg_params=..., aux_params=..., "
                             "allow_missing=True)")


def check_loaded_params(symbol, descs, arg_params, aux_params, param_names, aux_names,
                        source):
    """Parameters preset before bind (Module.load, a re-bind, a shared module) must all
    be there, be known to the symbol and fit the shapes the new inputs give."""
    check_extra(arg_params, param_names, "arguments", source)
    check_extra(aux_params, aux_names, "auxiliary states", source)
    # a loss's label bound without label_names (predict) is no parameter a file would hold
    labels = label_only_variables(symbol.outputs)
    check_missing(arg_params, [n for n in param_names if n not in labels], "arguments", source)
    check_missing(aux_params, aux_names, "auxiliary states", source)
    expected = expected_param_shapes(symbol, descs)
    check_param_values(arg_params, expected, "parameter", source)
    check_param_values(aux_params, expected, "auxiliary state", source)


def check_label_names(label_names, label_descs, arguments, data_names):
    """Labels the symbol reads must come from the data: a label the iterator calls
    something else would silently stay zero while training runs (MXNet refuses to bind)."""
    if label_descs is None:
        return
    provided = [d.name for d in label_descs]
    unfed = [n for n in label_names if n in arguments and n not in provided]
    stray = [n for n in provided if n in arguments and n not in label_names
             and n not in data_names]
    if unfed or stray:
        raise BindError(f"label names do not match the data: the module's label_names are "
                        f"{list(label_names)}, the data provides labels {provided}"
                        + (f"; {unfed} would never be fed" if unfed else "")
                        + (f"; {stray} would be trained as parameters" if stray else "")
                        + ". Name the labels alike (Module(..., label_names=...) or the "
                          "iterator's label_name)")
