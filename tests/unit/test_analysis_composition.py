"""Composition and texture measures against images whose layout is known."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from bench.analysis import random_composition
from workers.analysis.composition import composition
from workers.analysis.pixels import work_image
from workers.analysis.texture import texture


def disc(centre: tuple[float, float], size: tuple[int, int] = (600, 400), radius: int = 40) -> Image.Image:
    image = Image.new("RGB", size, (235, 230, 215))
    x, y = centre[0] * size[0], centre[1] * size[1]
    ImageDraw.Draw(image).ellipse([x - radius, y - radius, x + radius, y + radius], fill=(30, 50, 140))
    return image


@pytest.mark.parametrize("centre", [(0.5, 0.5), (0.2, 0.3), (2 / 3, 1 / 3), (0.85, 0.8), (0.1, 0.9)])
def test_centre_of_mass_of_a_disc_is_where_the_disc_is(centre: tuple[float, float]) -> None:
    found = composition(work_image(disc(centre))).centre_of_mass
    assert abs(found[0] - centre[0]) <= 0.03 and abs(found[1] - centre[1]) <= 0.03, found


def test_a_disc_on_a_thirds_point_scores_high_and_one_in_the_middle_low() -> None:
    on_third = composition(work_image(disc((2 / 3, 1 / 3), radius=20)))
    middle = composition(work_image(disc((0.5, 0.5), radius=20)))
    assert on_third.thirds > 0.8 and middle.thirds < 0.15
    assert middle.balance > 0.98 and on_third.balance < 0.7


def test_negative_space_of_a_disc_is_the_ground_around_it() -> None:
    found = composition(work_image(disc((0.4, 0.5), radius=60))).negative_space
    assert found == pytest.approx(1 - np.pi * 60**2 / (600 * 400), abs=0.03)


@pytest.mark.parametrize("seed", range(4))
def test_mirrored_images_are_symmetric_and_random_ones_are_not(seed: int) -> None:
    array = np.asarray(random_composition(seed))
    half = array.shape[1] // 2
    mirrored_lr = np.concatenate([array[:, :half], array[:, :half][:, ::-1]], axis=1)
    mirrored_tb = np.concatenate([array[:half], array[:half][::-1]], axis=0)
    assert composition(work_image(Image.fromarray(mirrored_lr))).symmetry_lr >= 0.95
    assert composition(work_image(Image.fromarray(mirrored_tb))).symmetry_tb >= 0.95
    plain = composition(work_image(Image.fromarray(array)))
    assert plain.symmetry_lr < 0.8 and plain.symmetry_tb < 0.8


def stripes(horizontal: bool, size: int = 256, period: int = 16) -> Image.Image:
    wave = (np.sin(np.arange(size) * 2 * np.pi / period) > 0).astype(np.uint8) * 200 + 30
    grid = np.repeat(wave[:, None], size, axis=1) if horizontal else np.repeat(wave[None, :], size, axis=0)
    return Image.fromarray(np.stack([grid] * 3, axis=2))


def test_stripes_give_their_orientation_and_coherent_strokes() -> None:
    horizontal = composition(work_image(stripes(True)))
    vertical = composition(work_image(stripes(False)))
    assert horizontal.orientations[0].name == "horizontal" and horizontal.orientations[0].share > 0.8
    assert vertical.orientations[0].name == "vertical" and vertical.orientations[0].share > 0.8
    assert texture(work_image(stripes(True))).coherence > 0.8
    assert horizontal.edge_density > composition(work_image(disc((0.5, 0.5)))).edge_density


def test_flat_paint_is_smooth_and_noise_is_impasto_like() -> None:
    smooth = texture(work_image(Image.new("RGB", (128, 128), (120, 80, 40))))
    assert smooth.surface == "smooth" and smooth.local_contrast < 0.01
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8))
    rough = texture(work_image(noise))
    assert rough.surface == "impasto-like" and rough.coherence < 0.3 and rough.local_contrast > 0.5
