"""``sg.image``: MXNet's ``mx.image`` helpers on numpy HWC images, plus a batch resize.

Images are ``(H, W, C)`` (or ``(H, W)``) arrays, uint8 or float, as ``mx.image`` takes
NDArrays; results keep the input's dtype (integer results are rounded half up and
saturated, as OpenCV's 8-bit paths do). Sizes follow MXNet's argument order:
``imresize(src, w, h)``, ``size = (width, height)``.
"""

from __future__ import annotations

import random

import numpy as np

from runtime.image.resample import AREA, BICUBIC, BILINEAR, resample
from symgraph.errors import ShapeError

__all__ = ["imresize", "resize_short", "scale_down", "fixed_crop", "center_crop",
           "color_normalize", "resize_images", "hwc_to_chw"]

CHUNK_PIXELS = 1 << 21  # bounds the float64 temporaries of one chunk of a batch resize


def _interp(interp: int, sizes=None) -> int:
    """MXNet's ``_get_interp_method``: 9 = auto (cubic to enlarge, area to shrink, else
    bilinear), 10 = random among 0-4; anything else must be 0-4."""
    if interp == 9:
        if sizes:
            old_h, old_w, new_h, new_w = sizes
            if new_h > old_h and new_w > old_w:
                return BICUBIC
            if new_h < old_h and new_w < old_w:
                return AREA
        return BILINEAR
    if interp == 10:
        return random.randint(0, 3)
    if interp == 4:
        raise ValueError("interp=4 (Lanczos) is not supported; use 0-3 or 9")
    if interp not in (0, 1, 2, 3):
        raise ValueError(f"Unknown interp method {interp}")
    return interp


def _as_batch(images, what: str):
    """(N, H, W, C) view of a (N, H, W) or (N, H, W, C) array, and how to undo it."""
    images = np.asarray(images)
    if images.ndim == 3:
        return images[..., None], lambda out: out[..., 0]
    if images.ndim == 4:
        return images, lambda out: out
    raise ShapeError(f"{what}: expected (N, H, W) or (N, H, W, C) images, got shape "
                     f"{images.shape}")


def _cast_like(values: np.ndarray, dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        # OpenCV's 8-bit fixed-point paths add half and truncate: halves round up
        return np.clip(np.floor(values + 0.5), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def resize_images(images, size, interp: int = 1) -> np.ndarray:
    """Resize a whole data set at once: (N, H, W[, C]) -> (N, h, w[, C]), same dtype.

    ``size`` is ``(w, h)`` or one int for a square. Vectorized over the batch (chunked so
    temporaries stay bounded), e.g. all of MNIST to 32x32 in one call.
    """
    width, height = (size, size) if np.isscalar(size) else tuple(size)
    if int(width) < 1 or int(height) < 1:
        raise ValueError(f"resize_images: target size must be positive, got {size}")
    batch, undo = _as_batch(images, "resize_images")
    if batch.shape[1] < 1 or batch.shape[2] < 1:
        raise ShapeError(f"resize_images: empty images of shape {batch.shape[1:3]}")
    method = _interp(interp, (batch.shape[1], batch.shape[2], int(height), int(width)))
    per_image = max(1, int(height) * int(width) * batch.shape[3] + batch[0].size)
    step = max(1, CHUNK_PIXELS // per_image)
    out = np.empty((batch.shape[0], int(height), int(width), batch.shape[3]), batch.dtype)
    for start in range(0, batch.shape[0], step):
        part = resample(batch[start:start + step], int(height), int(width), method)
        out[start:start + step] = _cast_like(part, batch.dtype)
    return undo(out)


def imresize(src, w: int, h: int, interp: int = 1) -> np.ndarray:
    """Resize one image to width ``w`` and height ``h`` (MXNet's ``mx.image.imresize``)."""
    src = np.asarray(src)
    if src.ndim not in (2, 3):
        raise ShapeError(f"imresize: expected an (H, W) or (H, W, C) image, got shape "
                         f"{src.shape}")
    return resize_images(src[None], (w, h), interp)[0]


def resize_short(src, size: int, interp: int = 2) -> np.ndarray:
    """Resize so the shorter edge is ``size``, keeping the aspect ratio (integer floor)."""
    h, w = np.asarray(src).shape[:2]
    if h > w:
        new_h, new_w = size * h // w, size
    else:
        new_h, new_w = size, size * w // h
    return imresize(src, new_w, new_h, _interp(interp, (h, w, new_h, new_w)))


def scale_down(src_size, size):
    """Shrink the crop ``size = (w, h)`` to fit ``src_size = (w, h)``, keeping its ratio."""
    w, h = size
    sw, sh = src_size
    if sh < h:
        w, h = float(w * sh) / h, sh
    if sw < w:
        w, h = sw, float(h * sw) / w
    return int(w), int(h)


def fixed_crop(src, x0: int, y0: int, w: int, h: int, size=None, interp: int = 2):
    """The (x0, y0, w, h) crop, resized to ``size = (w, h)`` if given and different."""
    src = np.asarray(src)
    if x0 < 0 or y0 < 0 or x0 + w > src.shape[1] or y0 + h > src.shape[0]:
        raise ShapeError(f"fixed_crop: region x0={x0} y0={y0} w={w} h={h} is outside the "
                         f"{src.shape[1]}x{src.shape[0]} image")
    out = src[y0:y0 + h, x0:x0 + w]
    if size is not None and (w, h) != tuple(size):
        out = imresize(out, size[0], size[1], _interp(interp, (h, w, size[1], size[0])))
    return out


def center_crop(src, size, interp: int = 2):
    """Crop the centre of ``src`` to ``size = (w, h)`` (scaled down to fit, then resized
    back up to ``size``); returns ``(image, (x0, y0, w, h))`` like MXNet."""
    h, w = np.asarray(src).shape[:2]
    new_w, new_h = scale_down((w, h), size)
    x0, y0 = int((w - new_w) / 2), int((h - new_h) / 2)
    return fixed_crop(src, x0, y0, new_w, new_h, size, interp), (x0, y0, new_w, new_h)


def color_normalize(src, mean, std=None) -> np.ndarray:
    """``(src - mean) / std`` with per-channel ``mean``/``std`` broadcast over HWC."""
    out = np.asarray(src, dtype=np.float32) - np.asarray(mean, dtype=np.float32)
    if std is not None:
        out = out / np.asarray(std, dtype=np.float32)
    return out


def hwc_to_chw(images) -> np.ndarray:
    """(N, H, W, C) -> (N, C, H, W) and (N, H, W) -> (N, 1, H, W): the layout conv nets
    take (a contiguous copy)."""
    batch, _ = _as_batch(images, "hwc_to_chw")
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
