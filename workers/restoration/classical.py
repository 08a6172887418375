"""Restoration operations that need no trained model: inpainting, defading, denoising, damage detection.

All take and return uint8 [H, W, 3] RGB; masks are bool [H, W]. None of them changes its input.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.restoration import inpaint_biharmonic

from shared.job_params import INPAINT_METHODS, InpaintMethod

# cv2.inpaint's neighbourhood radius. On 48 procedural images with 8-64 px holes, hole-PSNR was
# flat from 2 to 3 px and fell by 0.5-0.7 dB at 5-8 px: a wide ring blurs the fill towards its mean.
INPAINT_RADIUS = 3

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

# --- defade ---------------------------------------------------------------------------------
# Fading pulls every colour towards a light, warm paper tone t by a share k:  faded = (1-k) x + k t.
# An artwork normally reaches near-black and near-white, so a lifted black point (luma p1) and a
# lowered white point (luma p99) are both evidence of k. We need both (the smaller estimate wins):
# a pale picture has no black and a dark one no white, and neither is faded.
FADE_PERCENTILES = (1.0, 99.0)  # robust black and white points: ignore the extreme 1 % (specks, noise)
PAPER_LUMA = 200.0  # luma of the tone a fade converges on (aged paper, yellowed varnish)
MAX_FADE = 0.5  # never undo more than this: a stretch of 2x amplifies any misjudgement
# A mistaken defade costs more than a missed one, so only this share of the estimated fade is undone.
FADE_SHRINK = 0.9
# Fading also kills chroma. A picture whose most colourful 5 % still reach CHROMA_VIVID (max - min
# channel) is not faded, whatever its range; below CHROMA_DULL the range evidence counts in full.
CHROMA_PERCENTILE = 95.0
CHROMA_DULL, CHROMA_VIVID = 70.0, 120.0
MIN_FADE = 0.02  # below this the picture is returned unchanged
SATURATION_RESTORE = 0.5  # chroma gain per unit of fade, on top of the contrast stretch

# --- denoise --------------------------------------------------------------------------------
# fastNlMeans' filter strength h per unit of estimated noise sigma (0..255 scale). On procedural
# art with Gaussian noise of sigma 3-15, PSNR peaked at 0.6-0.7 (35.2 dB from 30.8) and fell to
# 34.4 dB at 1.0 and 32.1 dB at 1.5: a stronger filter smears edges and texture.
NLM_H_PER_SIGMA = 0.7
MIN_NOISE_SIGMA = 1.0  # below this (quantisation, JPEG) the image is returned unchanged
NLM_TEMPLATE, NLM_SEARCH = 7, 21  # OpenCV's defaults: patch and search window sides

# --- detect_damage --------------------------------------------------------------------------
# Scratches and cracks are 1-3 px lines: a top-hat whose structuring element is wider than any
# of them (7 px) keeps them and drops broader shapes.
LINE_KERNEL = 7
LINE_CONTRAST = 40.0  # top-hat response (luma, 0..255) of a visible line
BRIGHT_LINE_MIN_LUMA = 170.0  # bright scratches show pale grey, not a light colour
LINE_MAX_CHROMA = 45.0  # scratches and cracks carry little colour of their own
LINE_MIN_AREA = 12  # px: smaller top-hat responses are specks and noise
RULED_LENGTH = 15  # px: a straight axis-aligned run this long is drawn, a scratch is seldom so upright
# Holes and tears show a backing: paper white, beige or a dark mount, flat over the hole.
BACKING_COLOURS = np.array([(240, 236, 226), (214, 196, 160), (34, 30, 28)], dtype=np.float32)
BACKING_TOLERANCE = 26.0  # max per-channel difference from a backing colour
FLAT_STD = 7.0  # luma standard deviation in a 5x5 window: a backing is flat, paint edges are not
HOLE_MIN_AREA = 40  # px: an 8 px hole
HOLE_MAX_SIDE = 100  # px: holes are at most 96 px; larger flat regions are the picture's ground
# A region that fills this share of its bounding box is an upright rectangle: a painted cell or
# frame, not a hole (holes are ragged, and torn or cut at an angle).
HOLE_MAX_EXTENT = 0.9
# A hole cuts through the picture, so its rim is not all one colour with it: at most this share
# of the ring around a candidate may match the candidate's backing colour.
HOLE_RIM_MATCH = 0.5
# A colour that covers more than this share of the picture outside the candidate is its ground
# (white paper, a dark ground): a hole there would be invisible, and the ground is no hole.
GROUND_SHARE = 0.15
# Stains: darker and browner than the picture around them (a wide median shows the surround).
STAIN_MEDIAN = 21
STAIN_DARKER = 12.0
STAIN_WARMER = 8.0  # (R - B) gained against the surround
STAIN_MIN_AREA = 150


def _check_image(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")


def _check_mask(mask: np.ndarray, image: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask must be bool {image.shape[:2]}, got {mask.shape}")
    return mask.astype(bool)


def inpaint(image: np.ndarray, mask: np.ndarray, method: InpaintMethod = "telea") -> np.ndarray:
    """Fill the pixels under ``mask`` from their surroundings; pixels outside it are kept exactly.

    ``telea`` (fast marching) and ``navier_stokes`` use ``cv2.inpaint`` with ``INPAINT_RADIUS``;
    ``biharmonic`` solves a smooth biharmonic fill (skimage), slower but smoother in large holes.
    An empty mask returns an unchanged copy.
    """
    _check_image(image)
    mask = _check_mask(mask, image)
    if method not in INPAINT_METHODS:
        raise ValueError(f"method must be one of {INPAINT_METHODS}, got {method!r}")
    if not mask.any():
        return image.copy()
    if method == "biharmonic":
        filled = inpaint_biharmonic(image.astype(np.float64) / 255, mask, channel_axis=-1)
        result = np.clip(np.rint(filled * 255), 0, 255).astype(np.uint8)
    else:
        flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
        result = cv2.inpaint(image, mask.astype(np.uint8) * 255, INPAINT_RADIUS, flag)
    result[~mask] = image[~mask]  # the methods may touch the rim; the brief is to fill the mask only
    return result


def estimate_fade(image: np.ndarray) -> float:
    """The share k in [0, MAX_FADE] by which the picture looks pulled towards a paper tone (0: not faded)."""
    _check_image(image)
    pixels = image.astype(np.float32)
    luma = pixels @ LUMA
    black, white = np.percentile(luma, FADE_PERCENTILES)
    fade = min(black / PAPER_LUMA, (255.0 - white) / (255.0 - PAPER_LUMA), MAX_FADE)
    chroma = np.percentile(pixels.max(axis=-1) - pixels.min(axis=-1), CHROMA_PERCENTILE)
    dullness = np.clip((CHROMA_VIVID - chroma) / (CHROMA_VIVID - CHROMA_DULL), 0.0, 1.0)
    return float(max(fade, 0.0) * dullness * FADE_SHRINK)


def defade(image: np.ndarray) -> np.ndarray:
    """Undo fading: restore contrast, remove the warm cast, restore saturation.

    The fade share k comes from ``estimate_fade``; an unfaded picture (k < MIN_FADE) is returned
    unchanged. Contrast: every channel is stretched by the same gain 1/(1-k) between its own
    1st/99th percentiles, and each channel's stretched range is placed in 0..255 in proportion to
    the room it had below and above; channels lifted more by the yellow tone (blue least, so red
    and green most) are pulled down more, which is a white-and-black-point white balance.
    Saturation: chroma (colour minus luma) is scaled by 1 + SATURATION_RESTORE * k.
    """
    fade = estimate_fade(image)
    if fade < MIN_FADE:
        return image.copy()
    pixels = image.astype(np.float32)
    low, high = np.percentile(pixels.reshape(-1, 3), FADE_PERCENTILES, axis=0)
    gain = 1.0 / (1.0 - fade)
    room_below, room_above = low, 255.0 - high
    new_low = (255.0 - gain * (high - low)) * room_below / np.maximum(room_below + room_above, 1.0)
    stretched = new_low + gain * (pixels - low)
    luma = (stretched @ LUMA)[:, :, None]
    restored = luma + (stretched - luma) * (1.0 + SATURATION_RESTORE * fade)
    return np.clip(np.rint(restored), 0, 255).astype(np.uint8)


def estimate_noise_sigma(image: np.ndarray) -> float:
    """Gaussian noise sigma (0..255 scale) from the finest diagonal wavelet details, averaged over channels.

    The estimator of ``skimage.restoration.estimate_sigma`` (Donoho's median absolute deviation of
    the finest diagonal detail band, divided by 0.6745), with a Haar wavelet in numpy, because
    skimage's version needs PyWavelets, which the worker image does not ship.
    """
    _check_image(image)
    pixels = image.astype(np.float32)
    height, width = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
    blocks = pixels[:height, :width]
    diagonal = (blocks[0::2, 0::2] - blocks[0::2, 1::2] - blocks[1::2, 0::2] + blocks[1::2, 1::2]) / 2
    sigmas = np.median(np.abs(diagonal), axis=(0, 1)) / 0.6745
    return float(sigmas.mean())


def denoise(image: np.ndarray, strength: float | None = None) -> np.ndarray:
    """Non-local means (``cv2.fastNlMeansDenoisingColored``); ``strength`` is its h, else NLM_H_PER_SIGMA * sigma.

    With no ``strength`` and an estimated sigma under MIN_NOISE_SIGMA the image is returned unchanged.
    """
    _check_image(image)
    if strength is None:
        sigma = estimate_noise_sigma(image)
        if sigma < MIN_NOISE_SIGMA:
            return image.copy()
        strength = NLM_H_PER_SIGMA * sigma
    if strength <= 0:
        return image.copy()
    return cv2.fastNlMeansDenoisingColored(image, None, strength, strength, NLM_TEMPLATE, NLM_SEARCH)


def _remove_small(mask: np.ndarray, min_area: int) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(count, dtype=bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return keep[labels]


def _thin_lines(pixels: np.ndarray, luma: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (LINE_KERNEL, LINE_KERNEL))
    dark = cv2.morphologyEx(luma, cv2.MORPH_BLACKHAT, kernel) > LINE_CONTRAST
    bright = cv2.morphologyEx(luma, cv2.MORPH_TOPHAT, kernel) > LINE_CONTRAST
    bright &= (luma > BRIGHT_LINE_MIN_LUMA) & (chroma < LINE_MAX_CHROMA)
    dark &= chroma < LINE_MAX_CHROMA
    lines = (dark | bright).astype(np.uint8)
    # Long exactly horizontal or vertical lines are ruled into the picture (grids, frames), not scratches.
    ruled: np.ndarray = np.zeros_like(lines)
    for shape in ((RULED_LENGTH, 1), (1, RULED_LENGTH)):
        ruled |= cv2.morphologyEx(lines, cv2.MORPH_OPEN, np.ones(shape, np.uint8))
    ruled = cv2.dilate(ruled, np.ones((3, 3), np.uint8))
    return _remove_small(lines.astype(bool) & ~ruled.astype(bool), LINE_MIN_AREA)


def _holes(pixels: np.ndarray, luma: np.ndarray) -> np.ndarray:
    mean = cv2.blur(luma, (5, 5))
    variance = cv2.blur(luma * luma, (5, 5)) - mean * mean
    flat = variance < FLAT_STD**2
    holes = np.zeros(luma.shape, dtype=bool)
    # The 5x5 flatness test misses a hole's outer 2 px, so the rim is looked for beyond them and
    # they are given back afterwards where their colour matches.
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    # The rim is looked for 3-7 px out: beyond a thin painted line that may bound a region of ground
    # colour, so that cells of a ruled grid or ground between drips are not taken for holes.
    near = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    reach = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))
    for colour in BACKING_COLOURS:
        matches = np.abs(pixels - colour).max(axis=-1) < BACKING_TOLERANCE
        total_matches = int(matches.sum())
        candidate = cv2.morphologyEx((matches & flat).astype(np.uint8), cv2.MORPH_CLOSE, grow)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(candidate, connectivity=8)
        for index in range(1, count):
            x, y, w, h, area = stats[index]
            if area < HOLE_MIN_AREA or max(w, h) > HOLE_MAX_SIDE or area > HOLE_MAX_EXTENT * w * h:
                continue
            y0, y1, x0, x1 = max(y - 8, 0), y + h + 8, max(x - 8, 0), x + w + 8
            component = (labels[y0:y1, x0:x1] == index).astype(np.uint8)
            grown = cv2.dilate(component, grow).astype(bool)
            ring = cv2.dilate(component, reach).astype(bool) & ~cv2.dilate(component, near).astype(bool)
            local_matches = matches[y0:y1, x0:x1]
            elsewhere = (total_matches - (grown & local_matches).sum()) / matches.size
            if ring.any() and local_matches[ring].mean() <= HOLE_RIM_MATCH and elsewhere <= GROUND_SHARE:
                holes[y0:y1, x0:x1] |= grown & local_matches
    return holes


def _stains(pixels: np.ndarray, luma: np.ndarray) -> np.ndarray:
    surround = cv2.medianBlur(np.clip(pixels, 0, 255).astype(np.uint8), STAIN_MEDIAN).astype(np.float32)
    darker = surround @ LUMA - luma > STAIN_DARKER
    warmth = (pixels[:, :, 0] - pixels[:, :, 2]) - (surround[:, :, 0] - surround[:, :, 2])
    stains = (darker & (warmth > STAIN_WARMER)).astype(np.uint8)
    stains = cv2.morphologyEx(stains, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return _remove_small(stains.astype(bool), STAIN_MIN_AREA)


def detect_damage(image: np.ndarray) -> np.ndarray:
    """A bool [H, W] mask of scratches, cracks, holes, tears and stains found without being told where.

    Thin lines: black and white morphological top-hats of the luma (LINE_KERNEL px), kept where the
    line is near-neutral (and pale, if bright). Holes and tears: flat regions of a backing colour,
    8..HOLE_MAX_SIDE px across, whose rim is mostly not of that colour. Stains: pixels darker and
    warmer than a wide median of their surround. The union is closed and grown by 1 px, so that an
    inpainting of the mask also covers the antialiased rims.

    Measured on procedural art (128 px, 6 styles, scratches + holes, tolerance 2 px): see
    tests/unit/test_classical_restoration.py for the figures and thresholds.
    """
    _check_image(image)
    pixels = image.astype(np.float32)
    luma = pixels @ LUMA
    chroma = pixels.max(axis=-1) - pixels.min(axis=-1)
    found = _thin_lines(pixels, luma, chroma) | _holes(pixels, luma) | _stains(pixels, luma)
    grown = cv2.dilate(found.astype(np.uint8), np.ones((3, 3), np.uint8))
    return grown.astype(bool)

