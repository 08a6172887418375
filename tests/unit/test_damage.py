"""The damage simulator: deterministic from the rng, masks that cover all local damage, sizes as promised."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
import torch
from skimage.morphology import skeletonize

from workers.data.damage import (
    BACKING_COLOURS,
    DAMAGE_ORDER,
    GLOBAL_KINDS,
    LOCAL_KINDS,
    DamageConfig,
    Damaged,
    simulate_damage,
)
from workers.data.procedural import make_dataset
from workers.models.restoration import InpaintingNet, RestorationConfig
from workers.training.restoration import damaged_batch, mask_tensor, to_tensor

EVERYTHING = DamageConfig(**{f"{kind}_probability": 1.0 for kind in DAMAGE_ORDER})
LOCAL_ONLY = DamageConfig(**{f"{kind}_probability": float(kind in LOCAL_KINDS) for kind in DAMAGE_ORDER})
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def art() -> np.ndarray:
    """Two images of every procedural style at 128 px."""
    return make_dataset(2, 128, seed=7)[0]


@pytest.fixture(scope="module")
def art256() -> np.ndarray:
    return make_dataset(1, 256, seed=3)[0]


def components(mask: np.ndarray) -> np.ndarray:
    """Stats [n, 5] (x, y, w, h, area) of the 8-connected components of a bool mask."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return stats[1:]


def saturation(image: np.ndarray) -> float:
    return float(cv2.cvtColor(image, cv2.COLOR_RGB2HSV)[:, :, 1].mean())


def test_same_image_rng_state_and_config_give_identical_output(art: np.ndarray) -> None:
    first = simulate_damage(art[0], np.random.default_rng(42), EVERYTHING)
    again = simulate_damage(art[0], np.random.default_rng(42), EVERYTHING)
    other = simulate_damage(art[0], np.random.default_rng(43), EVERYTHING)
    assert first.image.tobytes() == again.image.tobytes()
    assert first.mask.tobytes() == again.mask.tobytes() and first.applied == again.applied
    assert first.image.tobytes() != other.image.tobytes()


def test_output_types_and_the_input_is_left_alone(art: np.ndarray) -> None:
    original = art[3].copy()
    damaged = simulate_damage(art[3], np.random.default_rng(0), EVERYTHING)
    assert isinstance(damaged, Damaged)
    assert damaged.image.dtype == np.uint8 and damaged.image.shape == (128, 128, 3)
    assert damaged.mask.dtype == np.bool_ and damaged.mask.shape == (128, 128)
    assert damaged.applied == DAMAGE_ORDER
    assert np.array_equal(art[3], original)


@pytest.mark.parametrize("seed", range(6))
def test_local_damage_changes_pixels_only_inside_the_mask(art: np.ndarray, seed: int) -> None:
    image = art[seed * 2]
    damaged = simulate_damage(image, np.random.default_rng(seed), LOCAL_ONLY)
    changed = (damaged.image != image).any(axis=-1)
    assert damaged.applied == LOCAL_KINDS
    assert not (changed & ~damaged.mask).any()
    # ... and the mask is not padded far beyond what was drawn.
    assert changed[damaged.mask].mean() > 0.8


def test_global_degradations_change_everything_and_stay_out_of_the_mask(art: np.ndarray) -> None:
    config = DamageConfig(**{f"{kind}_probability": float(kind in GLOBAL_KINDS) for kind in DAMAGE_ORDER})
    damaged = simulate_damage(art[0], np.random.default_rng(1), config)
    assert damaged.applied == GLOBAL_KINDS
    assert not damaged.mask.any()
    assert (damaged.image != art[0]).any(axis=-1).mean() > 0.9


@pytest.mark.parametrize(
    ("preset", "kind"),
    [(DamageConfig.holes_only, "holes"), (DamageConfig.scratches_only, "scratches"),
     (DamageConfig.fade_only, "fade"), (DamageConfig.noise_only, "noise")],
)
def test_presets_apply_their_kind_and_nothing_else(art: np.ndarray, preset, kind: str) -> None:
    for seed in range(3):
        assert simulate_damage(art[seed], np.random.default_rng(seed), preset()).applied == (kind,)


