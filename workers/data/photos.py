"""Photographs that a registry package carries: scikit-image's sample images, as square tiles.

Restoration models are measured on these as well as on held-out procedural art: photos no
training job of the service ever sees (the built-in datasets are procedural; a tenant's own
upload could hold them, which its model card's dataset fingerprint would show). Nothing is
downloaded: the images are files inside the scikit-image wheel. Their licences, from the
docstrings of ``skimage.data``: ``astronaut`` (NASA) and ``rocket`` (SpaceX) are in the public
domain, ``chelsea`` and ``coffee`` are CC0.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

HELD_OUT_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
# Each photo's centre square is resized to this side, then cut into tiles: at 256 px a 32-64 px
# hole covers an eye, a cup's rim or a window, as it would in a scanned print.
PHOTO_SIDE = 256
PHOTO_TILE = 128  # px: the side of the tiles restoration is scored on


def photo_tiles(names: tuple[str, ...] = HELD_OUT_PHOTOS, tile: int = PHOTO_TILE) -> list[np.ndarray]:
    """uint8 [tile, tile, 3] tiles: each photo's centre square at PHOTO_SIDE px, cut into a grid
    (four PHOTO_TILE px tiles per photo by default), in the order of ``names``."""
    from skimage import data  # only the evaluation needs it; keep worker start-up light

    if not 8 <= tile <= PHOTO_SIDE:
        raise ValueError(f"tile must be in [8, {PHOTO_SIDE}] px, not {tile}")
    tiles = []
    for name in names:
        tiles += centre_square_tiles(getattr(data, name)()[..., :3], PHOTO_SIDE, tile)
    return tiles


def centre_square(image: Image.Image) -> Image.Image:
    """The largest square in the middle of ``image``."""
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))


def centre_square_tiles(pixels: np.ndarray, side: int, tile: int) -> list[np.ndarray]:
    """uint8 [tile, tile, 3] tiles of ``pixels`` (uint8 [H, W, 3]): its centre square resized to
    ``side`` px and cut into a grid, row by row."""
    square = centre_square(Image.fromarray(pixels))
    resized = np.asarray(square.resize((side, side), Image.Resampling.BICUBIC))
    return [np.ascontiguousarray(resized[y:y + tile, x:x + tile])
            for y in range(0, side - tile + 1, tile) for x in range(0, side - tile + 1, tile)]
