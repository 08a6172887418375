"""Tiled processing covers every pixel, blends seams, and bounds the tile size."""

from __future__ import annotations

import numpy as np
import pytest

from workers.pipelines.tiling import process_tiled, tile_starts


@pytest.mark.parametrize("length,max_tile,overlap", [(2048, 1024, 128), (1000, 1024, 128), (1500, 512, 64),
                                                     (513, 512, 64)])
def test_tiles_cover_the_axis_with_at_least_the_overlap(length: int, max_tile: int, overlap: int) -> None:
    starts, size = tile_starts(length, max_tile, overlap)
    assert size <= max_tile and starts[0] == 0 and starts[-1] + size == length
    for a, b in zip(starts, starts[1:], strict=False):
        assert a + size - b >= overlap


def test_identity_function_gives_back_the_image() -> None:
    image = np.random.default_rng(0).random((300, 500, 3), dtype=np.float32)
    out = process_tiled(image, lambda t: t, max_tile=128, overlap=16)
    np.testing.assert_allclose(out, image, atol=1e-5)


def test_seams_are_cross_faded() -> None:
    """Each tile adds its own offset; the blend never jumps by a whole offset step."""
    image = np.zeros((64, 400, 3), dtype=np.float32)
    offsets = iter(np.arange(10, dtype=np.float32))
    out = process_tiled(image, lambda t: t + next(offsets), max_tile=128, overlap=32)
    steps = np.abs(np.diff(out[0, :, 0]))
    assert steps.max() < 0.1
    assert out[0, 0, 0] == 0 and out[0, -1, 0] > 0


def test_tiles_never_exceed_the_limit() -> None:
    seen = []

    def record(tile: np.ndarray) -> np.ndarray:
        seen.append(tile.shape[:2])
        return tile

    calls = []
    process_tiled(np.zeros((2048, 2048, 3), np.float32), record, 1024, 128, lambda d, t: calls.append((d, t)))
    assert max(max(s) for s in seen) <= 1024
    assert calls[-1][0] == calls[-1][1] == len(seen)
