"""Texture and brushwork, from the lightness channel at the work size.

- ``local_contrast``: the mean standard deviation of L* in 7x7 windows, over 25 (a strong local
  contrast), capped at 1.
- ``coherence``: stroke-orientation coherence, ((λ1 - λ2) / (λ1 + λ2))² of the structure tensor
  (σ = 2), weighted by its energy: 1 where strokes run parallel, near 0 where they cross at random.
- ``fine_detail``: the mean |L* - L* blurred with σ = 1|, over 4: fine, pixel-scale relief.
- ``surface``: ``smooth`` (flat paint, glazes, gradients), ``brushy`` or ``impasto-like``
  (broken, high-relief detail), from ``fine_detail`` against ``SURFACE_LEVELS``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.feature import structure_tensor

from workers.analysis.pixels import WorkImage

SURFACE_LEVELS = ((0.15, "smooth"), (0.6, "brushy"), (float("inf"), "impasto-like"))


@dataclass(frozen=True)
class Texture:
    local_contrast: float
    coherence: float
    fine_detail: float
    surface: str

    def to_dict(self) -> dict[str, object]:
        return {"local_contrast": round(self.local_contrast, 3), "coherence": round(self.coherence, 3),
                "fine_detail": round(self.fine_detail, 3), "surface": self.surface}


def texture(work: WorkImage) -> Texture:
    lightness = work.lab[..., 0]
    mean = ndimage.uniform_filter(lightness, 7)
    local_std = np.sqrt(np.maximum(ndimage.uniform_filter(lightness**2, 7) - mean**2, 0.0))
    fine = float(np.abs(lightness - ndimage.gaussian_filter(lightness, 1.0)).mean() / 4.0)
    a_rr, a_rc, a_cc = structure_tensor(lightness / 100.0, sigma=2.0, order="rc")
    trace = a_rr + a_cc
    gap = np.sqrt((a_rr - a_cc) ** 2 + 4 * a_rc**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        coherence_map = np.where(trace > 1e-12, (gap / trace) ** 2, 0.0)
    coherence = float((coherence_map * trace).sum() / trace.sum()) if trace.sum() > 1e-12 else 0.0
    return Texture(local_contrast=float(min(1.0, local_std.mean() / 25.0)), coherence=coherence,
                   fine_detail=float(min(1.0, fine)),
                   surface=next(name for bound, name in SURFACE_LEVELS if fine < bound))
