"""Colour attributes: brightness, saturation and warmth on images whose values are known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from workers.data.attributes import ATTRIBUTE_NAMES, colour_attributes


def solid(rgb: tuple[int, int, int], size: int = 4) -> np.ndarray:
    return np.full((size, size, 3), rgb, dtype=np.uint8)


def test_attribute_order() -> None:
    assert ATTRIBUTE_NAMES == ("brightness", "saturation", "warmth")


def test_pure_black_is_dark_unsaturated_and_neutral() -> None:
    assert colour_attributes(solid((0, 0, 0))).tolist() == [0.0, 0.0, 0.5]


def test_pure_white_is_bright_unsaturated_and_neutral() -> None:
    np.testing.assert_allclose(colour_attributes(solid((255, 255, 255))), [1.0, 0.0, 0.5], atol=1e-6)


def test_red_is_warm_and_blue_is_cool() -> None:
    red, blue = colour_attributes(solid((255, 0, 0))), colour_attributes(solid((0, 0, 255)))
    np.testing.assert_allclose(red, [0.299, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(blue, [0.114, 1.0, 0.0], atol=1e-6)


def test_grey_has_no_saturation_and_luma_brightness() -> None:
    np.testing.assert_allclose(colour_attributes(solid((128, 128, 128))), [128 / 255, 0.0, 0.5], atol=1e-6)


def test_attributes_are_means_over_pixels() -> None:
    half = solid((0, 0, 0))
    half[:, :2] = (255, 0, 0)
    np.testing.assert_allclose(colour_attributes(half), [0.299 / 2, 0.5, 0.75], atol=1e-6)


def test_batches_give_one_row_per_image_in_float32() -> None:
    batch = np.stack([solid((0, 0, 0)), solid((255, 0, 0)), solid((0, 0, 255))])
    attributes = colour_attributes(batch)
    assert attributes.shape == (3, 3) and attributes.dtype == np.float32
    np.testing.assert_allclose(attributes[1], colour_attributes(batch[1]))
    assert attributes[:, 2].tolist() == pytest.approx([0.5, 1.0, 0.0])


def test_random_images_stay_in_the_unit_range() -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(16, 8, 8, 3), dtype=np.uint8)
    attributes = colour_attributes(images)
    assert attributes.min() >= 0.0 and attributes.max() <= 1.0


def test_wrong_shapes_are_refused() -> None:
    with pytest.raises(ValueError):
        colour_attributes(np.zeros((4, 4), dtype=np.uint8))
