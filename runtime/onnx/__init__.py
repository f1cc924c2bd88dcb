"""``sg.onnx``: export symgraph models to ONNX and import ONNX models back (MXNet's
``mx.onnx.export_model`` / ``import_model``).

Importing this package needs nothing beyond symgraph; the ``onnx`` package (the ``[onnx]``
extra) is imported on first use, and its absence is an error saying what to install.
"""

from __future__ import annotations

from runtime.onnx.errors import OnnxDependencyError, OnnxError  # noqa: F401
from runtime.onnx.export import export_model  # noqa: F401
from runtime.onnx.import_ import import_model, import_to_gluon  # noqa: F401

__all__ = ["export_model", "import_model", "import_to_gluon", "OnnxError",
           "OnnxDependencyError", "unsupported_ops"]


def unsupported_ops() -> list[str]:
    """Registered ops that have no export entry yet (internal gradient ops included)."""
    from runtime.onnx.table import registered_without_export

    return registered_without_export()
