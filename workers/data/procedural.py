"""A built-in procedural abstract-art dataset, always available as the dataset ``procedural``.

Six styles, each loosely after a school of abstract painting. Every image is drawn from a
seed alone: the same (style, seed, size) always gives the same pixels. Shapes are drawn at
twice the output size with Pillow and downsampled with LANCZOS, which antialiases them.
Each style has its own palette tendencies (brightness, saturation, warmth) and its own
random layout, so images differ clearly inside a style and the styles differ from each other.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

RGB = tuple[int, int, int]
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ProceduralStyle:
    name: str
    description: str


STYLES: tuple[ProceduralStyle, ...] = (
    ProceduralStyle("grid", "a grid composition of black lines and primary-colour rectangles on white"),
    ProceduralStyle("color_field", "large soft fields of colour stacked on a canvas"),
    ProceduralStyle("circles", "concentric circles of contrasting colours"),
    ProceduralStyle("drips", "drips and splatters of paint on a dark ground"),
    ProceduralStyle("stripes", "parallel stripes of colour"),
    ProceduralStyle("shapes", "scattered geometric shapes on a pale ground"),
)
STYLE_NAMES = [s.name for s in STYLES]


def hsv(hue: float, saturation: float, value: float) -> RGB:
    """8-bit RGB from HSV in [0, 1]; the hue wraps around, the others are clamped."""
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, min(max(saturation, 0.0), 1.0), min(max(value, 0.0), 1.0))
    return round(r * 255), round(g * 255), round(b * 255)


# --- grid: black lines dividing white into cells, a few in primary colours -------------------

def _split_cells(
    rng: random.Random, box: Box, depth: int, min_side: float, sure_depth: int = 2
) -> tuple[list[Box], list[Box]]:
    """Recursively split ``box``; returns the leaf cells and the dividing lines (as zero-width boxes).

    The first ``sure_depth`` levels always split (space permitting), deeper ones may stop early.
    """
    x0, y0, x1, y1 = box
    width, height = x1 - x0, y1 - y0
    stops_early = sure_depth <= 0 and rng.random() < 0.25
    if depth == 0 or max(width, height) < 2 * min_side or stops_early:
        return [box], []
    vertical = width > height if rng.random() < 0.7 else rng.random() < 0.5
    if vertical and width < 2 * min_side:
        vertical = False
    if not vertical and height < 2 * min_side:
        vertical = True
    if vertical:
        x = x0 + width * rng.uniform(0.25, 0.75)
        halves, line = [(x0, y0, x, y1), (x, y0, x1, y1)], (x, y0, x, y1)
    else:
        y = y0 + height * rng.uniform(0.25, 0.75)
        halves, line = [(x0, y0, x1, y), (x0, y, x1, y1)], (x0, y, x1, y)
    cells, lines = [], [line]
    for half in halves:
        sub_cells, sub_lines = _split_cells(rng, half, depth - 1, min_side, sure_depth - 1)
        cells += sub_cells
        lines += sub_lines
    return cells, lines


def _paint_grid(rng: random.Random, n: int) -> Image.Image:
    ground = hsv(rng.uniform(0.08, 0.16), rng.uniform(0.0, 0.1), rng.uniform(0.9, 1.0))
    image = Image.new("RGB", (n, n), ground)
    draw = ImageDraw.Draw(image)
    cells, lines = _split_cells(rng, (0, 0, n, n), depth=rng.randint(3, 5), min_side=n * 0.12)
    saturation, value = rng.uniform(0.65, 1.0), rng.uniform(0.7, 1.0)
    primaries = [rng.uniform(-0.02, 0.02), rng.uniform(0.12, 0.16), rng.uniform(0.6, 0.66)]
    coloured = min(max(1, len(cells) // 2), rng.randint(2, 5))  # white stays the main colour
    for cell in rng.sample(cells, k=coloured):
        colour = hsv(0, 0, 0.1) if rng.random() < 0.1 else hsv(rng.choice(primaries), saturation, value)
        draw.rectangle(cell, fill=colour)
    ink, half_width = hsv(0.62, 0.3, rng.uniform(0.0, 0.12)), n * rng.uniform(0.012, 0.025)
    for x0, y0, x1, y1 in lines:
        draw.rectangle((x0 - half_width, y0 - half_width, x1 + half_width, y1 + half_width), fill=ink)
    return image


# --- color_field: soft stacked blocks of colour on a deep ground -------------------------------

def _add_texture(rng: random.Random, image: Image.Image, strength: float) -> Image.Image:
    """Low-frequency brightness variation, like uneven layers of thin paint."""
    coarse = max(2, image.width // 12)
    noise = Image.frombytes("L", (coarse, coarse), rng.randbytes(coarse * coarse))
    noise = noise.resize(image.size, Image.Resampling.BICUBIC)
    offset = (np.asarray(noise, dtype=np.float32) - 128.0) * strength
    pixels = np.asarray(image, dtype=np.float32) + offset[:, :, None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _paint_color_field(rng: random.Random, n: int) -> Image.Image:
    hue = rng.random()
    ground = hsv(hue + rng.uniform(-0.04, 0.04), rng.uniform(0.35, 0.9), rng.uniform(0.12, 0.55))
    image = Image.new("RGB", (n, n), ground)
    draw = ImageDraw.Draw(image)
    blocks = rng.choice((2, 2, 3))
    margin_x, margin_y, gap = n * rng.uniform(0.07, 0.13), n * rng.uniform(0.05, 0.1), n * rng.uniform(0.03, 0.07)
    weights = [rng.uniform(0.5, 1.6) for _ in range(blocks)]
    free = n - 2 * margin_y - gap * (blocks - 1)
    top = margin_y
    for weight in weights:
        height = free * weight / sum(weights)
        block_hue = hue + rng.choice((0.0, 0.04, -0.04, 0.08, -0.08, 0.5))
        colour = hsv(block_hue, rng.uniform(0.3, 0.9), rng.uniform(0.2, 0.95))
        draw.rectangle((margin_x, top, n - margin_x, top + height), fill=colour)
        top += height + gap
    image = image.filter(ImageFilter.GaussianBlur(n * rng.uniform(0.012, 0.03)))
    return _add_texture(rng, image, strength=rng.uniform(0.03, 0.08))


# --- circles: concentric rings of contrasting colours ------------------------------------------

def _rings(rng: random.Random, draw: ImageDraw.ImageDraw, centre: tuple[float, float], radius: float) -> None:
    hue = rng.random()
    count = rng.randint(3, 7)
    for ring in range(count):
        r = radius * (1 - ring / count) * rng.uniform(0.9, 1.0)
        hue += rng.uniform(0.25, 0.75)  # contrasting with the ring outside
        colour = hsv(hue, rng.uniform(0.55, 1.0), rng.uniform(0.6, 1.0))
        cx, cy = centre
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)


def _paint_circles(rng: random.Random, n: int) -> Image.Image:
    image = Image.new("RGB", (n, n), hsv(rng.random(), rng.uniform(0.3, 0.9), rng.uniform(0.6, 1.0)))
    draw = ImageDraw.Draw(image)
    layout = rng.choice(("single", "grid", "scattered"))
    if layout == "single":
        centre = (n * rng.uniform(0.35, 0.65), n * rng.uniform(0.35, 0.65))
        _rings(rng, draw, centre, n * rng.uniform(0.35, 0.6))
    elif layout == "grid":
        cells = rng.choice((2, 3))
        side = n / cells
        for row in range(cells):
            for column in range(cells):
                box = (column * side, row * side, (column + 1) * side, (row + 1) * side)
                draw.rectangle(box, fill=hsv(rng.random(), rng.uniform(0.4, 1.0), rng.uniform(0.5, 1.0)))
                _rings(rng, draw, ((column + 0.5) * side, (row + 0.5) * side), side * rng.uniform(0.3, 0.45))
    else:
        for _ in range(rng.randint(2, 5)):
            _rings(rng, draw, (n * rng.random(), n * rng.random()), n * rng.uniform(0.12, 0.35))
    return image


# --- drips: thin poured lines and splatters on a dark or raw ground ----------------------------

# (hue, saturation, value): light paints that show on the dark ground, and darker accents.
DRIP_LIGHT_PAINTS = ((0.12, 0.08, 0.95), (0.11, 0.7, 0.8), (0.6, 0.05, 0.75))
DRIP_ACCENT_PAINTS = ((0.0, 0.0, 0.05), (0.02, 0.75, 0.6), (0.5, 0.5, 0.55), (0.08, 0.5, 0.4))


def _drip_line(rng: random.Random, n: int) -> list[tuple[float, float]]:
    """A wandering poured line: a random walk whose heading turns smoothly."""
    x, y, heading = n * rng.random(), n * rng.random(), rng.uniform(0, 2 * math.pi)
    points = [(x, y)]
    for _ in range(rng.randint(4, 10)):
        heading += rng.uniform(-1.2, 1.2)
        step = n * rng.uniform(0.04, 0.14)
        x, y = x + step * math.cos(heading), y + step * math.sin(heading)
        points.append((x, y))
    return points


def _paint_drips(rng: random.Random, n: int) -> Image.Image:
    ground = hsv(rng.uniform(0.05, 0.12), rng.uniform(0.15, 0.55), rng.uniform(0.05, 0.3))
    image = Image.new("RGB", (n, n), ground)
    draw = ImageDraw.Draw(image)
    paints = rng.sample(DRIP_LIGHT_PAINTS, k=rng.randint(1, 2)) + rng.sample(DRIP_ACCENT_PAINTS, k=rng.randint(1, 2))
    for h, s, v in paints:
        colour = hsv(h + rng.uniform(-0.03, 0.03), s * rng.uniform(0.8, 1.1), v * rng.uniform(0.8, 1.05))
        for _ in range(rng.randint(6, 14)):
            width = max(1, round(n * rng.uniform(0.004, 0.016)))
            draw.line(_drip_line(rng, n), fill=colour, width=width, joint="curve")
        for _ in range(rng.randint(6, 25)):
            x, y, r = n * rng.random(), n * rng.random(), n * rng.uniform(0.004, 0.018)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    return _add_texture(rng, image, strength=0.05)


# --- stripes: hard-edged parallel bands --------------------------------------------------------

def _stripe_palette(rng: random.Random) -> list[RGB]:
    base = rng.random()
    analogous = rng.random() < 0.4
    saturation, value = rng.uniform(0.35, 1.0), rng.uniform(0.45, 1.0)
    palette = []
    for _ in range(rng.randint(3, 6)):
        hue = base + (rng.uniform(-0.1, 0.1) if analogous else rng.random())
        palette.append(hsv(hue, saturation * rng.uniform(0.7, 1.1), value * rng.uniform(0.6, 1.1)))
    return palette


def _paint_stripes(rng: random.Random, n: int) -> Image.Image:
    palette = _stripe_palette(rng)
    image = Image.new("RGB", (n, n), palette[0])
    draw = ImageDraw.Draw(image)
    angle = math.radians(rng.choice((0, 90, 45, -45, rng.uniform(20, 70))))
    along, across = (math.cos(angle), math.sin(angle)), (-math.sin(angle), math.cos(angle))
    reach = n * 0.75  # beyond the half-diagonal, so every band crosses the whole canvas
    thin, thick = n * rng.uniform(0.02, 0.06), n * rng.uniform(0.08, 0.2)
    offset, previous = -reach, palette[0]
    while offset < reach:
        width = rng.uniform(thin, thick)
        colour = rng.choice([c for c in palette if c != previous] or palette)
        corners = [(offset, -reach), (offset + width, -reach), (offset + width, reach), (offset, reach)]
        draw.polygon([(n / 2 + a * across[0] + b * along[0], n / 2 + a * across[1] + b * along[1])
                      for a, b in corners], fill=colour)
        offset, previous = offset + width, colour
    return image


# --- shapes: scattered triangles, squares and circles on a pale ground -------------------------

def _polygon(centre: tuple[float, float], radius: float, sides: int, turn: float) -> list[tuple[float, float]]:
    """The corners of a regular polygon with ``sides`` corners, turned by ``turn`` radians."""
    angles = [turn + 2 * math.pi * k / sides for k in range(sides)]
    return [(centre[0] + radius * math.cos(a), centre[1] + radius * math.sin(a)) for a in angles]


def _paint_shapes(rng: random.Random, n: int) -> Image.Image:
    ground = hsv(rng.uniform(0.05, 0.16), rng.uniform(0.03, 0.15), rng.uniform(0.88, 0.98))
    image = Image.new("RGB", (n, n), ground)
    draw = ImageDraw.Draw(image)
    warm_bias = rng.uniform(0.5, 0.9)
    for _ in range(rng.randint(5, 14)):
        hue = rng.uniform(-0.05, 0.15) if rng.random() < warm_bias else rng.random()
        colour = hsv(hue, rng.uniform(0.25, 0.65), rng.uniform(0.7, 0.98))
        centre, radius = (n * rng.random(), n * rng.random()), n * rng.uniform(0.05, 0.2)
        kind = rng.choice(("triangle", "square", "circle"))
        if kind == "circle":
            draw.ellipse((centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius), fill=colour)
        else:
            sides = 3 if kind == "triangle" else 4
            draw.polygon(_polygon(centre, radius, sides, rng.uniform(0, 2 * math.pi)), fill=colour)
    return image


PAINTERS: tuple[Callable[[random.Random, int], Image.Image], ...] = (
    _paint_grid, _paint_color_field, _paint_circles, _paint_drips, _paint_stripes, _paint_shapes,
)


def render(style_index: int, seed: int, size: int = 64) -> np.ndarray:
    """One image of ``STYLES[style_index]`` as uint8 [size, size, 3]; the same arguments give the same pixels."""
    if not 0 <= style_index < len(STYLES):
        raise ValueError(f"style_index must be in [0, {len(STYLES)}), got {style_index}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    rng = random.Random(f"artforge.procedural:{style_index}:{seed}")  # str seeds hash stably across runs
    canvas = PAINTERS[style_index](rng, 2 * size)
    return np.array(canvas.resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)


def item_seed(seed: int, style_index: int, item: int) -> int:
    """The render seed of item ``item`` of a style; independent of how many items are made."""
    digest = hashlib.sha256(f"{seed}:{style_index}:{item}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def make_dataset(per_style: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``per_style`` images of every style, style by style: images uint8 [N, size, size, 3], labels int64 [N].

    Item i of style s depends only on (seed, s, i), so the first k items of each style are
    the same for any ``per_style >= k``.
    """
    if per_style < 0:
        raise ValueError(f"per_style must not be negative, got {per_style}")
    images = np.empty((len(STYLES) * per_style, size, size, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(len(STYLES), dtype=np.int64), per_style)
    for style_index in range(len(STYLES)):
        for item in range(per_style):
            images[style_index * per_style + item] = render(style_index, item_seed(seed, style_index, item), size)
    return images, labels
