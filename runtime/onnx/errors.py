"""Errors of the ONNX bridge, in symgraph's one family (``sg.SymgraphError`` catches them)."""

from __future__ import annotations

from symgraph.errors import SymgraphError


class OnnxError(SymgraphError, ValueError):
    """An op, attribute or file that the ONNX bridge cannot convert; says which and why."""


class OnnxDependencyError(SymgraphError, ImportError):
    """The optional ``onnx`` (or ``onnxruntime``) package is not installed."""


def require(module: str):
    """Import ``onnx`` (or ``onnxruntime``) on first use, saying how to install it if absent."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise OnnxDependencyError(
            f"symgraph's ONNX bridge needs the '{module}' package, which is not installed: "
            f"pip install 'symgraph-compiler[onnx]' (or: pip install {module})"
        ) from None