def test_zero_probabilities_switch_everything_off(art: np.ndarray) -> None:
    nothing = DamageConfig(**{f"{kind}_probability": 0.0 for kind in DAMAGE_ORDER})
    damaged = simulate_damage(art[0], np.random.default_rng(0), nothing)
    assert damaged.applied == () and not damaged.mask.any() and np.array_equal(damaged.image, art[0])


def test_a_hole_measures_8_to_96_px_and_is_filled_with_a_backing_colour(art256: np.ndarray) -> None:
    one_hole = DamageConfig.only("holes", hole_count=(1, 1))  # 256x256 is the reference area: exactly one
    sides = []
    for seed in range(30):
        image = art256[seed % len(art256)]
        damaged = simulate_damage(image, np.random.default_rng(seed), one_hole)
        (x, y, w, h, _), = components(damaged.mask)
        sides.append(max(w, h))
        fill = damaged.image[damaged.mask].astype(np.float32).mean(axis=0)
        assert np.abs(BACKING_COLOURS - fill).max(axis=1).min() < 25, fill
    assert 8 <= min(sides) and max(sides) <= 96
    assert min(sides) < 32 and max(sides) > 70  # the range is used, not one size


def test_holes_are_clamped_to_half_a_small_image(art: np.ndarray) -> None:
    small = np.ascontiguousarray(art[0, :32, :32])
    for seed in range(10):
        damaged = simulate_damage(small, np.random.default_rng(seed), DamageConfig.holes_only())
        assert damaged.mask.any()
        assert all(max(w, h) <= 16 for _, _, w, h, _ in components(damaged.mask))


