"""User-facing op functions (``sg.sym.FullyConnected`` ...): real functions with signatures.

Each is a thin wrapper that names its parameters and documents them; the op itself (shape
rule, reference, gradient, lowering) lives in ``symgraph/ops``.
"""
