"""Sliced Wasserstein distance (SWD) between two image sets, as Progressive GAN defines it.

Karras et al. 2018, "Progressive Growing of GANs", appendix D and
``metrics/sliced_wasserstein.py`` of tkarras/progressive_growing_of_gans:

1. Each image set becomes a Laplacian pyramid with one level per resolution from the full
   size down to 16 px (a 32 px set has levels 32 and 16; a 128 px set 128, 64, 32, 16). Every
   level but the coarsest is a band-pass residual ``level - pyr_up(pyr_down(level))``; the
   coarsest is the Gaussian-blurred, downsampled image. The filter is the 5-tap binomial
   [1, 4, 6, 4, 1] / 16 with mirrored borders (cv2.pyrDown/pyrUp).
2. Per level, 128 random 7x7x3 neighbourhoods (descriptors) are cut from each image, their
   centres at least 3 px from the border.
3. Each set's descriptors are normalised per colour channel by that set's own mean and
   standard deviation. SWD therefore ignores a global per-channel gain or offset between the
   sets; the colour attributes measure those.
4. The SWD of the two descriptor sets uses 4 repeats of 128 random unit directions (512
   projections in all, as the paper states): project, sort each set's projections, take the
   mean absolute difference of the sorted values, average over directions and repeats.
5. Values are multiplied by 1e3 and reported per level and as the mean over levels.

Randomness comes only from ``seed``: the real set's descriptors, the fake set's descriptors,
the directions and any subsampling each draw from their own stream of it, so a call is
deterministic and the real descriptors do not depend on the fake set. With sets of unequal
size the larger is subsampled (without replacement) to the smaller, because the sorted
projections are compared element by element.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.ndimage
from numpy.lib.stride_tricks import sliding_window_view

from workers.metrics.registry import register_metric

NHOOD_SIZE = 7
DESCRIPTORS_PER_IMAGE = 128
DIR_REPEATS = 4
DIRS_PER_REPEAT = 128
MIN_RESOLUTION = 16

# Separable 5-tap binomial filter; its outer product is the 5x5 Gaussian of cv2.pyrDown.
_BINOMIAL = np.array([1.0, 4.0, 6.0, 4.0, 1.0], dtype=np.float32) / 16.0


def _blur(batch: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Convolve [N, C, H, W] along H and W with ``taps``, borders mirrored as cv2 does."""
    out = scipy.ndimage.convolve1d(batch, taps, axis=2, mode="mirror")
    return scipy.ndimage.convolve1d(out, taps, axis=3, mode="mirror")


def _pyr_down(batch: np.ndarray) -> np.ndarray:
    return _blur(batch, _BINOMIAL)[:, :, ::2, ::2]


def _pyr_up(batch: np.ndarray) -> np.ndarray:
    n, c, h, w = batch.shape
    upsampled = np.zeros((n, c, 2 * h, 2 * w), dtype=batch.dtype)
    upsampled[:, :, ::2, ::2] = batch
    # Zero insertion keeps a quarter of the samples; 2x per axis restores the brightness.
    return _blur(upsampled, 2.0 * _BINOMIAL)


def pyramid_resolutions(size: int) -> list[int]:
    """Resolutions of the pyramid levels for ``size`` px images, finest first, down to 16."""
    if size < MIN_RESOLUTION or size & (size - 1):
        raise ValueError(f"SWD needs square images whose side is a power of two >= 16, got {size}")
    resolutions = []
    while size >= MIN_RESOLUTION:
        resolutions.append(size)
        size //= 2
    return resolutions


def laplacian_pyramid(batch: np.ndarray, num_levels: int) -> list[np.ndarray]:
    """Laplacian pyramid of a float [N, C, H, W] batch; summing it back up restores the batch."""
    pyramid = [batch.astype(np.float32)]
    for _ in range(1, num_levels):
        pyramid.append(_pyr_down(pyramid[-1]))
        pyramid[-2] = pyramid[-2] - _pyr_up(pyramid[-1])
    return pyramid


def _descriptors(level: np.ndarray, rng: np.random.Generator, per_image: int) -> np.ndarray:
    """Random 7x7 neighbourhoods of each image, normalised per channel over the whole set.

    Returns [N * per_image, C * 49] float32.
    """
    n, _, h, w = level.shape
    windows = sliding_window_view(level, (NHOOD_SIZE, NHOOD_SIZE), axis=(2, 3))  # [N, C, H-6, W-6, 7, 7]
    image = np.repeat(np.arange(n), per_image)
    top = rng.integers(0, h - NHOOD_SIZE + 1, size=image.size)
    left = rng.integers(0, w - NHOOD_SIZE + 1, size=image.size)
    desc = windows[image, :, top, left]  # [M, C, 7, 7]
    desc = desc - desc.mean(axis=(0, 2, 3), keepdims=True)
    std = desc.std(axis=(0, 2, 3), keepdims=True)
    # A channel that is constant over the whole set (a flat test image) has nothing to scale.
    desc = desc / np.where(std > 0, std, 1.0)
    return desc.reshape(desc.shape[0], -1).astype(np.float32)


