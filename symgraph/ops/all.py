"""Import every op family so each registers itself. Adding an op family = one line here."""

from . import elementwise, elementwise_base, nn, shape_ops, tensor  # noqa: F401
