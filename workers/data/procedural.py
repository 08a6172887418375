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
    ProceduralStyle("ink_landscape", "a Chinese ink-wash landscape: layered mountains in ink tones, mist, "
                                     "rice paper and a red seal"),
    ProceduralStyle("skyline", "a city skyline of buildings against the sky, windows lit at dusk or night"),
    ProceduralStyle("still_life", "a still life of a vase and fruit on a table, lit from one side"),
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


# --- ink_landscape: layered mountains in ink tones on rice paper, mist, a red seal -------------

def _ridge(rng: random.Random, n: int, base: float, height: float) -> list[float]:
    """A mountain ridge's height above ``base`` at every column: a few overlapping peaks plus
    small roughness, so that ridges differ but always read as mountains."""
    xs = np.arange(n, dtype=np.float64)
    profile = np.zeros(n)
    for _ in range(rng.randint(2, 4)):
        centre, width = n * rng.uniform(-0.1, 1.1), n * rng.uniform(0.12, 0.35)
        peak = height * rng.uniform(0.45, 1.0)
        profile = np.maximum(profile, peak * np.clip(1 - np.abs(xs - centre) / width, 0, None) ** rng.uniform(0.8, 1.6))
    roughness = np.interp(xs, np.linspace(0, n, 24), [rng.uniform(-1, 1) for _ in range(24)])
    return list(base - profile - roughness * height * 0.06)


def _paint_ink_landscape(rng: random.Random, n: int) -> Image.Image:
    paper = np.array(hsv(rng.uniform(0.08, 0.12), rng.uniform(0.08, 0.18), rng.uniform(0.86, 0.95)), np.float64)
    canvas = np.ones((n, n, 3)) * paper
    fibre = np.asarray(Image.frombytes("L", (n, n), rng.randbytes(n * n)).filter(ImageFilter.GaussianBlur(0.6)))
    canvas += ((fibre - 128.0) * 0.08)[:, :, None]
    ink = np.array(hsv(rng.uniform(0.55, 0.65), rng.uniform(0.05, 0.2), 0.08), np.float64)
    layers = rng.randint(3, 5)
    rows = np.arange(n, dtype=np.float64)[:, None]
    for layer in range(layers):
        depth = layer / (layers - 1)  # 0: farthest, 1: nearest
        base = n * (0.42 + 0.55 * depth + rng.uniform(-0.04, 0.04))
        ridge = np.array(_ridge(rng, n, base, n * rng.uniform(0.2, 0.5) * (1.2 - 0.5 * depth)))
        below = rows - ridge[None, :]  # how far under the ridge line, in pixels
        # Ink is densest at the ridge and thins downwards into mist, as with a wash.
        fall = n * rng.uniform(0.12, 0.22)
        density = np.clip(1 - below / fall, 0, 1) * (below >= 0)
        strength = 0.25 + 0.7 * depth
        alpha = np.asarray(Image.fromarray((density * 255).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(n * 0.006 * (2 - depth))), np.float64) / 255 * strength
        canvas = canvas * (1 - alpha[:, :, None]) + ink * alpha[:, :, None]
        if depth == 1:  # trees: dark dots along the nearest ridge
            for _ in range(rng.randint(4, 10)):
                column = rng.randrange(n)
                row, r = ridge[column], n * rng.uniform(0.006, 0.014)
                yy, xx = np.ogrid[:n, :n]
                dot = ((yy - row) ** 2 + (xx - column) ** 2 <= r * r)
                canvas[dot] = canvas[dot] * 0.3 + ink * 0.7
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    # A column of calligraphy and the red seal below it, in an upper corner.
    right = rng.random() < 0.6
    side = n * rng.uniform(0.06, 0.085)
    x = n - side * 1.6 if right else side * 0.6
    y = n * rng.uniform(0.06, 0.12)
    for _ in range(rng.randint(3, 5)):
        stroke = (x + side * 0.15, y, x + side * 0.85, y + side * 0.18)
        draw.rectangle(stroke, fill=tuple(int(c) for c in ink))
        y += side * 0.45
    seal = hsv(rng.uniform(-0.01, 0.02), rng.uniform(0.75, 0.9), rng.uniform(0.65, 0.8))
    draw.rectangle((x, y + side * 0.3, x + side, y + side * 1.3), fill=seal)
    draw.rectangle((x + side * 0.3, y + side * 0.55, x + side * 0.7, y + side * 1.05), outline=tuple(paper.astype(int)),
                   width=max(1, round(side * 0.1)))
    return image


