"""Import every op family so each registers itself. Adding an op family = one line here."""

from . import (  # noqa: F401
    array_ops,
    conv,
    conv_grouped,
    elementwise,
    elementwise_base,
    nn,
    pooling,
    random_ops,
    shape_ops,
    tensor,
)
