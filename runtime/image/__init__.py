"""``sg.image``: image helpers with ``mx.image``'s names and semantics, on numpy arrays.

``imresize``, ``resize_short``, ``center_crop``, ``fixed_crop``, ``scale_down``,
``color_normalize`` work on one (H, W[, C]) image; ``resize_images`` resizes a whole
(N, H, W[, C]) data set in one vectorized call and ``hwc_to_chw`` gives conv nets their
layout. Resampling follows OpenCV's ``cv2.resize`` (see ``resample``).
"""

from runtime.image.ops import (  # noqa: F401
    center_crop,
    color_normalize,
    fixed_crop,
    hwc_to_chw,
    imresize,
    resize_images,
    resize_short,
    scale_down,
)
from runtime.image.resample import AREA, BICUBIC, BILINEAR, NEAREST  # noqa: F401

__all__ = ["imresize", "resize_short", "scale_down", "fixed_crop", "center_crop",
           "color_normalize", "resize_images", "hwc_to_chw", "NEAREST", "BILINEAR",
           "BICUBIC", "AREA"]
