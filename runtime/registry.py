"""Name -> class registries as MXNet's ``create`` functions use them.

Initializers and metrics are both looked up case-insensitively by class name or alias,
from a JSON list ``'["name", {kwargs}]'``, a JSON object, or a dict whose ``dict_key``
entry names the class; one implementation serves both.
"""

from __future__ import annotations

import json


class Registry:
    """Lower-case name -> class, with MXNet's spec forms for ``create``."""

    def __init__(self, kind: str, dict_key: str):
        self.kind = kind
        self.dict_key = dict_key
        self.classes: dict[str, type] = {}

    def register(self, klass):
        """Class decorator: ``create('<classname lower>')`` builds this class."""
        self.classes[klass.__name__.lower()] = klass
        return klass

    def alias(self, *names):
        """Class decorator: extra (case-insensitive) names for ``create``."""
        def wrap(klass):
            for name in names:
                self.classes[name.lower()] = klass
            return klass
        return wrap

    def create(self, spec, *args, **kwargs):
        """Build from a name, a JSON list/object string, or a dict."""
        if isinstance(spec, dict):
            spec = dict(spec)
            return self.create(spec.pop(self.dict_key), *args, **spec)
        if not isinstance(spec, str):
            raise TypeError(f"Cannot create a {self.kind} from {spec!r}")
        if spec.startswith("["):
            name, kw = json.loads(spec)
            return self.create(name, **kw)
        if spec.startswith("{"):
            return self.create(json.loads(spec))
        klass = self.classes.get(spec.lower())
        if klass is None:
            raise ValueError(f"Cannot find {self.kind} {spec}. Registered: "
                             f"{', '.join(sorted(self.classes))}")
        return klass(*args, **kwargs)
