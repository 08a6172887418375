"""What every training loop here shares around its data and its sample grids: an epoch
sampler whose position is part of a checkpoint, and a montage of equal-sized tiles."""

from __future__ import annotations

import numpy as np
from PIL import Image


class EpochSampler:
    """Batches of indices, a fresh permutation per epoch; a batch may span two epochs.

    Invariant: the sequence of batches depends only on (n, seed) and the position (epoch,
    cursor), so restoring the position continues exactly where the sampler was.
    """

    def __init__(self, n: int, seed: int, epoch: int = 0, cursor: int = 0):
        self.n, self.seed, self.epoch, self.cursor = n, seed, epoch, cursor
        self._order = self._permutation(epoch)

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def next_batch(self, size: int) -> np.ndarray:
        parts = []
        while size > 0:
            if self.cursor == self.n:
                self.epoch, self.cursor = self.epoch + 1, 0
                self._order = self._permutation(self.epoch)
            take = min(size, self.n - self.cursor)
            parts.append(self._order[self.cursor:self.cursor + take])
            self.cursor, size = self.cursor + take, size - take
        return np.concatenate(parts)

    def position(self) -> dict[str, int]:
        return {"n": self.n, "epoch": self.epoch, "cursor": self.cursor}

    @classmethod
    def at(cls, position: dict[str, int], n: int, seed: int) -> EpochSampler:
        """The sampler at a saved position; refuses a position taken on data of another size."""
        if position["n"] != n:
            raise ValueError(f"checkpoint was trained on {position['n']} images, not {n}")
        return cls(n, seed, position["epoch"], position["cursor"])


def montage(tiles: np.ndarray, columns: int, pad: int = 2) -> Image.Image:
    """uint8 tiles [N,H,W,3] laid out row by row, ``columns`` per row, ``pad`` px of white
    around and between them (the last row may be short)."""
    rows = -(-len(tiles) // columns)
    height, width = tiles.shape[1:3]
    canvas = np.full((rows * (height + pad) + pad, columns * (width + pad) + pad, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        top, left = pad + r * (height + pad), pad + c * (width + pad)
        canvas[top:top + height, left:left + width] = tile
    return Image.fromarray(canvas)