# --- skyline: a city's buildings against the sky, lit windows at dusk and night ---------------

def _gradient(n: int, top: RGB, bottom: RGB) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None, None]
    return np.broadcast_to(np.array(top) * (1 - t) + np.array(bottom) * t, (n, n, 3)).copy()


def _paint_skyline(rng: random.Random, n: int) -> Image.Image:
    time_of_day = rng.choice(("dusk", "night", "day"))
    if time_of_day == "dusk":
        sky = _gradient(n, hsv(rng.uniform(0.7, 0.8), 0.6, 0.45), hsv(rng.uniform(0.03, 0.09), 0.75, 0.98))
        far, near, lit = hsv(0.75, 0.35, 0.35), hsv(0.72, 0.4, 0.15), 0.6
    elif time_of_day == "night":
        sky = _gradient(n, hsv(0.64, 0.8, 0.12), hsv(0.62, 0.6, 0.35))
        far, near, lit = hsv(0.63, 0.4, 0.22), hsv(0.65, 0.4, 0.08), 0.75
    else:
        sky = _gradient(n, hsv(0.58, 0.55, 0.95), hsv(0.56, 0.15, 0.98))
        far, near, lit = hsv(0.6, 0.15, 0.72), hsv(0.6, 0.25, 0.45), 0.0
    image = Image.fromarray(sky.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    if rng.random() < 0.6:  # the sun or the moon
        cx, cy, r = n * rng.uniform(0.15, 0.85), n * rng.uniform(0.12, 0.35), n * rng.uniform(0.04, 0.09)
        glow = hsv(0.13, 0.1, 0.98) if time_of_day == "night" else hsv(0.1, 0.6, 1.0)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=glow)
    horizon = n * rng.uniform(0.78, 0.92)
    window_colour = hsv(rng.uniform(0.11, 0.15), 0.6, 0.95)
    for row, colour in ((0, far), (1, near)):
        x = -n * rng.uniform(0, 0.05)
        while x < n:
            width = n * rng.uniform(0.06, 0.16)
            height = n * rng.uniform(0.15, 0.45) * (0.8 if row == 0 else 1.0)
            top = horizon - height - (n * 0.05 if row == 0 else 0)
            draw.rectangle((x, top, x + width, horizon), fill=colour)
            roof = rng.random()
            if roof < 0.2:  # a spire
                draw.rectangle((x + width * 0.45, top - height * 0.25, x + width * 0.55, top), fill=colour)
            elif roof < 0.4:  # a stepped top
                draw.rectangle((x + width * 0.2, top - height * 0.1, x + width * 0.8, top), fill=colour)
            if row == 1 and lit > 0:
                cell = n * rng.uniform(0.025, 0.04)
                for wy in np.arange(top + cell * 0.6, horizon - cell, cell):
                    for wx in np.arange(x + cell * 0.4, x + width - cell * 0.6, cell):
                        if rng.random() < lit * 0.6:
                            draw.rectangle((wx, wy, wx + cell * 0.45, wy + cell * 0.5), fill=window_colour)
            x += width + n * rng.uniform(0.0, 0.03)
    water = hsv(0.62, 0.4, 0.18 if time_of_day != "day" else 0.55)
    draw.rectangle((0, horizon, n, n), fill=water)
    # The city's reflection: the band above the horizon, flipped, darkened and blurred.
    band = round(min(n - horizon, horizon))
    if band > 0:
        above = image.crop((0, round(horizon) - band, n, round(horizon))).transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        above = Image.blend(above, Image.new("RGB", above.size, water), 0.55)
        above = above.filter(ImageFilter.GaussianBlur(n * 0.006))
        image.paste(above, (0, round(horizon)))
    return image


