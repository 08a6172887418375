"""The perceptual distance (workers.metrics.perceptual) against known truths: zero for an image
with itself, symmetric, growing with blur, and larger for a hole filled with flat grey than for
the same hole filled with the picture's own texture shifted by a pixel."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from workers.data.procedural import make_dataset
from workers.metrics.perceptual import perceptual_distances


@pytest.fixture(scope="module")
def paintings() -> np.ndarray:
    images, _ = make_dataset(1, 128, seed=5)
    return images


def blurred(image: np.ndarray, radius: float) -> np.ndarray:
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))


def test_zero_for_an_image_with_itself_and_symmetric(paintings: np.ndarray) -> None:
    assert np.allclose(perceptual_distances(paintings, paintings), 0, atol=1e-9)
    soft = [blurred(p, 2) for p in paintings]
    assert np.allclose(perceptual_distances(paintings, soft), perceptual_distances(soft, paintings))


def test_more_blur_is_farther_for_every_painting(paintings: np.ndarray) -> None:
    near, far = (perceptual_distances(paintings, [blurred(p, r) for p in paintings]) for r in (0.7, 3))
    # (a light blur leaves a painting of flat fields and straight edges nearly as it was)
    assert (near >= 0).all() and near.mean() > 0 and (far > near).all(), (near, far)


def test_a_flat_fill_is_farther_than_the_pictures_own_texture(paintings: np.ndarray) -> None:
    flat, textured = [], []
    for painting in paintings:
        hole = (slice(40, 88), slice(40, 88))
        grey = painting.copy()
        grey[hole] = painting[hole].reshape(-1, 3).mean(axis=0).astype(np.uint8)
        flat.append(grey)
        shifted = painting.copy()
        shifted[hole] = np.roll(painting, 1, axis=1)[hole]
        textured.append(shifted)
    assert (perceptual_distances(paintings, flat) > perceptual_distances(paintings, textured)).mean() >= 0.8


def test_pairs_of_different_sizes_and_bad_input(paintings: np.ndarray) -> None:
    small = np.asarray(Image.fromarray(paintings[0]).resize((64, 64)))
    mixed = perceptual_distances([paintings[0], small], [blurred(paintings[0], 2), blurred(small, 2)])
    assert mixed.shape == (2,) and (mixed > 0).all()
    assert mixed[0] == pytest.approx(perceptual_distances([paintings[0]], [blurred(paintings[0], 2)])[0])
    with pytest.raises(ValueError):
        perceptual_distances([paintings[0]], [small])
    with pytest.raises(ValueError):
        perceptual_distances(paintings[:2], paintings[:1])
