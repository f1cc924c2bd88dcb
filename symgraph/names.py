"""MXNet's naming and attribute scopes: NameManager counters, Prefix, AttrScope.

The default manager is process-wide and its counters keep going across networks, exactly
as MXNet's thread-local default does (a second unnamed FullyConnected in a process is
``fullyconnected1``). ``with NameManager():`` starts fresh counters.
"""

from __future__ import annotations

import threading

_state = threading.local()


class NameManager:
    """Hands out ``hint + counter`` names; an explicit name is used unchanged."""

    def __init__(self):
        self._counter: dict[str, int] = {}
        self._old = None

    def get(self, name: str | None, hint: str) -> str:
        if name:
            return name
        count = self._counter.get(hint, 0)
        self._counter[hint] = count + 1
        return f"{hint}{count}"

    def __enter__(self):
        self._old = current()
        _state.manager = self
        return self

    def __exit__(self, *exc):
        _state.manager = self._old


class Prefix(NameManager):
    """Puts ``prefix`` in front of every op name, generated or explicit (not variables)."""

    def __init__(self, prefix: str):
        super().__init__()
        self._prefix = prefix

    def get(self, name: str | None, hint: str) -> str:
        return self._prefix + super().get(name, hint)


def current() -> NameManager:
    manager = getattr(_state, "manager", None)
    if manager is None:
        manager = _state.manager = NameManager()
    return manager


class AttrScope:
    """``with AttrScope(ctx_group='dev1'):`` adds string attrs to every symbol made inside."""

    def __init__(self, **attrs):
        for key, value in attrs.items():
            if not isinstance(value, str):
                raise ValueError(f"AttrScope values must be strings, got {key}={value!r}")
        self._attrs = attrs
        self._old = None

    def get(self, attr: dict | None) -> dict:
        merged = dict(self._attrs)
        if attr:
            merged.update(attr)
        return merged

    def __enter__(self):
        self._old = current_attr_scope()
        merged = AttrScope(**self._old.get(self._attrs)) if self._old else self
        _state.attr_scope = merged
        return self

    def __exit__(self, *exc):
        _state.attr_scope = self._old


def current_attr_scope() -> AttrScope:
    scope = getattr(_state, "attr_scope", None)
    if scope is None:
        scope = _state.attr_scope = AttrScope()
    return scope
