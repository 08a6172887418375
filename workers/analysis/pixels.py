"""The pixels an analysis measures: an RGB array at a bounded size, and its CIELAB twin.

Every measure works on the same ``WorkImage`` so one image is decoded, scaled and converted to
Lab once per report. Sampling for clustering takes every n-th pixel on a grid rather than
resizing: a resize blends neighbouring colours into ones the painting does not contain.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image
from skimage.color import rgb2lab

# Composition and texture look at the work at this longest side: enough for edges and strokes,
# small enough that a report stays well under a second on one core.
WORK_SIDE = 384
# Clustering sees at most about this many pixels, taken on a regular grid.
SAMPLE_PIXELS = 24_000
MIN_SIDE = 32


@dataclass(frozen=True, eq=False)
class WorkImage:
    rgb: np.ndarray  # HxWx3 float64 in [0, 1]
    original_size: tuple[int, int]  # width, height of the image analysed

    @functools.cached_property
    def lab(self) -> np.ndarray:
        return np.asarray(rgb2lab(self.rgb))

    @property
    def grey(self) -> np.ndarray:
        """Lightness L* in [0, 1]."""
        return np.asarray(self.lab[..., 0] / 100.0)

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def work_image(image: Image.Image, side: int = WORK_SIDE) -> WorkImage:
    """The image as RGB, its longest side at most ``side`` (never enlarged)."""
    if min(image.size) < MIN_SIDE:
        raise ValueError(f"the image is {image.width}x{image.height}; both sides need at least {MIN_SIDE} px")
    rgb = image.convert("RGB")
    if max(rgb.size) > side:
        scale = side / max(rgb.size)
        rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))),
                         Image.Resampling.LANCZOS)
    return WorkImage(np.asarray(rgb, dtype=np.float64) / 255.0, (image.width, image.height))


def grid_sample(image: Image.Image, pixels: int = SAMPLE_PIXELS) -> np.ndarray:
    """Every n-th pixel of the full-size image on a grid, about ``pixels`` of them, as Nx3 RGB in [0, 1]."""
    array = np.asarray(image.convert("RGB"))
    stride = max(1, int(np.sqrt(array.shape[0] * array.shape[1] / pixels)))
    offset = stride // 2
    return np.asarray(array[offset::stride, offset::stride].reshape(-1, 3), dtype=np.float64) / 255.0


def lab_of(rgb: np.ndarray) -> np.ndarray:
    """Nx3 RGB in [0, 1] -> Nx3 CIELAB (D65)."""
    return np.asarray(rgb2lab(rgb.reshape(-1, 1, 3))).reshape(-1, 3)


def rgb_of(lab: np.ndarray) -> np.ndarray:
    """Nx3 CIELAB -> Nx3 RGB in [0, 1], clipped to the sRGB gamut."""
    from skimage.color import lab2rgb

    return np.clip(np.asarray(lab2rgb(np.asarray(lab, dtype=np.float64).reshape(-1, 1, 3))).reshape(-1, 3), 0, 1)


def hex_of(rgb: np.ndarray) -> str:
    r, g, b = (int(round(float(v) * 255)) for v in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"
