"""Import every op family so each registers itself. Adding an op family = one line here."""

from . import (  # noqa: F401
    array_ops,
    cast,
    conv,
    deconv,
    elementwise,
    elementwise_base,
    indexing,
    linalg,
    losses,
    nn,
    norm,
    pad,
    pooling,
    random_ops,
    replicate,
    shape_ops,
    slicing,
    sorting,
    tensor,
    upsampling,
)
