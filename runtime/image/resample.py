"""Separable resampling with OpenCV's ``cv2.resize`` conventions (what ``mx.image`` calls).

Each output axis is a table of taps: for every output index, a few source indices (clamped
to the border, OpenCV's BORDER_REPLICATE) and their weights. Applying the tables is two
gathers and weighted sums over whole arrays, so a batch of images is resized at once.

Source coordinates, per OpenCV, with ``scale = src / dst``:

* nearest (0): ``floor(dx * scale)``;
* bilinear (1) and bicubic (2): half-pixel centres, ``(dx + 0.5) * scale - 0.5``; cubic
  uses Keys' kernel with ``A = -0.75`` over 4 taps;
* area (3): shrinking averages the source cells a destination cell covers (fractional
  overlap); enlarging interpolates like OpenCV's INTER_AREA upscale.

OpenCV computes 8-bit images in fixed point, so a uint8 result can differ from it by one
level; floats follow the formulas exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NEAREST, BILINEAR, BICUBIC, AREA = 0, 1, 2, 3
CUBIC_A = -0.75


@dataclass(frozen=True)
class Taps:
    """For each of ``n`` outputs: source ``index`` (n, k) and ``weight`` (n, k)."""

    index: np.ndarray
    weight: np.ndarray


def _clamped(index, size):
    return np.clip(index, 0, size - 1)


def _nearest(src, dst):
    scale = src / dst
    index = np.minimum(np.floor(np.arange(dst) * scale).astype(np.int64), src - 1)
    return Taps(index[:, None], np.ones((dst, 1)))


def _centre(src, dst):
    coord = (np.arange(dst) + 0.5) * (src / dst) - 0.5
    base = np.floor(coord)
    return base.astype(np.int64), coord - base


def _bilinear(src, dst):
    base, frac = _centre(src, dst)
    frac = np.where(base < 0, 0.0, frac)
    base = np.maximum(base, 0)
    index = _clamped(np.stack([base, base + 1], axis=1), src)
    return Taps(index, np.stack([1.0 - frac, frac], axis=1))


def _cubic_weights(x):
    a = CUBIC_A
    w0 = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a
    w1 = ((a + 2) * x - (a + 3)) * x * x + 1
    w2 = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1
    return np.stack([w0, w1, w2, 1.0 - w0 - w1 - w2], axis=1)


def _bicubic(src, dst):
    base, frac = _centre(src, dst)
    index = _clamped(base[:, None] + np.arange(-1, 3)[None, :], src)
    return Taps(index, _cubic_weights(frac))


def _area(src, dst):
    scale = src / dst
    if scale <= 1.0:  # enlarging: OpenCV's INTER_AREA upscale rule
        base = np.floor(np.arange(dst) * scale).astype(np.int64)
        frac = (np.arange(dst) + 1) - (base + 1) / scale
        frac = np.where(frac <= 0, 0.0, frac - np.floor(frac))
        index = _clamped(np.stack([base, base + 1], axis=1), src)
        return Taps(index, np.stack([1.0 - frac, frac], axis=1))
    width = int(math.ceil(scale)) + 1
    start = np.arange(dst) * scale
    first = np.floor(start).astype(np.int64)
    cells = first[:, None] + np.arange(width)[None, :]
    lo = np.maximum(cells, start[:, None])
    hi = np.minimum(cells + 1, (start + scale)[:, None])
    weight = np.clip(hi - lo, 0.0, None) / scale
    return Taps(_clamped(cells, src), weight)


_TABLES = {NEAREST: _nearest, BILINEAR: _bilinear, BICUBIC: _bicubic, AREA: _area}


def taps(src: int, dst: int, interp: int) -> Taps:
    return _TABLES[interp](src, dst)


def _along(x: np.ndarray, table: Taps, axis: int) -> np.ndarray:
    """Weighted sum of the gathered taps along ``axis`` (one gather per tap)."""
    shape = [1] * x.ndim
    shape[axis] = -1
    out = None
    for k in range(table.index.shape[1]):
        term = np.take(x, table.index[:, k], axis=axis)
        term *= table.weight[:, k].astype(x.dtype).reshape(shape)
        out = term if out is None else np.add(out, term, out=out)
    return out


def resample(images: np.ndarray, out_h: int, out_w: int, interp: int) -> np.ndarray:
    """Resize ``images`` (N, H, W, C) to (N, out_h, out_w, C); float64 images are computed
    in float64, everything else (uint8 included) in float32."""
    work = np.float64 if images.dtype == np.float64 else np.float32
    x = images.astype(work, copy=False)
    tall = _along(x, taps(images.shape[1], out_h, interp), 1)
    return _along(tall, taps(images.shape[2], out_w, interp), 2)
