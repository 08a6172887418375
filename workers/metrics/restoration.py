"""Restoration quality: how close a restored image is to the clean original, and how well a damage mask was found.

Not a generator metric: these compare one image with its original (numpy in, floats out), so they are
not registered in ``workers.metrics`` (whose registry holds metrics of a generator's image sets).

- Images are uint8 (or any numeric on the 0..255 scale), [H, W, 3] or [H, W], the two of one shape.
- ``region``/``mask`` are bool [H, W]; region metrics look only at pixels inside it.
- PSNR of identical images (or regions) is capped at ``PSNR_CAP_DB`` rather than infinite, so every
  result is a finite float that JSON can carry. SSIM of identical images is 1.
- A metric over an empty region is undefined: ``psnr``/``ssim`` refuse it, and ``restoration_quality``
  reports ``hole_psnr``/``hole_ssim`` as None when the mask is empty.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from skimage.metrics import structural_similarity

# 100 dB is an RMS error of 2.5e-3 grey levels: far below one quantisation step, so only identical
# images reach it, and it keeps the result finite (JSON has no infinity).
PSNR_CAP_DB = 100.0
DATA_RANGE = 255.0
# skimage's default SSIM window (7x7, uniform), shrunk for images smaller than it.
SSIM_WINDOW = 7


def _pair(clean: np.ndarray, restored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if clean.shape != restored.shape or clean.ndim not in (2, 3):
        raise ValueError(f"images must be [H, W] or [H, W, C] of one shape, got {clean.shape} and {restored.shape}")
    return clean.astype(np.float64), restored.astype(np.float64)


def _region(region: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if region is None:
        return None
    region = np.asarray(region, dtype=bool)
    if region.shape != shape[:2]:
        raise ValueError(f"region must be bool {shape[:2]}, got {region.shape}")
    if not region.any():
        raise ValueError("region is empty: the metric is undefined there")
    return region


def psnr(clean: np.ndarray, restored: np.ndarray, region: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels, or only over ``region``; capped at 100."""
    clean_f, restored_f = _pair(clean, restored)
    inside = _region(region, clean.shape)
    error = (clean_f - restored_f) ** 2
    mse = float(error[inside].mean() if inside is not None else error.mean())
    if mse == 0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10 * math.log10(DATA_RANGE**2 / mse))


def ssim(clean: np.ndarray, restored: np.ndarray, region: np.ndarray | None = None) -> float:
    """Structural similarity (skimage, 7x7 uniform window, channels averaged).

    Whole image: skimage's mean SSIM. With ``region``: the mean of the SSIM map over the region's
    pixels (each pixel's SSIM is computed from its window, which may reach outside the region).
    """
    clean_f, restored_f = _pair(clean, restored)
    inside = _region(region, clean.shape)
    window = min(SSIM_WINDOW, *(side - 1 + side % 2 for side in clean.shape[:2]))  # odd, at most the side
    if window < 3:
        raise ValueError(f"images must be at least 3x3 px for SSIM, got {clean.shape[:2]}")
    channel_axis = -1 if clean.ndim == 3 else None
    mean, full = structural_similarity(
        clean_f, restored_f, win_size=window, data_range=DATA_RANGE, channel_axis=channel_axis, full=True
    )
    if inside is None:
        return float(mean)
    per_pixel = full.mean(axis=-1) if clean.ndim == 3 else full
    return float(per_pixel[inside].mean())


def restoration_quality(clean: np.ndarray, restored: np.ndarray, mask: np.ndarray) -> dict[str, float | None]:
    """``psnr``/``ssim`` over the whole image, ``hole_psnr``/``hole_ssim`` over ``mask`` only (None if it is empty)."""
    mask = np.asarray(mask, dtype=bool)
    has_hole = bool(mask.any())
    return {
        "psnr": psnr(clean, restored),
        "ssim": ssim(clean, restored),
        "hole_psnr": psnr(clean, restored, mask) if has_hole else None,
        "hole_ssim": ssim(clean, restored, mask) if has_hole else None,
    }


def _within(mask: np.ndarray, tolerance: float) -> np.ndarray:
    """Pixels within ``tolerance`` px (Euclidean) of a True pixel of ``mask``."""
    if tolerance <= 0 or not mask.any():
        return mask
    outside = np.where(mask, 0, 255).astype(np.uint8)
    return cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) <= tolerance


def mask_precision_recall(predicted: np.ndarray, truth: np.ndarray, tolerance: float = 0) -> dict[str, float]:
    """Precision, recall, F1 and IoU of a predicted damage mask against the true one.

    With ``tolerance`` > 0 a predicted pixel within ``tolerance`` px of a true pixel counts as correct,
    and a true pixel within ``tolerance`` px of a predicted one counts as found: a detector one pixel
    off a 1-3 px scratch is not wrong. IoU is ``P*R / (P + R - P*R)``, which equals
    |pred & truth| / |pred | truth| when ``tolerance`` is 0.

    Conventions for empty masks: nothing predicted has precision 1 (no false alarm); nothing to find
    has recall 1; both empty is a perfect score.
    """
    predicted, truth = np.asarray(predicted, dtype=bool), np.asarray(truth, dtype=bool)
    if predicted.shape != truth.shape or predicted.ndim != 2:
        raise ValueError(f"masks must be bool [H, W] of one shape, got {predicted.shape} and {truth.shape}")
    n_predicted, n_truth = int(predicted.sum()), int(truth.sum())
    precision = float((predicted & _within(truth, tolerance)).sum() / n_predicted) if n_predicted else 1.0
    recall = float((truth & _within(predicted, tolerance)).sum() / n_truth) if n_truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    union_share = precision + recall - precision * recall
    iou = precision * recall / union_share if union_share > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": float(f1), "iou": float(iou)}
