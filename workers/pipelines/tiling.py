"""Run an image-to-image function over overlapping tiles and blend the seams.

Memory then depends on the tile size, not on the image size. Tiles are spread evenly so
every tile has the same size and every overlap is at least ``overlap`` pixels; inside an
overlap the two tiles are cross-faded linearly.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def tile_starts(length: int, max_tile: int, overlap: int) -> tuple[list[int], int]:
    """Start offsets along one axis and the tile size used."""
    if length <= max_tile:
        return [0], length
    count = math.ceil((length - overlap) / (max_tile - overlap))
    size = math.ceil((length + (count - 1) * overlap) / count)
    step = (length - size) / (count - 1)
    return [round(i * step) for i in range(count)], size


def _ramp(size: int, fade: int, at_start: bool, at_end: bool) -> np.ndarray:
    weights = np.ones(size, dtype=np.float32)
    ramp = (np.arange(fade, dtype=np.float32) + 0.5) / fade
    if not at_start:
        weights[:fade] = ramp
    if not at_end:
        weights[size - fade:] = np.minimum(weights[size - fade:], ramp[::-1])
    return weights


def process_tiled(
    image: np.ndarray,
    fn: Callable[[np.ndarray], np.ndarray],
    max_tile: int,
    overlap: int,
    on_tile: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Apply ``fn`` (HxWxC float32 -> same shape) tile by tile. ``on_tile(done, total)``."""
    height, width = image.shape[:2]
    ys, tile_h = tile_starts(height, max_tile, overlap)
    xs, tile_w = tile_starts(width, max_tile, overlap)
    if len(ys) == 1 and len(xs) == 1:
        out = fn(image)
        if on_tile:
            on_tile(1, 1)
        return out
    accum = np.zeros(image.shape, dtype=np.float32)
    weight = np.zeros((height, width, 1), dtype=np.float32)
    total, done = len(ys) * len(xs), 0
    for iy, y in enumerate(ys):
        wy = _ramp(tile_h, overlap, iy == 0, iy == len(ys) - 1)
        for ix, x in enumerate(xs):
            wx = _ramp(tile_w, overlap, ix == 0, ix == len(xs) - 1)
            tile = fn(np.ascontiguousarray(image[y:y + tile_h, x:x + tile_w]))
            w = (wy[:, None] * wx[None, :])[:, :, None]
            accum[y:y + tile_h, x:x + tile_w] += tile * w
            weight[y:y + tile_h, x:x + tile_w] += w
            done += 1
            if on_tile:
                on_tile(done, total)
    return accum / np.maximum(weight, 1e-6)
