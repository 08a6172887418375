"""The promotion gate: a new version replaces the promoted one only when it scores better on
the same held-out images, with the same metric, by a margin, on every seed, and, where the model
kind names a guard metric, is not clearly worse on that one.

Each model kind brings a scorer (its metric on held-out images for one seed: SWD for GANs,
lower is better; pooled hole PSNR for restoration, higher is better). Both versions are
scored with the same seeds, so each seed gives a paired comparison; a metric that is noisy
(SWD on a few dozen images) cannot promote a challenger by luck on one seed.

A guard is a second opinion that can only veto: a GAN gated on the Fréchet distance in ImageNet
features is also scored in Magenta's style space, which sees neon colours and repeated layouts
that the ImageNet features barely register. A challenger whose guard score is worse than the
incumbent's by more than ``GUARD_TOLERANCE`` on the mean is not promoted, however much it wins on
the primary metric.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

DEFAULT_MARGIN = 0.02
GATE_SEEDS = (0, 1, 2)
GUARD_TOLERANCE = 0.15  # the style FD of one model varies about 8% (sd) from seed to seed at 324 images


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
    guard: dict[str, Any] | None = None  # the guard metric's scores and verdict, where there is one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(metric: Metric, challenger: list[float], incumbent: list[float], margin: float,
           incumbent_version: int, noise_floor: float | None = None) -> GateDecision:
    """Promote when the challenger beats the incumbent on every seed and by ``margin`` (a
    fraction of the incumbent's score) on the mean."""
    if len(challenger) != len(incumbent) or not challenger:
        raise ValueError("both versions need a score for each of the same seeds")
    sign = 1.0 if metric.higher_is_better else -1.0
    c_mean, i_mean, relative = _means_and_improvement(metric, challenger, incumbent)
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


def _means_and_improvement(metric: Metric, challenger: list[float],
                           incumbent: list[float]) -> tuple[float, float, float]:
    """Both means, and the challenger's improvement on the incumbent's mean as a fraction of it
    (positive: better, whichever way the metric points)."""
    sign = 1.0 if metric.higher_is_better else -1.0
    c_mean, i_mean = float(np.mean(challenger)), float(np.mean(incumbent))
    return c_mean, i_mean, sign * (c_mean - i_mean) / max(abs(i_mean), 1e-9)


def guard_verdict(metric: Metric, challenger: list[float], incumbent: list[float],
                  tolerance: float = GUARD_TOLERANCE) -> dict[str, Any]:
    """Whether the challenger holds up on a guard metric: its mean is no worse than the
    incumbent's by more than ``tolerance`` (a fraction of the incumbent's mean)."""
    c_mean, i_mean, relative = _means_and_improvement(metric, challenger, incumbent)
    return {"metric": metric.name, "higher_is_better": metric.higher_is_better, "challenger": round(c_mean, 4),
            "incumbent": round(i_mean, 4), "relative_improvement": round(relative, 4), "tolerance": tolerance,
            "holds": relative >= -tolerance}


def with_guard(decision: GateDecision, verdict: dict[str, Any]) -> GateDecision:
    """A promotion once the guard has been read: a failed guard turns it into a refusal."""
    if verdict["holds"]:
        return replace(decision, guard=verdict)
    reason = (f"worse on the guard {verdict['metric']}: {verdict['challenger']:.3f} vs {verdict['incumbent']:.3f} "
              f"({verdict['relative_improvement']:+.1%}, tolerance {verdict['tolerance']:.0%}), "
              f"although {decision.reason}")
    return replace(decision, promote=False, reason=reason, guard=verdict)


Score = Callable[[Any, int], float]


def gate(metric: Metric, score: Score, challenger: Any, incumbent: Any,
         incumbent_version: int, margin: float, seeds: tuple[int, ...] = GATE_SEEDS,
         noise_floor: float | None = None, guard: tuple[Metric, Score] | None = None) -> GateDecision:
    """Score both models with ``score(model, seed)`` for each seed, then :func:`decide`; with a
    ``guard`` (its metric and scorer), score both on it too when the primary metric promotes."""
    decision = decide(metric, [score(challenger, s) for s in seeds], [score(incumbent, s) for s in seeds],
                      margin, incumbent_version, noise_floor)
    if guard is None or not decision.promote:
        return decision
    guard_metric, guard_score = guard
    verdict = guard_verdict(guard_metric, [guard_score(challenger, s) for s in seeds],
                            [guard_score(incumbent, s) for s in seeds])
    return with_guard(decision, verdict)
