"""The annotated picture of an analysis: the work with its composition drawn over it and its palette below.

Over the work: the rule-of-thirds lines (thin, light), the visual centre of mass (a ring and a
cross) and the dominant line orientations (lines through the centre of mass, longer for a larger
share). Below it: the palette as a strip, each colour as wide as its share, labelled with its hex.
"""

from __future__ import annotations

import math
from typing import Any

from PIL import Image, ImageDraw

MAX_SIDE = 768
STRIP_HEIGHT = 56


def annotate(image: Image.Image, report: dict[str, Any]) -> Image.Image:
    work = image.convert("RGB")
    if max(work.size) > MAX_SIDE:
        work.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    w, h = work.size
    canvas = Image.new("RGB", (w, h + STRIP_HEIGHT), (255, 255, 255))
    canvas.paste(work, (0, 0))
    overlay = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for third in (1 / 3, 2 / 3):
        draw.line([(w * third, 0), (w * third, h)], fill=(255, 255, 255, 140), width=1)
        draw.line([(0, h * third), (w, h * third)], fill=(255, 255, 255, 140), width=1)
    comp = report["composition"]
    cx, cy = comp["centre_of_mass"]["x"] * w, comp["centre_of_mass"]["y"] * h
    for orientation in comp["orientations"]:
        length = max(w, h) * (0.15 + orientation["share"])
        angle = math.radians(orientation["degrees"])
        dx, dy = math.cos(angle) * length / 2, -math.sin(angle) * length / 2
        draw.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=(0, 230, 255, 220), width=2)
    radius = max(6, min(w, h) // 30)
    for colour, width in (((0, 0, 0, 200), 4), ((255, 60, 60, 255), 2)):
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], outline=colour, width=width)
        draw.line([(cx - 2 * radius, cy), (cx + 2 * radius, cy)], fill=colour, width=width // 2)
        draw.line([(cx, cy - 2 * radius), (cx, cy + 2 * radius)], fill=colour, width=width // 2)
    canvas.paste(overlay, (0, 0), overlay)
    strip = ImageDraw.Draw(canvas)
    x = 0.0
    palette = report["palette"]
    total = sum(entry["share"] for entry in palette) or 1.0
    for i, entry in enumerate(palette):
        right = w if i == len(palette) - 1 else x + w * entry["share"] / total
        strip.rectangle([round(x), h, round(right), h + STRIP_HEIGHT], fill=entry["hex"])
        if right - x >= 48:
            lightness = entry["lab"][0]
            strip.text((round(x) + 4, h + 4), entry["hex"], fill=(0, 0, 0) if lightness > 55 else (255, 255, 255))
        x = right
    return canvas
