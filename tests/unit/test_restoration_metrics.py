"""Restoration metrics: known values, region handling, and JSON-safe results."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from workers.data.procedural import make_dataset
from workers.metrics.restoration import PSNR_CAP_DB, mask_precision_recall, psnr, restoration_quality, ssim


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return make_dataset(1, 64, seed=0)[0][2]


def test_identical_images_score_the_psnr_cap_and_ssim_one(image: np.ndarray) -> None:
    assert psnr(image, image.copy()) == PSNR_CAP_DB == 100.0
    assert ssim(image, image.copy()) == pytest.approx(1.0, abs=1e-9)
    region = np.zeros(image.shape[:2], bool)
    region[10:20, 10:30] = True
    assert psnr(image, image, region) == PSNR_CAP_DB
    assert ssim(image, image, region) == pytest.approx(1.0, abs=1e-9)


def test_psnr_matches_its_formula() -> None:
    clean = np.full((16, 16, 3), 100, np.uint8)
    off_by_ten = clean + 10
    assert psnr(clean, off_by_ten) == pytest.approx(10 * math.log10(255**2 / 100))
    assert psnr(clean, off_by_ten) > psnr(clean, clean + 20)


def test_region_metrics_ignore_pixels_outside_the_region(image: np.ndarray) -> None:
    region = np.zeros(image.shape[:2], bool)
    region[20:40, 20:40] = True
    ruined_outside = image.copy()
    ruined_outside[~region] = 255 - ruined_outside[~region]
    # PSNR sees only the region's own pixels.
    assert psnr(image, ruined_outside, region) == PSNR_CAP_DB
    # SSIM's windows reach 3 px past a pixel; the region's core (over 3 px from its edge) is untouched.
    core = np.zeros_like(region)
    core[24:36, 24:36] = True
    assert ssim(image, ruined_outside, core) == pytest.approx(1.0, abs=1e-9)
    assert ssim(image, ruined_outside) < 0.5


def test_restoration_quality_reports_whole_image_and_hole_scores(image: np.ndarray) -> None:
    mask = np.zeros(image.shape[:2], bool)
    mask[8:24, 8:24] = True
    restored = image.copy()
    restored[mask] = 128  # a poor fill, inside the hole only
    quality = restoration_quality(image, restored, mask)
    assert set(quality) == {"psnr", "ssim", "hole_psnr", "hole_ssim"}
    assert quality["hole_psnr"] < quality["psnr"]  # the error is diluted over the whole image
    assert quality["hole_ssim"] < quality["ssim"]
    assert quality["hole_psnr"] == pytest.approx(psnr(image, restored, mask))
    json.dumps(quality, allow_nan=False)
    assert all(isinstance(value, float) for value in quality.values())


def test_an_empty_hole_has_no_hole_scores(image: np.ndarray) -> None:
    quality = restoration_quality(image, image, np.zeros(image.shape[:2], bool))
    assert quality["hole_psnr"] is None and quality["hole_ssim"] is None
    assert quality["psnr"] == PSNR_CAP_DB
    json.dumps(quality, allow_nan=False)
    with pytest.raises(ValueError):
        psnr(image, image, np.zeros(image.shape[:2], bool))


def test_mismatched_shapes_are_refused(image: np.ndarray) -> None:
    with pytest.raises(ValueError):
        psnr(image, image[:32])
    with pytest.raises(ValueError):
        ssim(image, image, np.ones((3, 3), bool))


def test_ssim_works_on_small_images() -> None:
    rng = np.random.default_rng(0)
    tiny = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    assert ssim(tiny, tiny) == pytest.approx(1.0, abs=1e-9)


def test_mask_scores_of_exact_partial_and_empty_predictions() -> None:
    truth = np.zeros((32, 32), bool)
    truth[8:16, 8:16] = True  # 64 px
    assert mask_precision_recall(truth, truth) == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "iou": 1.0}
    half = np.zeros_like(truth)
    half[8:16, 8:12] = True  # 32 px, all inside the truth
    scores = mask_precision_recall(half, truth)
    assert scores["precision"] == 1.0 and scores["recall"] == 0.5
    assert scores["iou"] == pytest.approx(0.5) and scores["f1"] == pytest.approx(2 / 3)
    nothing = np.zeros_like(truth)
    assert mask_precision_recall(nothing, truth) == {"precision": 1.0, "recall": 0.0, "f1": 0.0, "iou": 0.0}
    assert mask_precision_recall(truth, nothing) == {"precision": 0.0, "recall": 1.0, "f1": 0.0, "iou": 0.0}
    assert mask_precision_recall(nothing, nothing)["f1"] == 1.0
    json.dumps(scores, allow_nan=False)


def test_iou_is_the_usual_intersection_over_union_without_tolerance() -> None:
    rng = np.random.default_rng(1)
    predicted, truth = rng.random((40, 40)) < 0.3, rng.random((40, 40)) < 0.3
    expected = (predicted & truth).sum() / (predicted | truth).sum()
    assert mask_precision_recall(predicted, truth)["iou"] == pytest.approx(expected)


def test_a_scratch_found_one_pixel_off_counts_with_tolerance() -> None:
    truth = np.zeros((32, 32), bool)
    truth[10, 2:30] = True  # a 1 px scratch
    shifted = np.roll(truth, 1, axis=0)
    assert mask_precision_recall(shifted, truth)["f1"] == 0.0
    assert mask_precision_recall(shifted, truth, tolerance=1) == {
        "precision": 1.0, "recall": 1.0, "f1": 1.0, "iou": 1.0,
    }
    far = np.roll(truth, 4, axis=0)
    assert mask_precision_recall(far, truth, tolerance=2)["f1"] == 0.0
