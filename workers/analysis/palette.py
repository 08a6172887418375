"""The dominant colours of a work, clustered in CIELAB.

k-means (k = 8) runs on the Lab values of a grid sample of the pixels; clusters closer than
``MERGE_DELTA_E`` (CIEDE2000) are then merged, the closest pair first, while more than
``MIN_COLOURS`` remain, so a palette has 5-8 colours when the work has that many distinct ones.
An image with fewer distinct colours than that (flat colour fields) gets exactly those colours:
k-means would only split one colour into near-identical halves. Shares are fractions of the
sampled pixels; the palette is ordered by share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.color import deltaE_ciede2000
from sklearn.cluster import KMeans

from workers.analysis.colour_names import name_colour
from workers.analysis.pixels import hex_of, lab_of, rgb_of

MAX_COLOURS = 8
MIN_COLOURS = 5
MERGE_DELTA_E = 10.0


@dataclass(frozen=True)
class PaletteColour:
    hex: str
    share: float
    lab: tuple[float, float, float]
    name_en: str
    name_zh: str

    def to_dict(self) -> dict[str, object]:
        return {"hex": self.hex, "share": round(self.share, 4), "lab": [round(v, 2) for v in self.lab],
                "name_en": self.name_en, "name_zh": self.name_zh}


def extract_palette(sample_rgb: np.ndarray, seed: int = 0) -> list[PaletteColour]:
    """``sample_rgb``: Nx3 RGB in [0, 1] (``pixels.grid_sample``)."""
    quantised = np.round(sample_rgb * 255).astype(np.int64)
    packed = quantised[:, 0] << 16 | quantised[:, 1] << 8 | quantised[:, 2]
    distinct, counts = np.unique(packed, return_counts=True)
    if len(distinct) <= MAX_COLOURS:
        rgb = np.stack([distinct >> 16, distinct >> 8 & 255, distinct & 255], axis=1) / 255.0
        centres, weights = lab_of(rgb), counts.astype(np.float64)
    else:
        lab = lab_of(sample_rgb)
        kmeans = KMeans(n_clusters=MAX_COLOURS, n_init=2, random_state=seed, max_iter=100).fit(lab)
        weights = np.bincount(kmeans.labels_, minlength=MAX_COLOURS).astype(np.float64)
        centres = kmeans.cluster_centers_
        centres, weights = _merge_close(centres, weights)
    keep = weights > 0
    centres, weights = centres[keep], weights[keep]
    shares = weights / weights.sum()
    order = np.argsort(-shares)
    colours = []
    for i in order:
        lab_value = centres[i]
        name = name_colour(lab_value)
        colours.append(PaletteColour(hex=hex_of(rgb_of(lab_value)[0]), share=float(shares[i]),
                                     lab=(float(lab_value[0]), float(lab_value[1]), float(lab_value[2])),
                                     name_en=name.en, name_zh=name.zh))
    return colours


def _merge_close(cluster_centres: np.ndarray, cluster_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge the closest pair (weighted mean in Lab) while it is under ``MERGE_DELTA_E`` apart and
    more than ``MIN_COLOURS`` clusters remain."""
    centres, weights = list(cluster_centres), list(cluster_weights)
    while len(centres) > MIN_COLOURS:
        best, pair = MERGE_DELTA_E, None
        for i in range(len(centres)):
            for j in range(i + 1, len(centres)):
                d = float(deltaE_ciede2000(centres[i], centres[j]))
                if d < best:
                    best, pair = d, (i, j)
        if pair is None:
            break
        i, j = pair
        total = weights[i] + weights[j]
        centres[i] = (centres[i] * weights[i] + centres[j] * weights[j]) / total
        weights[i] = total
        del centres[j], weights[j]
    return np.array(centres), np.array(weights)