# --- still_life: a vase, fruit and a bowl on a table, lit from one side -----------------------

def _shaded(n: int, box: Box, colour: RGB, light: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """An ellipse in ``box`` as (mask, shaded colours): brightest towards ``light`` (a unit 2-D
    direction), darker on the far side, as a sphere lit from there would be."""
    x0, y0, x1, y1 = box
    yy, xx = np.mgrid[:n, :n].astype(np.float64)
    u, v = (xx - (x0 + x1) / 2) / max((x1 - x0) / 2, 1), (yy - (y0 + y1) / 2) / max((y1 - y0) / 2, 1)
    mask = u * u + v * v <= 1
    lit = np.clip(-(u * light[0] + v * light[1]) * 0.5 + 0.6, 0.25, 1.15)
    return mask, np.clip(np.array(colour, np.float64)[None, None, :] * lit[:, :, None], 0, 255)


def _paint_still_life(rng: random.Random, n: int) -> Image.Image:
    wall = hsv(rng.uniform(0.05, 0.6), rng.uniform(0.1, 0.35), rng.uniform(0.35, 0.75))
    table = hsv(rng.uniform(0.05, 0.1), rng.uniform(0.4, 0.7), rng.uniform(0.3, 0.6))
    edge = n * rng.uniform(0.55, 0.68)
    canvas = np.empty((n, n, 3))
    canvas[:] = wall
    canvas[round(edge):] = table
    light = (-1.0, -0.6) if rng.random() < 0.5 else (1.0, -0.6)
    norm = math.hypot(*light)
    light = (light[0] / norm, light[1] / norm)
    objects: list[tuple[Box, RGB]] = []
    if rng.random() < 0.8:  # a tall vase: body and neck
        cx, width = n * rng.uniform(0.3, 0.7), n * rng.uniform(0.22, 0.32)
        height = n * rng.uniform(0.42, 0.58)
        colour = hsv(rng.random(), rng.uniform(0.3, 0.8), rng.uniform(0.5, 0.9))
        bottom = edge + n * 0.06
        objects.append(((cx - width / 2, bottom - height * 0.7, cx + width / 2, bottom), colour))
        objects.append(((cx - width * 0.18, bottom - height, cx + width * 0.18, bottom - height * 0.45), colour))
    fruit_hues = (0.0, 0.03, 0.08, 0.14, 0.25)
    for _ in range(rng.randint(2, 5)):
        r = n * rng.uniform(0.065, 0.11)
        cx, cy = n * rng.uniform(0.12, 0.88), edge + n * rng.uniform(0.02, 0.18)
        colour = hsv(rng.choice(fruit_hues) + rng.uniform(-0.02, 0.02), rng.uniform(0.65, 0.95), rng.uniform(0.7, 0.95))
        objects.append(((cx - r, cy - r, cx + r, cy + r), colour))
    objects.sort(key=lambda item: item[0][3])  # farther (higher on the table) first
    shadow_dx = -light[0] * n * 0.05
    for (x0, _, x1, y1), _ in objects:  # cast shadows on the table
        yy, xx = np.mgrid[:n, :n]
        cx, w = (x0 + x1) / 2 + shadow_dx, (x1 - x0) / 2
        shadow = ((xx - cx) / max(w, 1)) ** 2 + ((yy - y1) / max(n * 0.025, 1)) ** 2 <= 1
        canvas[shadow & (yy >= edge)] *= 0.7
    for box, colour in objects:
        mask, shaded = _shaded(n, box, colour, light)
        canvas[mask] = shaded[mask]
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(n * 0.004))
    return _add_texture(rng, image, strength=0.05)


PAINTERS: tuple[Callable[[random.Random, int], Image.Image], ...] = (
    _paint_grid, _paint_color_field, _paint_circles, _paint_drips, _paint_stripes, _paint_shapes,
    _paint_ink_landscape, _paint_skyline, _paint_still_life,
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
