"""How a work is built: where its visual weight sits, its symmetry, edges, empty space and lines.

Visual weight: a pixel weighs its CIELAB distance (ΔE76) from the work's background colour, the
per-channel median, so a figure on a plain ground weighs and the ground does not. Positions are
fractions of the width and height, (0, 0) top left.

- ``centre_of_mass``: the weight-averaged position.
- ``balance``: 1 where the centre of mass is the middle, 0 where it is in a corner.
- ``thirds``: the weight-averaged closeness to the nearest rule-of-thirds point,
  exp(-d² / 2σ²) with σ = 0.1 of the diagonal-normalised distance: about 0.9 for a small motif on
  a thirds point, under 0.1 for one in the middle.
- ``symmetry_lr`` / ``symmetry_tb``: 1 - mean ΔE76 between the work and its mirror image over twice
  the mean ΔE76 from the mean colour: 1 for a mirror-symmetric work, about 0.3 for noise.
- ``edge_density``: the share of pixels on Canny edges (σ = 1.5) at the work size.
- ``negative_space``: the share of pixels within ``GROUND_DELTA_E`` of the background colour
  and with no edge within 4 px: quiet, empty ground.
- ``orientations``: the line directions that carry the most gradient energy, in 15° bins
  (0° horizontal lines, 90° vertical), with their share of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.feature import canny

from workers.analysis.pixels import WorkImage

THIRDS_SIGMA = 0.1
GROUND_DELTA_E = 12.0
ORIENTATION_BIN = 15
# Orientations below this share of the gradient energy are not reported.
ORIENTATION_MIN_SHARE = 0.12


@dataclass(frozen=True)
class Orientation:
    degrees: float
    share: float
    name: str

    def to_dict(self) -> dict[str, object]:
        return {"degrees": self.degrees, "share": round(self.share, 3), "name": self.name}


@dataclass(frozen=True)
class Composition:
    centre_of_mass: tuple[float, float]
    balance: float
    thirds: float
    symmetry_lr: float
    symmetry_tb: float
    edge_density: float
    negative_space: float
    orientations: tuple[Orientation, ...]

    def to_dict(self) -> dict[str, object]:
        return {"centre_of_mass": {"x": round(self.centre_of_mass[0], 4), "y": round(self.centre_of_mass[1], 4)},
                "balance": round(self.balance, 3), "rule_of_thirds": round(self.thirds, 3),
                "symmetry": {"left_right": round(self.symmetry_lr, 3), "top_bottom": round(self.symmetry_tb, 3)},
                "edge_density": round(self.edge_density, 4), "negative_space": round(self.negative_space, 3),
                "orientations": [o.to_dict() for o in self.orientations]}


def visual_weight(work: WorkImage) -> np.ndarray:
    lab = work.lab
    ground = np.median(lab.reshape(-1, 3), axis=0)
    return np.asarray(np.linalg.norm(lab - ground, axis=2))


def composition(work: WorkImage) -> Composition:
    weight = visual_weight(work)
    h, w = weight.shape
    ys, xs = np.mgrid[0:h, 0:w]
    fx, fy = (xs + 0.5) / w, (ys + 0.5) / h
    total = float(weight.sum())
    if total <= 1e-9:  # one flat colour: nothing weighs, everything is ground
        cx, cy, thirds = 0.5, 0.5, 0.0
    else:
        cx, cy = float((weight * fx).sum() / total), float((weight * fy).sum() / total)
        nearest = np.min([np.hypot(fx - px, fy - py) for px in (1 / 3, 2 / 3) for py in (1 / 3, 2 / 3)], axis=0)
        thirds = float((weight * np.exp(-nearest**2 / (2 * THIRDS_SIGMA**2))).sum() / total)
    balance = 1.0 - float(np.hypot(cx - 0.5, cy - 0.5) / np.hypot(0.5, 0.5))
    edges = canny(work.grey, sigma=1.5)
    near_edge = ndimage.binary_dilation(edges, iterations=4)
    quiet_ground = (weight < GROUND_DELTA_E) & ~near_edge
    return Composition(
        centre_of_mass=(cx, cy), balance=balance, thirds=thirds,
        symmetry_lr=mirror_symmetry(work.lab, axis=1), symmetry_tb=mirror_symmetry(work.lab, axis=0),
        edge_density=float(edges.mean()), negative_space=float(quiet_ground.mean()),
        orientations=dominant_orientations(work.grey))


def mirror_symmetry(lab: np.ndarray, axis: int) -> float:
    # A light blur first: a mirrored JPEG copy should not lose symmetry to its block noise.
    smooth = ndimage.gaussian_filter(lab, sigma=(1.0, 1.0, 0.0))
    difference = float(np.linalg.norm(smooth - np.flip(smooth, axis=axis), axis=2).mean())
    spread = float(np.linalg.norm(smooth - smooth.reshape(-1, 3).mean(axis=0), axis=2).mean())
    if spread <= 1e-6:
        return 1.0
    return float(np.clip(1.0 - difference / (2.0 * spread), 0.0, 1.0))


def dominant_orientations(grey: np.ndarray) -> tuple[Orientation, ...]:
    smooth = ndimage.gaussian_filter(grey, 1.0)
    gy, gx = ndimage.sobel(smooth, axis=0), ndimage.sobel(smooth, axis=1)
    magnitude = np.hypot(gx, gy)
    if magnitude.sum() <= 1e-9:
        return ()
    # A line runs across its gradient: its direction is the gradient's plus 90°. Image y points
    # down, so -gy makes angles counter-clockwise as a viewer reads them.
    line = (np.degrees(np.arctan2(-gy, gx)) + 90.0) % 180.0
    bins = 180 // ORIENTATION_BIN
    index = np.floor((line + ORIENTATION_BIN / 2) / ORIENTATION_BIN).astype(int) % bins
    energy = np.bincount(index.ravel(), weights=magnitude.ravel(), minlength=bins)
    energy = energy / energy.sum()
    found = [Orientation(float(i * ORIENTATION_BIN), float(energy[i]), orientation_name(i * ORIENTATION_BIN))
             for i in np.argsort(-energy)[:3] if energy[i] >= ORIENTATION_MIN_SHARE]
    return tuple(found)


def orientation_name(degrees: float) -> str:
    if degrees < 15 or degrees > 165:
        return "horizontal"
    if 75 <= degrees <= 105:
        return "vertical"
    return "rising diagonal" if degrees < 90 else "falling diagonal"
