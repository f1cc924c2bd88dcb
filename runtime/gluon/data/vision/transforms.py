"""Image transforms. Each works on one HWC image; those with a ``batch`` method also work
on a whole NHWC batch at once, which the DataLoader uses on in-memory datasets."""

from __future__ import annotations

import numpy as np

from runtime.image.ops import imresize
from runtime.ndarray.ndarray import NDArray
from runtime.random import get_rng


def _np(x):
    return x._value() if isinstance(x, NDArray) else np.asarray(x)


class Compose:
    """Apply transforms in order; batched when every member is."""

    def __init__(self, transforms):
        self._transforms = list(transforms)
        if all(hasattr(t, "batch") for t in self._transforms):
            self.batch = self._batch

    def __call__(self, x):
        for transform in self._transforms:
            x = transform(x)
        return x

    def _batch(self, x):
        for transform in self._transforms:
            x = transform.batch(x)
        return x


class ToTensor:
    """HWC uint8 in [0, 255] -> CHW float32 in [0, 1] (NHWC -> NCHW for batches)."""

    def __call__(self, x):
        value = _np(x)
        if value.ndim == 4:
            return NDArray(self.batch(value))
        return NDArray(np.ascontiguousarray(value.transpose(2, 0, 1), dtype=np.float32) / 255)

    @staticmethod
    def batch(x):
        out = np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2), dtype=np.float32)
        out *= np.float32(1 / 255)
        return out


class Normalize:
    """``(x - mean) / std`` per channel of a CHW image (or NCHW batch)."""

    def __init__(self, mean=0.0, std=1.0):
        self._mean = np.asarray(mean, np.float32).reshape(-1, 1, 1)
        self._std = np.asarray(std, np.float32).reshape(-1, 1, 1)

    def __call__(self, x):
        return NDArray(((_np(x) - self._mean) / self._std).astype(np.float32))

    def batch(self, x):
        x = np.asarray(x, np.float32)
        x -= self._mean
        x /= self._std
        return x


class Cast:
    def __init__(self, dtype="float32"):
        self._dtype = np.dtype(dtype)

    def __call__(self, x):
        return NDArray(_np(x).astype(self._dtype))

    def batch(self, x):
        return np.asarray(x).astype(self._dtype)


class RandomFlipLeftRight:
    """Mirror an HWC image horizontally with probability 1/2."""

    def __call__(self, x):
        value = _np(x)
        if get_rng().random() < 0.5:
            value = value[:, ::-1]
        return NDArray(np.ascontiguousarray(value))


class CenterCrop:
    """The central (h, w) window of an HWC image."""

    def __init__(self, size):
        self._size = (size, size) if isinstance(size, int) else tuple(size)

    def __call__(self, x):
        value = _np(x)
        w, h = self._size
        top, left = (value.shape[0] - h) // 2, (value.shape[1] - w) // 2
        return NDArray(np.ascontiguousarray(value[top:top + h, left:left + w]))


class RandomCrop:
    """A random (h, w) window of an HWC image, after zero padding of ``pad`` pixels."""

    def __init__(self, size, pad=None):
        self._size = (size, size) if isinstance(size, int) else tuple(size)
        self._pad = pad

    def __call__(self, x):
        value = _np(x)
        if self._pad:
            p = self._pad
            value = np.pad(value, ((p, p), (p, p), (0, 0)))
        w, h = self._size
        rng = get_rng()
        top = int(rng.integers(0, value.shape[0] - h + 1))
        left = int(rng.integers(0, value.shape[1] - w + 1))
        return NDArray(np.ascontiguousarray(value[top:top + h, left:left + w]))


def _resize(value, size, interpolation):
    """An HWC image resized to (h, w) = ``size`` by ``sg.image`` (OpenCV's conventions, as
    MXNet's transforms call ``imresize``)."""
    h, w = size
    return imresize(value, w, h, interpolation)


class Resize:
    """Resize an HWC image to ``size`` ((w, h) or one int for both; ``keep_ratio`` scales
    the shorter side to ``size``)."""

    def __init__(self, size, keep_ratio=False, interpolation=1):
        self._size, self._keep, self._interp = size, keep_ratio, interpolation

    def __call__(self, x):
        value = _np(x)
        if isinstance(self._size, int):
            if self._keep:
                h, w = value.shape[:2]
                scale = self._size / min(h, w)
                target = (max(1, round(h * scale)), max(1, round(w * scale)))
            else:
                target = (self._size, self._size)
        else:
            target = (self._size[1], self._size[0])
        return NDArray(_resize(value, target, self._interp))


class RandomResizedCrop:
    """A random crop of ``scale`` area fraction and ``ratio`` aspect, resized to ``size``."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), interpolation=1):
        self._size = (size, size) if isinstance(size, int) else tuple(size)
        self._scale, self._ratio, self._interp = scale, ratio, interpolation

    def __call__(self, x):
        value = _np(x)
        h, w = value.shape[:2]
        rng = get_rng()
        for _ in range(10):
            area = h * w * rng.uniform(*self._scale)
            aspect = np.exp(rng.uniform(np.log(self._ratio[0]), np.log(self._ratio[1])))
            cw, ch = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
                value = value[top:top + ch, left:left + cw]
                break
        return NDArray(_resize(value, (self._size[1], self._size[0]), self._interp))
