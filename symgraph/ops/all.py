"""Import every op family so each registers itself. Adding an op family = one line here."""

from . import array_ops, elementwise, elementwise_base, nn, random_ops, shape_ops, tensor  # noqa: F401
