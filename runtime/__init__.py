"""symgraph's runtime: compiled executors, Module, data iterators, optimizers, metrics,
callbacks, checkpoints and data sets (MXNet 1.x's ``mx.*`` namespaces).

Users reach these through the ``import symgraph as sg`` facade (``sg.mod``, ``sg.io``, ...),
which imports each submodule lazily; importing this package itself loads nothing heavy.
"""
