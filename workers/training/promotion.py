"""The promotion gate: a new version replaces the promoted one only when it scores better on
the same held-out images, with the same metric, by a margin, on every seed.

Each model kind brings a scorer (its metric on held-out images for one seed: SWD for GANs,
lower is better; pooled hole PSNR for restoration, higher is better). Both versions are
scored with the same seeds, so each seed gives a paired comparison; a metric that is noisy
(SWD on a few dozen images) cannot promote a challenger by luck on one seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DEFAULT_MARGIN = 0.02
GATE_SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    metric: str
    higher_is_better: bool
    challenger: float  # mean over seeds
    incumbent: float
    relative_improvement: float
    margin: float
    per_seed: list[dict[str, float]]
    incumbent_version: int
    noise_floor: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(metric: Metric, challenger: list[float], incumbent: list[float], margin: float,
           incumbent_version: int, noise_floor: float | None = None) -> GateDecision:
    """Promote when the challenger beats the incumbent on every seed and by ``margin`` (a
    fraction of the incumbent's score) on the mean."""
    if len(challenger) != len(incumbent) or not challenger:
        raise ValueError("both versions need a score for each of the same seeds")
    sign = 1.0 if metric.higher_is_better else -1.0
    c_mean, i_mean = float(np.mean(challenger)), float(np.mean(incumbent))
    relative = sign * (c_mean - i_mean) / max(abs(i_mean), 1e-9)
    wins = [sign * (c - i) > 0 for c, i in zip(challenger, incumbent, strict=True)]
    per_seed = [{"challenger": round(c, 4), "incumbent": round(i, 4)}
                for c, i in zip(challenger, incumbent, strict=True)]
    better = "higher" if metric.higher_is_better else "lower"
    summary = (f"{metric.name} {c_mean:.3f} vs {i_mean:.3f} for v{incumbent_version} "
               f"({relative:+.1%}, {better} is better, margin {margin:.1%})")
    if not all(wins):
        promote, reason = False, f"not better on every seed ({sum(wins)}/{len(wins)}): {summary}"
    elif relative < margin:
        promote, reason = False, f"better by less than the margin: {summary}"
    else:
        promote, reason = True, f"better on every seed: {summary}"
    return GateDecision(promote, reason, metric.name, metric.higher_is_better, round(c_mean, 4), round(i_mean, 4),
                        round(relative, 4), margin, per_seed, incumbent_version, noise_floor)


def gate(metric: Metric, score: Callable[[Any, int], float], challenger: Any, incumbent: Any,
         incumbent_version: int, margin: float, seeds: tuple[int, ...] = GATE_SEEDS,
         noise_floor: float | None = None) -> GateDecision:
    """Score both models with ``score(model, seed)`` for each seed, then :func:`decide`."""
    return decide(metric, [score(challenger, s) for s in seeds], [score(incumbent, s) for s in seeds],
                  margin, incumbent_version, noise_floor)
