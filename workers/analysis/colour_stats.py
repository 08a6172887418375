"""Colour statistics of a whole work: brightness, saturation, warmth, contrast, colourfulness, harmony.

Every figure is a plain function of the pixels, on a scale stated here:

- ``brightness``: mean CIELAB lightness L*, as a fraction of 100 (0 black, 1 white).
- ``saturation``: HSV saturation averaged with HSV value as the weight (0 greys only, 1 pure
  hues): near-black pixels, whose hue and saturation are noise, count for almost nothing.
- ``warmth``: -1 (all cool: blues, cyans) to 1 (all warm: reds, oranges); the chroma-weighted mean
  of each hue's warmth on the painter's wheel (``HUE_WARMTH``, HSV hue), scaled by how chromatic
  the work is, so greys are 0.
- ``contrast``: the standard deviation of L*, divided by 50 (the largest it can be): 0 to 1.
- ``colourfulness``: Hasler & Süsstrunk (2003), M = σ_rgyb + 0.3 μ_rgyb on 0-255 RGB, with their
  seven verbal levels.
- ``harmony``: which hue template (after Itten and Matsuda) holds most of the chromatic mass of
  the HSV hue circle: monochrome (one 30° sector), analogous (one 90° sector), complementary
  (two 30° sectors 180° apart), split (complementary, one side split: 0°, 150°, 210°) or triadic
  (0°, 120°, 240°). The simplest template that holds ``HARMONY_FIT`` of the mass wins; where none
  does, the best-fitting one if it holds at least ``HARMONY_MIN_FIT``, else ``varied`` (hues all
  round the circle). A work with (almost) no chromatic pixels is ``monochrome`` (greys).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.color import rgb2hsv

from workers.analysis.pixels import WorkImage

# Pixels less chromatic than this (C*ab) take no part in hue statistics: greys have no hue.
CHROMATIC_C = 12.0
HARMONY_FIT = 0.85
# Warmth of a hue (HSV degrees -> -1..1), interpolated: reds and oranges warm, blues coolest,
# green and violet between.
HUE_WARMTH = ((0, 1.0), (30, 1.0), (60, 0.7), (120, -0.2), (180, -0.8), (225, -1.0), (270, -0.4),
              (310, 0.3), (360, 1.0))
HARMONY_MIN_FIT = 0.6
# Sector centres (degrees) and width of each harmony template, simplest first.
HARMONY_TEMPLATES: tuple[tuple[str, tuple[float, ...], float], ...] = (
    ("monochrome", (0.0,), 30.0),
    ("analogous", (0.0,), 90.0),
    ("complementary", (0.0, 180.0), 30.0),
    ("split", (0.0, 150.0, 210.0), 30.0),
    ("triadic", (0.0, 120.0, 240.0), 30.0),
)
COLOURFULNESS_LEVELS = ((15, "not colourful"), (33, "slightly colourful"), (45, "moderately colourful"),
                        (59, "averagely colourful"), (82, "quite colourful"), (109, "highly colourful"),
                        (float("inf"), "extremely colourful"))


@dataclass(frozen=True)
class Harmony:
    type: str
    fit: float  # share of the chromatic mass inside the template's sectors
    hues: tuple[float, ...]  # the sectors' centres, HSV degrees
    chromatic_share: float  # share of pixels with a hue at all

    def to_dict(self) -> dict[str, object]:
        return {"type": self.type, "fit": round(self.fit, 3), "hues": [round(h, 1) for h in self.hues],
                "chromatic_share": round(self.chromatic_share, 3)}


@dataclass(frozen=True)
class ColourStats:
    brightness: float
    saturation: float
    warmth: float
    contrast: float
    colourfulness: float
    colourfulness_level: str
    harmony: Harmony

    def to_dict(self) -> dict[str, object]:
        return {"brightness": round(self.brightness, 3), "saturation": round(self.saturation, 3),
                "warmth": round(self.warmth, 3), "contrast": round(self.contrast, 3),
                "colourfulness": round(self.colourfulness, 1), "colourfulness_level": self.colourfulness_level,
                "harmony": self.harmony.to_dict()}


def colour_stats(work: WorkImage) -> ColourStats:
    lab, rgb = work.lab.reshape(-1, 3), work.rgb.reshape(-1, 3)
    hsv = np.asarray(rgb2hsv(work.rgb)).reshape(-1, 3)
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    colourfulness = hasler_susstrunk(rgb)
    level = next(name for bound, name in COLOURFULNESS_LEVELS if colourfulness < bound)
    return ColourStats(
        brightness=float(lab[:, 0].mean() / 100.0),
        saturation=float((hsv[:, 1] * hsv[:, 2]).sum() / hsv[:, 2].sum()) if hsv[:, 2].sum() > 0 else 0.0,
        warmth=warmth(hsv[:, 0] * 360.0, chroma),
        contrast=float(min(1.0, lab[:, 0].std() / 50.0)),
        colourfulness=colourfulness,
        colourfulness_level=level,
        harmony=harmony(hsv[:, 0] * 360.0, chroma),
    )


def hasler_susstrunk(rgb: np.ndarray) -> float:
    """Colourfulness of Nx3 RGB in [0, 1], on the paper's 0-255 scale."""
    r, g, b = (rgb[:, i] * 255.0 for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def warmth(hue_deg: np.ndarray, chroma: np.ndarray) -> float:
    if chroma.sum() <= 1e-9:
        return 0.0
    degrees, values = zip(*HUE_WARMTH, strict=True)
    direction = float((chroma * np.interp(hue_deg % 360, degrees, values)).sum() / chroma.sum())
    # A faint tint is only faintly warm or cool: scale by mean chroma (30 C* counts as fully chromatic).
    return direction * float(min(1.0, chroma.mean() / 30.0))


def harmony(hue_deg: np.ndarray, chroma: np.ndarray) -> Harmony:
    chromatic = chroma >= CHROMATIC_C
    share = float(chromatic.mean())
    if share < 0.02:
        return Harmony("monochrome", 1.0, (), share)
    histogram = np.bincount(np.floor(hue_deg[chromatic]).astype(int) % 360, weights=chroma[chromatic],
                            minlength=360)
    histogram = histogram / histogram.sum()
    circular = np.concatenate([histogram, histogram])
    cumulative = np.concatenate([[0.0], np.cumsum(circular)])
    best: Harmony | None = None
    for name, centres, width in HARMONY_TEMPLATES:
        fit, rotation = _best_rotation(cumulative, centres, width)
        candidate = Harmony(name, fit, tuple((rotation + c) % 360 for c in centres), share)
        if fit >= HARMONY_FIT:
            return candidate
        if best is None or fit > best.fit + 1e-9:
            best = candidate
    assert best is not None
    return best if best.fit >= HARMONY_MIN_FIT else Harmony("varied", best.fit, (), share)


def _best_rotation(cumulative: np.ndarray, centres: tuple[float, ...], width: float) -> tuple[float, float]:
    """The largest share of the histogram the sectors hold, over every 1° rotation, and that rotation
    (the mass-weighted centre of the winning sectors' first one)."""
    half = width / 2
    fits = np.zeros(360)
    for centre in centres:
        starts = (np.arange(360) + centre - half) % 360
        lo = np.floor(starts).astype(int)
        hi = lo + int(width)
        fits += cumulative[hi] - cumulative[lo]
    rotation = int(np.argmax(fits))
    return float(min(1.0, fits[rotation])), float(rotation)