def test_a_scratch_is_a_thin_line(art256: np.ndarray) -> None:
    one_scratch = DamageConfig.only("scratches", scratch_count=(1, 1))
    for seed in range(12):
        damaged = simulate_damage(art256[seed % len(art256)], np.random.default_rng(seed), one_scratch)
        centre = skeletonize(damaged.mask)
        assert centre.sum() >= 0.1 * 256  # a line, not a dot
        # Distance from the centre line to the nearest unmasked pixel: 1 for a 1 px line, 2 for a 3 px one
        # along an axis, sqrt(5) for a 3 px one on the diagonal.
        depth = cv2.distanceTransform(np.pad(damaged.mask, 1).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        assert np.median(depth[1:-1, 1:-1][centre]) <= 2.25
        assert depth.max() <= 3.2  # no wider than about 5 px even where the curve folds


def test_craquelure_is_one_connected_network_of_thin_cracks(art256: np.ndarray) -> None:
    for seed in range(8):
        image = art256[seed % len(art256)]
        damaged = simulate_damage(image, np.random.default_rng(seed), DamageConfig.only("craquelure"))
        stats = components(damaged.mask)
        assert stats[:, 4].max() > 0.9 * damaged.mask.sum()  # connected
        x, y, w, h, area = stats[stats[:, 4].argmax()]
        assert area < 0.6 * w * h  # a network of lines, not a filled patch
        # Cracks darken what they cross.
        before = image[damaged.mask].astype(float).mean()
        assert damaged.image[damaged.mask].astype(float).mean() < before


def test_stains_are_brownish_and_in_the_mask(art256: np.ndarray) -> None:
    for seed in range(6):
        image = art256[5]  # pale ground: a stain shows as a tint towards brown
        damaged = simulate_damage(image, np.random.default_rng(seed), DamageConfig.only("stains"))
        shift = damaged.image[damaged.mask].astype(float).mean(axis=0) - image[damaged.mask].astype(float).mean(axis=0)
        assert damaged.mask.any()
        assert shift[0] > shift[2]  # red keeps more than blue: brown, not grey


def test_fade_lowers_contrast_and_saturation(art: np.ndarray) -> None:
    for index in range(0, len(art), 2):
        image = art[index]
        faded = simulate_damage(image, np.random.default_rng(index), DamageConfig.fade_only()).image
        luma_before, luma_after = image.astype(float).mean(axis=-1), faded.astype(float).mean(axis=-1)
        assert luma_after.std() < 0.9 * luma_before.std()
        # A near-grey picture (ink on rice paper) yellows instead: test_fade_yellows_a_grey_picture.
        assert saturation(faded) < saturation(image) or saturation(image) < 40


def test_fade_yellows_a_grey_picture() -> None:
    grey = np.repeat(np.linspace(20, 235, 64, dtype=np.uint8)[None, :, None], 3, axis=2).repeat(64, axis=0)
    faded = simulate_damage(grey, np.random.default_rng(0), DamageConfig.fade_only()).image
    red, green, blue = faded.astype(float).mean(axis=(0, 1))
    assert red > green > blue + 5


def test_noise_has_about_the_configured_strength(art: np.ndarray) -> None:
    config = DamageConfig.only("noise", noise_sigma=(8.0, 8.0))
    noisy = simulate_damage(art[2], np.random.default_rng(0), config).image
    residual = noisy.astype(float) - art[2]
    unclipped = (art[2] > 30) & (art[2] < 225)
    assert 7.0 < residual[unclipped].std() < 9.0


@pytest.mark.parametrize("shape", [(32, 32), (45, 77), (300, 200), (1024, 2048)])
def test_any_size_from_32_px_to_2048_px_works(shape: tuple[int, int]) -> None:
    image = cv2.resize(make_dataset(1, 64, seed=1)[0][1], (shape[1], shape[0]))
    damaged = simulate_damage(image, np.random.default_rng(0), EVERYTHING)
    assert damaged.image.shape == (*shape, 3) and damaged.mask.shape == shape
    assert 0.0 < damaged.mask.mean() < 0.8


def test_mask_share_stays_about_the_same_as_the_image_grows() -> None:
    """Counts scale with area, so a 512 px image is not far more (or less) damaged than a 256 px one."""
    shares = {}
    for size in (256, 512):
        image = cv2.resize(make_dataset(1, 64, seed=2)[0][4], (size, size))
        rng = np.random.default_rng(0)
        shares[size] = np.mean([simulate_damage(image, rng, LOCAL_ONLY).mask.mean() for _ in range(8)])
    assert 0.5 < shares[512] / shares[256] < 2.0


def test_damaging_a_batch_costs_a_small_share_of_the_training_step_it_feeds(art: np.ndarray) -> None:
    """The simulator runs on the CPU beside training: a batch of eight 128 px crops is damaged in
    about 1% of the time the inpainter takes to train on it (forward and backward), measured in
    turns in this run (a ratio, not a time: machines differ)."""
    network = InpaintingNet(RestorationConfig())
    rng = np.random.default_rng(0)
    crops = art[:8]

    def damage() -> tuple[np.ndarray, np.ndarray]:
        return damaged_batch(crops, rng, DamageConfig())

    def training_step() -> None:
        images, masks = damage()
        network(to_tensor(images, CPU), mask_tensor(masks, CPU)).mean().backward()

    timings: dict[str, list[float]] = {"damage": [], "step": []}
    for name, run in [("damage", damage), ("step", training_step)] * 4:
        start = time.perf_counter()
        run()
        timings[name].append(time.perf_counter() - start)
    assert np.median(timings["damage"]) < 0.1 * np.median(timings["step"]), timings


def test_invalid_configs_and_images_are_refused() -> None:
    with pytest.raises(ValueError):
        DamageConfig(holes_probability=1.5)
    with pytest.raises(ValueError):
        DamageConfig(hole_size=(50, 10))
    with pytest.raises(ValueError):
        DamageConfig.only("smudges")
    with pytest.raises(ValueError):
        simulate_damage(np.zeros((64, 64), np.uint8), np.random.default_rng(0))
    with pytest.raises(ValueError):
        simulate_damage(np.zeros((64, 64, 3), np.float32), np.random.default_rng(0))
