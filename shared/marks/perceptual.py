"""Perceptual hashes (pHash, dHash) of images, and how much an edit changed an image.

Hashes are 64-bit hex strings from ``imagehash``; compare them with
``shared.provenance.hamming``. Measured on marked results (tests/unit/test_watermark.py): JPEG
q75 and 0.5x copies stay within ``PHASH_MATCH_DISTANCE`` bits for 93 % of images (median 0);
flat and striped pictures are the exception, their pHash bits being signs of near-zero
coefficients. Unrelated images come that close for about 0.1 % of pairs (same-style procedural
art); also asking dHash to agree within ``DHASH_MATCH_DISTANCE`` bits removed every such pair
among 5,151 unrelated pairs (102 procedural and photographic images, 256 and 512 px), while all
their JPEG q75, 0.5x, 0.75x and 0.5x+JPEG copies stayed within 6 (pHash) and 7 (dHash) bits.
pHash and dHash see only luma structure, so pictures of parallel stripes all look alike to them
(83 "matches" between 156 procedural paintings and 480 small procedural results, all stripes
against stripes). A third signature, the mean colour of a 4x4 grid of cells, tells them apart:
with it within ``COLOUR_MATCH_DISTANCE`` those pairs drop to 0 (they start at 20), while JPEG
q50/q75, 0.25x to 0.75x and greyscale copies of 36 images stayed within 1.8 (greyscale pictures
are compared by the cells' luma). So a near-duplicate is all three within their distances:
the last resort of a verify request, after C2PA, sha256 and the watermark, and the test for a
copy of a protected work.
"""

from __future__ import annotations

import imagehash
import numpy as np
from PIL import Image

from shared.provenance import hamming

# At most this many differing pHash bits (of 64), and dHash bits, count as "the same picture".
PHASH_MATCH_DISTANCE = 8
DHASH_MATCH_DISTANCE = 12
# Mean absolute difference (0..255) of the 4x4 cells' mean colours that still counts as the same.
COLOUR_MATCH_DISTANCE = 8.0
COLOUR_GRID = 4
# Cells whose channels all lie within this of each other: a grey picture, compared by luma.
GREY_SPREAD = 12
_LUMA = (0.299, 0.587, 0.114)
# A pixel whose luma differs from the tone-matched input by more than this counts as changed.
CHANGE_TOLERANCE = 12.0


def perceptual_hashes(image: Image.Image) -> dict[str, str]:
    """``{"phash": 16 hex digits, "dhash": 16 hex digits, "colour": 96 hex digits}`` of ``image``."""
    rgb = image.convert("RGB")
    cells = np.asarray(rgb.resize((COLOUR_GRID, COLOUR_GRID), Image.Resampling.BOX), dtype=np.uint8)
    return {"phash": str(imagehash.phash(rgb)), "dhash": str(imagehash.dhash(rgb)), "colour": cells.tobytes().hex()}


def colour_distance(a_hex: str, b_hex: str) -> float:
    """Mean absolute difference of two colour signatures' cells; by luma when either is grey."""
    a, b = bytes.fromhex(a_hex), bytes.fromhex(b_hex)
    if len(a) != len(b) or len(a) % 3:
        raise ValueError("colour signatures of different sizes")
    a_cells, b_cells = [a[i:i + 3] for i in range(0, len(a), 3)], [b[i:i + 3] for i in range(0, len(b), 3)]
    if _grey(a_cells) or _grey(b_cells):
        return sum(abs(_luma_of(x) - _luma_of(y)) for x, y in zip(a_cells, b_cells, strict=True)) / len(a_cells)
    return sum(abs(p - q) for p, q in zip(a, b, strict=True)) / len(a)


def _grey(cells: list[bytes]) -> bool:
    return all(max(cell) - min(cell) < GREY_SPREAD for cell in cells)


def _luma_of(cell: bytes) -> float:
    return sum(weight * value for weight, value in zip(_LUMA, cell, strict=True))


def mirrored_hashes(image: Image.Image) -> dict[str, str]:
    """The hashes of the left-right mirror image: pHash and dHash do not survive a flip."""
    return perceptual_hashes(image.convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT))


def same_picture(a: dict[str, str], b: dict[str, str], max_distance: int = PHASH_MATCH_DISTANCE,
                 max_dhash_distance: int = DHASH_MATCH_DISTANCE,
                 max_colour_distance: float = COLOUR_MATCH_DISTANCE) -> bool:
    """pHash within ``max_distance`` bits; dHash and the colour signature within theirs when both
    sides have them (hashes recorded before they were taken are not held against a match)."""
    if hamming(a["phash"], b["phash"]) > max_distance:
        return False
    if a.get("dhash") and b.get("dhash") and hamming(a["dhash"], b["dhash"]) > max_dhash_distance:
        return False
    if a.get("colour") and b.get("colour"):
        return colour_distance(a["colour"], b["colour"]) <= max_colour_distance
    return True


def changed_fraction(before: Image.Image, after: Image.Image) -> float:
    """Share of pixels whose content changed, ignoring global tone changes (0..1).

    The input's luma is first mapped to the output's by a least-squares gain and offset, so a
    de-fade or contrast stretch (which changes every pixel a little) counts as no content
    change, while inpainted holes and scratches (new local content) do. The input is resized
    to the output's size when they differ.
    """
    y_after = _luma(after)
    y_before = _luma(before.resize(after.size, Image.Resampling.BILINEAR) if before.size != after.size else before)
    x, y = y_before - y_before.mean(), y_after - y_after.mean()
    variance = float(np.mean(x * x))
    gain = float(np.mean(x * y)) / variance if variance > 0 else 0.0
    return float(np.mean(np.abs(y - gain * x) > CHANGE_TOLERANCE))


def _luma(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float64)
