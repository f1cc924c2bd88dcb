"""sg.image: OpenCV/MXNet resampling conventions on small hand-checked images, MXNet's
crop and resize helpers, and the vectorized whole-data-set resize on real MNIST."""

import os
from pathlib import Path

import numpy as np
import pytest

import symgraph as sg
from runtime.datasets import load_mnist

image = sg.image


def ramp(h, w, c=None):
    values = np.arange(h * w, dtype=np.float64).reshape(h, w)
    return values if c is None else np.repeat(values[..., None], c, axis=2) * np.arange(1, c + 1)


def test_bilinear_upscale_uses_half_pixel_centres_and_clamps():
    src = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)
    want = [[0, .25, .75, 1], [.5, .75, 1.25, 1.5], [1.5, 1.75, 2.25, 2.5], [2, 2.25, 2.75, 3]]
    out = image.imresize(src, 4, 4)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, want, atol=1e-6)


def test_bilinear_downscale_by_two_averages_blocks():
    out = image.imresize(ramp(4, 6), 3, 2)  # w=3, h=2: MXNet's (w, h) order
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out, [[3.5, 5.5, 7.5], [15.5, 17.5, 19.5]])


def test_nearest_takes_floor_of_scaled_index():
    out = image.imresize(ramp(4, 4), 2, 2, interp=0)
    np.testing.assert_array_equal(out, [[0, 2], [8, 10]])


def test_area_shrink_weights_fractional_cells():
    src = np.array([[0.0, 3.0, 6.0]])
    out = image.imresize(src, 2, 1, interp=3)
    # scale 1.5: cell 0 covers [0, 1.5) -> (0 + 0.5 * 3) / 1.5, cell 1 covers [1.5, 3)
    np.testing.assert_allclose(out, [[1.0, 5.0]])


def test_bicubic_uses_opencv_kernel():
    const = np.full((5, 7, 3), 42.0)
    np.testing.assert_allclose(image.imresize(const, 11, 9, interp=2), 42.0)
    row = np.tile(np.arange(8.0), (3, 1))
    out = image.imresize(row, 16, 3, interp=2)
    # output 3 samples x = 1.25: A = -0.75 weights at x - 1 .. x + 2 for frac 0.25 are
    # -0.10546875, 0.87890625, 0.26171875, -0.03515625 (not linear-exact, unlike A = -0.5)
    assert out[1, 3] == pytest.approx(0.87890625 + 2 * 0.26171875 - 3 * 0.03515625)
    assert out[1, 3] == pytest.approx(1.296875)
    assert out[1, 4] == pytest.approx(0.26171875 + 2 * 0.87890625 - 3 * 0.10546875)  # mirror


def test_uint8_results_round_and_saturate():
    src = np.array([[0, 255, 0, 255]], np.uint8)
    out = image.imresize(src, 8, 1, interp=2)
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    half = image.imresize(np.array([[0, 1]], np.uint8), 1, 1)
    assert half[0, 0] == 1  # 0.5 rounds up, as OpenCV's fixed-point bilinear does


def test_resize_images_equals_per_image_resize():
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (5, 9, 7, 3), dtype=np.uint8)
    out = image.resize_images(batch, (4, 6))
    assert out.shape == (5, 6, 4, 3) and out.dtype == np.uint8
    for k in range(5):
        np.testing.assert_array_equal(out[k], image.imresize(batch[k], 4, 6))
    grey = image.resize_images(batch[..., 0], 5)
    assert grey.shape == (5, 5, 5)
    np.testing.assert_array_equal(grey[2], image.imresize(batch[2, ..., 0], 5, 5))


def test_resize_short_keeps_aspect_ratio():
    assert image.resize_short(np.zeros((20, 30, 3), np.uint8), 10).shape == (10, 15, 3)
    assert image.resize_short(np.zeros((31, 20, 3), np.uint8), 10).shape == (15, 10, 3)


def test_center_crop_and_scale_down():
    src = ramp(20, 30, 3)  # h=20, w=30
    out, (x0, y0, w, h) = image.center_crop(src, (10, 8))
    assert (x0, y0, w, h) == (10, 6, 10, 8)
    np.testing.assert_array_equal(out, src[6:14, 10:20])
    assert image.scale_down((30, 20), (40, 40)) == (20, 20)
    big, region = image.center_crop(src, (40, 40))
    assert region == (5, 0, 20, 20) and big.shape == (40, 40, 3)


def test_color_normalize_and_layout():
    src = np.ones((2, 3, 3), np.uint8) * np.array([10, 20, 30], np.uint8)
    out = image.color_normalize(src, mean=[10, 10, 10], std=[1, 2, 4])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [0.0, 5.0, 5.0])
    chw = image.hwc_to_chw(np.zeros((4, 5, 6, 3)))
    assert chw.shape == (4, 3, 5, 6) and chw.flags.c_contiguous
    assert image.hwc_to_chw(np.zeros((4, 5, 6))).shape == (4, 1, 5, 6)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="Unknown interp"):
        image.imresize(np.zeros((4, 4)), 2, 2, interp=7)
    with pytest.raises(sg.ShapeError, match="expected an"):
        image.imresize(np.zeros(4), 2, 2)
    with pytest.raises(sg.ShapeError, match="outside"):
        image.fixed_crop(np.zeros((4, 4)), 2, 2, 3, 3)
    with pytest.raises(ValueError, match="positive"):
        image.resize_images(np.zeros((1, 4, 4)), (0, 3))


def test_mnist_to_32x32_in_one_call():
    root = os.environ.get("SYMGRAPH_DATA") or "/work/shared/datasets"
    if not (Path(root) / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("MNIST files not available (set SYMGRAPH_DATA)")
    images, _ = load_mnist(root, "test")
    out = image.resize_images(images, 32)
    assert out.shape == (10000, 32, 32) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[123], image.imresize(images[123], 32, 32))
    # bilinear resampling keeps the average brightness of a digit to within a level
    assert abs(out.mean() - images.mean()) < 1.0
