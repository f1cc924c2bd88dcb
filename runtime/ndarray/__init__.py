"""NDArray, the tracer that turns imperative code into compiled graphs, and autograd."""

from runtime.ndarray.ndarray import AutogradError, HybridizedReadError, NDArray, as_ndarray  # noqa: F401
