"""Held-out photos: scikit-image's bundled sample photographs, cut into tiles offline."""

from __future__ import annotations

import numpy as np
import pytest

from workers.data.photos import HELD_OUT_PHOTOS, PHOTO_SIDE, PHOTO_TILE, photo_tiles


def test_tiles_cover_each_photo_in_a_grid_of_rgb_squares() -> None:
    tiles = photo_tiles()
    per_photo = (PHOTO_SIDE // PHOTO_TILE) ** 2
    assert len(tiles) == len(HELD_OUT_PHOTOS) * per_photo
    assert all(t.shape == (PHOTO_TILE, PHOTO_TILE, 3) and t.dtype == np.uint8 for t in tiles)
    # real photographs, not blank or repeated tiles
    assert all(t.std() > 10 for t in tiles)
    assert len({t.tobytes() for t in tiles}) == len(tiles)
    assert np.array_equal(photo_tiles(("coffee",))[0], tiles[2 * per_photo])  # the same pixels every time


def test_a_tile_larger_than_the_resized_photo_is_refused() -> None:
    with pytest.raises(ValueError, match="tile"):
        photo_tiles(tile=PHOTO_SIDE + 1)
