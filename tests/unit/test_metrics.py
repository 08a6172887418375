"""Metrics for conditional generators: SWD (Progressive GAN) and conditional accuracy.

Stand-in data: six procedurally drawn "styles" (grid, colour bands, rings, blobs on a dark
ground, stripes, squares), random colours and placement, made here with numpy.
"""

from __future__ import annotations

import numpy as np
import pytest

from workers.metrics import get_metric, list_metrics
from workers.metrics.conditional_accuracy import (
    StyleClassifier,
    conditional_accuracy,
    stratified_holdout,
    train_style_classifier,
)
from workers.metrics.swd import laplacian_pyramid, pyramid_resolutions, sliced_wasserstein, swd_noise_floor

N_CLASSES = 6


def stand_in_styles(n_per_class: int, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [6 * n_per_class, size, size, 3] and their class labels, one style per class."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images, labels = [], []
    for label in range(N_CLASSES):
        for _ in range(n_per_class):
            ground = rng.integers(0, 256, 3)
            paint = (ground + rng.integers(96, 160, 3)) % 256  # always in contrast with the ground
            if label == 0:  # grid of lines
                period = rng.uniform(0.2, 0.35)
                mask = ((xx % period) < 0.06) | ((yy % period) < 0.06)
            elif label == 1:  # two fields of colour
                mask = yy < rng.uniform(0.3, 0.7)
            elif label == 2:  # concentric rings
                cy, cx = rng.uniform(0.3, 0.7, 2)
                mask = (np.hypot(yy - cy, xx - cx) * rng.uniform(8, 14)).astype(int) % 2 == 0
            elif label == 3:  # blobs on a dark ground
                ground = rng.integers(0, 40, 3)
                paint = rng.integers(128, 256, 3)
                mask = np.zeros_like(xx, dtype=bool)
                for _ in range(6):
                    cy, cx = rng.uniform(0, 1, 2)
                    mask |= np.hypot(yy - cy, xx - cx) < rng.uniform(0.03, 0.08)
            elif label == 4:  # vertical stripes
                mask = (xx * rng.uniform(4, 8) + rng.uniform()).astype(int) % 2 == 0
            else:  # small scattered squares
                mask = np.zeros_like(xx, dtype=bool)
                for _ in range(4):
                    y0, x0 = rng.uniform(0, 0.85, 2)
                    mask |= (yy > y0) & (yy < y0 + 0.15) & (xx > x0) & (xx < x0 + 0.15)
            images.append(np.where(mask[..., None], paint, ground).astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.array(labels)


def noisy(images: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, sigma, images.shape)
    return np.clip(images + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def styles() -> tuple[np.ndarray, np.ndarray]:
    return stand_in_styles(16, seed=0)


# --- SWD --------------------------------------------------------------------------------------


def test_pyramid_has_one_level_per_resolution_down_to_16() -> None:
    assert pyramid_resolutions(32) == [32, 16]
    assert pyramid_resolutions(128) == [128, 64, 32, 16]
    with pytest.raises(ValueError):
        pyramid_resolutions(48)


def test_laplacian_bands_of_a_flat_image_are_zero_and_the_coarsest_level_keeps_the_colour() -> None:
    flat = np.full((2, 3, 64, 64), 100.0, dtype=np.float32)
    pyramid = laplacian_pyramid(flat, 3)
    assert [level.shape[2] for level in pyramid] == [64, 32, 16]
    for band in pyramid[:-1]:
        np.testing.assert_allclose(band, 0.0, atol=1e-3)
    np.testing.assert_allclose(pyramid[-1], 100.0, atol=1e-3)


def test_swd_of_a_set_with_itself_is_near_zero_and_far_below_swd_to_noise(styles) -> None:
    images, _ = styles
    noise = np.random.default_rng(1).integers(0, 256, images.shape, dtype=np.uint8)
    same = sliced_wasserstein(images, images, seed=0)
    to_noise = sliced_wasserstein(images, noise, seed=0)
    assert set(same["levels"]) == {"32", "16"}
    assert same["average"] < 0.15 * to_noise["average"]
    for level in ("32", "16"):
        assert same["levels"][level] < 0.15 * to_noise["levels"][level]


def test_swd_increases_with_a_growing_perturbation(styles) -> None:
    images, _ = styles
    averages = [sliced_wasserstein(images, noisy(images, sigma), seed=0)["average"] for sigma in (0, 8, 24, 64)]
    assert averages == sorted(averages)
    assert averages[-1] > 3 * averages[0]


def test_swd_is_deterministic_for_a_seed_and_varies_with_it(styles) -> None:
    images, _ = styles
    other = noisy(images, 16)
    assert sliced_wasserstein(images, other, seed=3) == sliced_wasserstein(images, other, seed=3)
    assert sliced_wasserstein(images, other, seed=3) != sliced_wasserstein(images, other, seed=4)


def test_noise_floor_is_well_below_swd_to_a_clearly_different_set() -> None:
    real, labels = stand_in_styles(24, seed=0)
    floor = swd_noise_floor(real, seed=0)
    # Same count as one half, but only two of the six styles, drawn with other colours.
    different, _ = stand_in_styles(36, seed=5)
    different = different[np.isin(np.repeat(np.arange(N_CLASSES), 36), [0, 4])][: len(real) // 2]
    half = real[np.sort(np.random.default_rng(0).permutation(len(real))[: len(real) // 2])]
    assert floor["average"] < 0.5 * sliced_wasserstein(half, different, seed=0)["average"]


def test_swd_ignores_a_global_colour_gain_because_descriptors_are_normalised_per_set(styles) -> None:
    images, _ = styles
    dimmed = (images * 0.5 + 40).astype(np.uint8)
    assert (
        sliced_wasserstein(images, dimmed, seed=0)["average"]
        < 1.5 * sliced_wasserstein(images, images, seed=0)["average"] + 1.0
    )


def test_swd_handles_64px_sets_of_unequal_size() -> None:
    real, _ = stand_in_styles(4, size=64, seed=0)
    fake, _ = stand_in_styles(3, size=64, seed=1)
    result = sliced_wasserstein(real, fake, seed=0)
    assert list(result["levels"]) == ["64", "32", "16"]
    assert result["average"] == pytest.approx(np.mean(list(result["levels"].values())))
    with pytest.raises(ValueError):
        sliced_wasserstein(real, fake[:, :32, :32], seed=0)


def test_registered_swd_reports_generated_and_real_floor_on_matching_sizes(styles) -> None:
    images, labels = styles
    result = get_metric("swd")(images, labels, noisy(images[:40], 48), labels[:40], seed=0)
    assert result["num_images"] == 40
    assert result["noise_floor"]["average"] < result["average"]


# --- conditional accuracy ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def classifier() -> StyleClassifier:
    images, labels = stand_in_styles(40, seed=0)
    return train_style_classifier(images, labels, N_CLASSES, seed=0, steps=120)


def test_holdout_is_stratified_and_disjoint() -> None:
    labels = np.repeat(np.arange(3), [10, 5, 1])
    train, holdout = stratified_holdout(labels, 0.2, seed=0)
    assert not set(train) & set(holdout)
    assert sorted(np.concatenate([train, holdout])) == list(range(16))
    assert np.bincount(labels[holdout], minlength=3).tolist() == [2, 1, 0]


def test_classifier_reaches_high_accuracy_on_separable_classes(classifier: StyleClassifier) -> None:
    assert classifier.num_holdout > 0
    assert classifier.real_accuracy >= 0.9
    unseen, unseen_labels = stand_in_styles(10, seed=7)
    assert conditional_accuracy(classifier, unseen, unseen_labels) >= 0.9


def test_conditional_accuracy_is_near_chance_against_shuffled_labels(classifier: StyleClassifier) -> None:
    unseen, unseen_labels = stand_in_styles(20, seed=8)
    shuffled = np.random.default_rng(0).permutation(unseen_labels)
    assert conditional_accuracy(classifier, unseen, shuffled) <= 1 / N_CLASSES + 0.15


def test_classifier_accepts_larger_images_and_is_deterministic_for_a_seed() -> None:
    images, labels = stand_in_styles(4, size=64, seed=0)
    first = train_style_classifier(images, labels, N_CLASSES, seed=1, steps=5)
    second = train_style_classifier(images, labels, N_CLASSES, seed=1, steps=5)
    np.testing.assert_array_equal(first.predict(images), second.predict(images))
    assert first.predict(images).shape == (len(images),)


def test_classifier_rejects_labels_outside_the_classes() -> None:
    images, labels = stand_in_styles(2, seed=0)
    with pytest.raises(ValueError):
        train_style_classifier(images, labels, n_classes=3, steps=1)


# --- registry ---------------------------------------------------------------------------------


def test_registry_lists_both_metrics_and_rejects_unknown_names() -> None:
    assert {"swd", "conditional_accuracy"} <= set(list_metrics())
    with pytest.raises(KeyError, match="known"):
        get_metric("fid")


def test_registered_conditional_accuracy_scores_generated_images_against_requested_labels() -> None:
    real, real_labels = stand_in_styles(8, seed=0)
    fake, fake_labels = stand_in_styles(5, seed=9)
    result = get_metric("conditional_accuracy")(real, real_labels, fake, fake_labels, seed=0)
    assert result["chance"] == pytest.approx(1 / N_CLASSES)
    assert set(result["per_class"]) == {str(label) for label in range(N_CLASSES)}
    assert result["accuracy"] > 2 * result["chance"]
    assert 0.0 <= result["real_accuracy"] <= 1.0
