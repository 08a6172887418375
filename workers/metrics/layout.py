"""Layout features: where light and dark sit in a work, whatever its colours.

The within-style diversity on ImageNet features counts colour as variety: a generator that drew
one layout per style (the same rings in every "circles" work) under new palettes scored 0.80 of
real works' spread there. These features are each work's luminance at 16 x 16 px, standardised
per work (mean 0, unit spread), so two works with one layout sit close whatever their palette or
exposure, and the same diversity ratio on them (``within_style_diversity``) shows repeated layouts.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

LAYOUT_SIDE = 16
# The smallest luminance spread a work is scaled by (of 255): a near-flat colour field stays near
# the origin instead of having its noise blown up to a full-contrast pattern.
MIN_SPREAD = 4.0


def layout_features(images: np.ndarray) -> np.ndarray:
    """float32 [N, 256]: each uint8 image [N, H, W, 3] as standardised 16 x 16 luminance."""
    if images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(f"expected images [N, H, W, 3], got shape {images.shape}")
    flat = np.zeros((len(images), LAYOUT_SIDE * LAYOUT_SIDE), np.float32)
    for row, image in zip(flat, images, strict=True):
        thumb = Image.fromarray(image).convert("L").resize((LAYOUT_SIDE, LAYOUT_SIDE), Image.Resampling.BOX)
        row[:] = np.asarray(thumb, np.float32).ravel()
    centred = flat - flat.mean(axis=1, keepdims=True)
    spread = np.maximum(centred.std(axis=1, keepdims=True), MIN_SPREAD)
    return (centred / spread).astype(np.float32)
