"""The palette and the colour statistics against images whose colours are known."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab

from workers.analysis.colour_stats import colour_stats, hasler_susstrunk
from workers.analysis.palette import extract_palette
from workers.analysis.pixels import grid_sample, work_image
from workers.data.procedural import PAINTERS, STYLE_NAMES

FOUR = [((200, 40, 30), 0.4), ((30, 60, 170), 0.3), ((240, 220, 180), 0.2), ((20, 20, 20), 0.1)]
SIX = [((204, 150, 40), 0.30), ((40, 90, 60), 0.22), ((245, 240, 230), 0.18), ((120, 30, 60), 0.12),
       ((90, 150, 220), 0.10), ((60, 40, 30), 0.08)]


def bands(colours: list[tuple[tuple[int, int, int], float]], size: tuple[int, int] = (500, 300),
          noise: float = 0.0, seed: int = 0) -> Image.Image:
    """Vertical bands of flat colour, each as wide as its share, optionally with Gaussian noise."""
    w, h = size
    array = np.zeros((h, w, 3), dtype=np.float64)
    x = 0
    for i, (rgb, share) in enumerate(colours):
        right = w if i == len(colours) - 1 else x + round(w * share)
        array[:, x:right] = rgb
        x = right
    if noise:
        array += np.random.default_rng(seed).normal(0, noise, array.shape)
    return Image.fromarray(np.clip(array + 0.5, 0, 255).astype(np.uint8))


def lab(rgb: tuple[int, int, int]) -> np.ndarray:
    return np.asarray(rgb2lab(np.array([[rgb]], dtype=np.float64) / 255.0))[0, 0]


@pytest.mark.parametrize(("colours", "noise"), [(FOUR, 0.0), (SIX, 0.0), (SIX, 4.0), (FOUR, 6.0)],
                         ids=["four-flat", "six-flat", "six-noisy", "four-noisy"])
def test_known_colours_and_shares_are_found(colours: list[tuple[tuple[int, int, int], float]], noise: float) -> None:
    palette = extract_palette(grid_sample(bands(colours, noise=noise)))
    assert 1 <= len(palette) <= 8
    for rgb, share in colours:
        nearest = min(palette, key=lambda c: float(deltaE_ciede2000(np.array(c.lab), lab(rgb))))
        assert float(deltaE_ciede2000(np.array(nearest.lab), lab(rgb))) <= 5.0, (rgb, nearest)
        assert abs(nearest.share - share) <= 0.05, (rgb, share, nearest)
    shares = [c.share for c in palette]
    assert shares == sorted(shares, reverse=True) and abs(sum(shares) - 1.0) < 1e-6


def test_a_photo_gets_five_to_eight_named_colours() -> None:
    from skimage import data

    palette = extract_palette(grid_sample(Image.fromarray(data.coffee())))
    assert 5 <= len(palette) <= 8
    assert all(c.hex.startswith("#") and len(c.hex) == 7 and c.name_en and c.name_zh for c in palette)


def test_colour_names_follow_the_colour() -> None:
    palette = extract_palette(grid_sample(bands([((200, 30, 35), 0.5), ((50, 110, 220), 0.5)])))
    assert {c.name_en for c in palette} == {"red", "blue"}
    assert {c.name_zh for c in palette} == {"红色", "蓝色"}


def flat(rgb: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (64, 64), rgb)


def test_brightness_warmth_contrast_and_colourfulness_of_simple_images() -> None:
    white, black, grey = (colour_stats(work_image(flat(c))) for c in ((255, 255, 255), (0, 0, 0), (128, 128, 128)))
    assert white.brightness == pytest.approx(1.0, abs=1e-3) and black.brightness == pytest.approx(0.0, abs=1e-3)
    assert grey.warmth == pytest.approx(0.0, abs=1e-3) and grey.colourfulness == pytest.approx(0.0, abs=1e-6)
    assert grey.contrast == pytest.approx(0.0, abs=1e-6) and grey.colourfulness_level == "not colourful"
    orange, blue = colour_stats(work_image(flat((240, 130, 30)))), colour_stats(work_image(flat((40, 80, 220))))
    assert orange.warmth > 0.6 and blue.warmth < -0.4
    half = bands([((0, 0, 0), 0.5), ((255, 255, 255), 0.5)], size=(64, 64))
    assert colour_stats(work_image(half)).contrast > 0.95


def test_colourfulness_is_hasler_and_susstrunks_formula() -> None:
    rgb = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    r, g, b = rgb[:, 0] * 255, rgb[:, 1] * 255, rgb[:, 2] * 255
    rg, yb = r - g, (r + g) / 2 - b
    expected = np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    assert hasler_susstrunk(rgb) == pytest.approx(expected)


def hues(*degrees: float, size: int = 96) -> Image.Image:
    from colorsys import hsv_to_rgb

    colours = [(tuple(round(v * 255) for v in hsv_to_rgb(d / 360, 0.8, 0.85)), 1 / len(degrees)) for d in degrees]
    return bands(colours, size=(size * len(degrees), size))  # type: ignore[arg-type]


@pytest.mark.parametrize(("degrees", "expected"), [
    ((20,), "monochrome"), ((0, 40, 70), "analogous"), ((30, 210), "complementary"),
    ((0, 150, 210), "split"), ((0, 120, 240), "triadic")])
def test_harmony_type_from_known_hues(degrees: tuple[float, ...], expected: str) -> None:
    assert colour_stats(work_image(hues(*degrees))).harmony.type == expected


def test_greys_are_monochrome_and_noise_is_varied() -> None:
    assert colour_stats(work_image(bands([((30, 30, 30), 0.5), ((200, 200, 200), 0.5)]))).harmony.type == "monochrome"
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 256, (128, 128, 3), dtype=np.uint8))
    assert colour_stats(work_image(noise)).harmony.type == "varied"


def test_the_colours_a_procedural_grid_painting_was_painted_with_are_found() -> None:
    """The grid painter fills rectangles with flat colours (no antialiasing), so its canvas holds
    exactly the colours it painted, in known shares: each colour of at least 3% is found within
    ΔE2000 5 and 5 points of its share, over twelve paintings."""
    for seed in range(12):
        canvas = PAINTERS[STYLE_NAMES.index("grid")](random.Random(f"artforge.procedural:0:{seed}"), 256)
        colours, counts = np.unique(np.asarray(canvas).reshape(-1, 3), axis=0, return_counts=True)
        palette = extract_palette(grid_sample(canvas))
        painted = [(tuple(int(v) for v in rgb), count / counts.sum()) for rgb, count in zip(colours, counts,
                                                                                         strict=True)]
        assert sum(share >= 0.03 for _, share in painted) >= 3  # white, ink and at least one colour
        for rgb, share in painted:
            if share < 0.03:
                continue
            nearest = min(palette, key=lambda c: float(deltaE_ciede2000(np.array(c.lab), lab(rgb))))
            assert float(deltaE_ciede2000(np.array(nearest.lab), lab(rgb))) <= 5.0, (seed, rgb, nearest)
            assert abs(nearest.share - share) <= 0.05, (seed, rgb, share, nearest)