def _sliced_wasserstein_descriptors(
    a: np.ndarray, b: np.ndarray, rng: np.random.Generator, dir_repeats: int, dirs_per_repeat: int
) -> float:
    """Mean over repeats and directions of the 1-D Wasserstein-1 distance of the projections."""
    assert a.shape == b.shape
    results = []
    for _ in range(dir_repeats):
        dirs = rng.standard_normal((dirs_per_repeat, a.shape[1])).astype(np.float32)
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        # [direction, descriptor]: sorting in place along the contiguous last axis is the fast way.
        proj_a = dirs @ a.T
        proj_b = dirs @ b.T
        proj_a.sort(axis=1)
        proj_b.sort(axis=1)
        results.append(float(np.mean(np.abs(proj_a - proj_b))))
    return float(np.mean(results))


def _to_nchw(images: np.ndarray) -> np.ndarray:
    if images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(f"expected images [N, H, W, 3], got shape {images.shape}")
    if images.shape[1] != images.shape[2]:
        raise ValueError(f"SWD needs square images, got {images.shape[1]}x{images.shape[2]}")
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32)


def sliced_wasserstein(
    real: np.ndarray,
    fake: np.ndarray,
    seed: int = 0,
    *,
    descriptors_per_image: int = DESCRIPTORS_PER_IMAGE,
    dir_repeats: int = DIR_REPEATS,
    dirs_per_repeat: int = DIRS_PER_REPEAT,
) -> dict[str, Any]:
    """SWD x 1e3 between two uint8 image sets [N, H, W, 3] of the same square power-of-two size.

    Returns ``{"levels": {"32": v, "16": v, ...}, "average": mean of the levels}``, levels keyed by
    resolution, finest first. Invariants: values are >= 0; the same inputs and seed give the same
    values; the real set's descriptors depend only on ``real`` and ``seed``.
    """
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"image sets differ in shape: {real.shape[1:]} vs {fake.shape[1:]}")
    if min(len(real), len(fake)) < 1:
        raise ValueError("SWD needs at least one image in each set")
    real_rng, fake_rng, dirs_rng, subsample_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    count = min(len(real), len(fake))
    if len(real) > count:
        real = real[np.sort(subsample_rng.choice(len(real), count, replace=False))]
    if len(fake) > count:
        fake = fake[np.sort(subsample_rng.choice(len(fake), count, replace=False))]

    resolutions = pyramid_resolutions(real.shape[1])
    real_pyramid = laplacian_pyramid(_to_nchw(real), len(resolutions))
    fake_pyramid = laplacian_pyramid(_to_nchw(fake), len(resolutions))
    levels: dict[str, float] = {}
    for resolution, real_level, fake_level in zip(resolutions, real_pyramid, fake_pyramid, strict=True):
        real_desc = _descriptors(real_level, real_rng, descriptors_per_image)
        fake_desc = _descriptors(fake_level, fake_rng, descriptors_per_image)
        distance = _sliced_wasserstein_descriptors(real_desc, fake_desc, dirs_rng, dir_repeats, dirs_per_repeat)
        levels[str(resolution)] = distance * 1e3
    return {"levels": levels, "average": float(np.mean(list(levels.values())))}


def split_halves(count: int, seed: int = 0, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint, seeded random index sets of ``size`` each (default ``count // 2``) from ``range(count)``.

    Each set is sorted; with an odd count (or a smaller size) some indices are in neither.
    """
    size = count // 2 if size is None else size
    if size < 1 or 2 * size > count:
        raise ValueError(f"cannot take two disjoint halves of {size} from {count} images")
    order = np.random.default_rng(seed).permutation(count)
    return np.sort(order[:size]), np.sort(order[size : 2 * size])


def swd_noise_floor(real: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """SWD between two disjoint random halves of ``real``: what sampling alone contributes.

    A generator cannot be told apart from the real data by SWD once its SWD to a real set of the
    same size is at this floor.
    """
    first, second = split_halves(len(real), seed)
    return sliced_wasserstein(real[first], real[second], seed)


@register_metric("swd")
def swd_metric(
    real_images: np.ndarray,
    real_labels: np.ndarray,
    fake_images: np.ndarray,
    fake_labels: np.ndarray,
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """SWD of the generated set to one half of the real set, beside the real-vs-real floor.

    Both numbers compare sets of the same size against the same real half, with the same real
    descriptors and directions, so they are directly comparable (SWD of finite sets shrinks as
    the sets grow). Labels are not used. Returns ``{"levels", "average", "noise_floor":
    {"levels", "average"}, "num_images"}`` where ``num_images`` is the size of each compared set.
    """
    size = min(len(real_images) // 2, len(fake_images))
    reference, held_out = split_halves(len(real_images), seed, size)
    swd = sliced_wasserstein(real_images[reference], fake_images, seed)
    floor = sliced_wasserstein(real_images[reference], real_images[held_out], seed)
    return {**swd, "noise_floor": floor, "num_images": size}
