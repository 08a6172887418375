"""Measure trained restoration networks against classical methods on held-out images, for
their model card.

Damage is simulated on the held-out images from a fixed seed, so every method repairs the
same damage and is scored against the clean original:

- Inpainting, all with the true mask, on holes of 32-64 px (the size the quality goal is
  stated for): the damaged input itself, the classical methods (OpenCV's Telea and
  Navier-Stokes, scikit-image's biharmonic, and the pull-push fill the inpainter starts from:
  its parameter-free first stage, so the card shows what training added), and the learned
  inpainter as jobs serve it (its fill averaged with Navier-Stokes', ``LEARNED_FILL_SHARE``)
  and, as ``network_only``, the network's fill alone. Per method: whole-image PSNR/SSIM and
  hole PSNR/SSIM averaged over images, and ``pooled_hole_psnr``: the PSNR of all hole pixels
  of all images together. The per-image mean is dominated by holes in flat colour, where an
  exact fill scores the 100 dB cap and a near-exact one 45 dB; the pooled figure weighs every
  hole pixel the same and is the one to compare methods by. ``perceptual_distance``: the mean
  distance of the repaired images from the clean ones in a pretrained feature space
  (workers.metrics.perceptual; lower is better), which sees the blur and smears PSNR forgives.
  ``best_classical`` names the classical method with the highest pooled figure and
  ``learned_minus_best_classical`` is the learned model's margin over it.
  The same comparison runs on the dataset's held-out images and, when given, on photos
  (workers.data.photos) that no built-in dataset holds.
- Detection: precision, recall, F1 and IoU of the learned detector and the classical
  ``detect_damage`` against the true mask, pooled over all images, with a tolerance in px.
- De-fading, on the same images faded (and nothing else) by the simulator: whole-image PSNR
  and SSIM of the faded input, the classical ``defade`` and the learned fade corrector, and
  the share of images each brings to GOOD_DEFADE_PSNR or more; and what each does to the
  pictures as they are, unfaded (``unfaded_psnr``: how little it changes what needs no
  repair). ``learned_minus_classical_psnr`` is the learned corrector's margin; a restoration
  job uses it only when that margin is positive (``learned_operations``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from workers.data.damage import simulate_damage
from workers.metrics.perceptual import perceptual_distances
from workers.metrics.restoration import mask_precision_recall, psnr, restoration_quality, ssim
from workers.models.builders import load_detector, load_fade_corrector, load_inpainter
from workers.models.gan import to_uint8
from workers.models.restoration import RestorationConfig, pull_push_fill
from workers.restoration import classical
from workers.restoration.learned import defade_learned, detect_learned, inpaint_learned
from workers.training.restoration import DAMAGE_PRESETS

DETECTION_TOLERANCE = 2  # px: a detector one pixel off a 1-3 px scratch is not wrong
CLASSICAL_INPAINTING = ("telea", "navier_stokes", "biharmonic", "pull_push")
PHOTO_STREAM = 2  # the photos' damage is drawn from default_rng([seed, PHOTO_STREAM])
# The fading is drawn from default_rng([seed, 0, FADE_STREAM]), on photos [seed, PHOTO_STREAM, FADE_STREAM].
FADE_STREAM = 3
GOOD_DEFADE_PSNR = 25.0  # dB: the de-fading goal (issue 4)


def _pull_push(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    filled = to_uint8(pull_push_fill(x, torch.from_numpy(mask)[None, None].float()))[0]
    return np.where(mask[:, :, None], filled, image)


def _inpainting_scores(cleans: list[np.ndarray], repaired: list[np.ndarray], masks: list[np.ndarray]) -> dict:
    rows = [restoration_quality(c, r, m) for c, r, m in zip(cleans, repaired, masks, strict=True)]
    scores: dict[str, Any] = {}
    for key in rows[0]:
        values = [float(value) for row in rows if (value := row[key]) is not None]
        scores[key] = round(float(np.mean(values)), 3) if values else None
    scores["pooled_hole_psnr"] = pooled_hole_psnr(cleans, repaired, masks)
    scores["perceptual_distance"] = round(float(perceptual_distances(cleans, repaired).mean()), 4)
    return scores


def pooled_hole_psnr(cleans: Sequence[np.ndarray], repaired: Sequence[np.ndarray],
                     masks: Sequence[np.ndarray]) -> float | None:
    """PSNR of every hole pixel of every image at once (None when there are no holes)."""
    if not any(m.any() for m in masks):
        return None
    # every image's hole pixels as one [N, 1, 3] image
    holes = [(c[m][:, None], r[m][:, None]) for c, r, m in zip(cleans, repaired, masks, strict=True)]
    return round(psnr(np.concatenate([h[0] for h in holes]), np.concatenate([h[1] for h in holes])), 3)


def learned_pooled_hole_psnr(inpainter: torch.nn.Module, images: Sequence[np.ndarray], seed: int,
                             damage: str = "holes_only", device: str = "cpu") -> float:
    """The inpainter's pooled hole PSNR on ``images`` with damage simulated from ``seed``: the
    promotion gate's score for restoration models."""
    rng = np.random.default_rng([seed, 1])
    damaged = [simulate_damage(c, rng, DAMAGE_PRESETS[damage]()) for c in images]
    repaired = [inpaint_learned(inpainter, d.image, d.mask, device) for d in damaged]  # type: ignore[arg-type]
    score = pooled_hole_psnr(list(images), repaired, [d.mask for d in damaged])
    if score is None:
        raise ValueError("the simulated damage left no holes to score")
    return score


def _stacked(masks: list[np.ndarray], gap: int) -> np.ndarray:
    """Masks stacked top to bottom, ``gap`` rows of False between them so that a tolerance
    never reaches from one image into the next; narrower ones padded with False on the right."""
    width = max(m.shape[1] for m in masks)
    rows = []
    for m in masks:
        rows += [np.pad(m, ((0, gap), (0, width - m.shape[1])))]
    return np.concatenate(rows)


def compare_inpainting(inpainter: torch.nn.Module, cleans: Sequence[np.ndarray], damage: str,
                       rng: np.random.Generator, device: str = "cpu") -> dict[str, Any]:
    """Every method's scores on ``cleans`` with ``damage`` drawn from ``rng``, the best classical
    method and the learned inpainter's margin over it (pooled hole PSNR, dB)."""
    damaged = [simulate_damage(c, rng, DAMAGE_PRESETS[damage]()) for c in cleans]
    masks = [d.mask for d in damaged]
    methods: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
        "damaged": lambda image, mask: image,
        "telea": lambda image, mask: classical.inpaint(image, mask, "telea"),
        "navier_stokes": lambda image, mask: classical.inpaint(image, mask, "navier_stokes"),
        "biharmonic": lambda image, mask: classical.inpaint(image, mask, "biharmonic"),
        "pull_push": _pull_push,
        "network_only": lambda image, mask: inpaint_learned(inpainter, image, mask, device, share=1.0),  # type: ignore[arg-type]
        "learned": lambda image, mask: inpaint_learned(inpainter, image, mask, device),  # type: ignore[arg-type]
    }
    scores: dict[str, Any] = {
        name: _inpainting_scores(list(cleans), [method(d.image, d.mask) for d in damaged], masks)
        for name, method in methods.items()
    }
    report = {"damage": damage, "images": len(cleans), "hole_pixels": int(sum(m.sum() for m in masks)), **scores}
    learned = scores["learned"]["pooled_hole_psnr"]
    if learned is not None:
        best = max(CLASSICAL_INPAINTING, key=lambda name: scores[name]["pooled_hole_psnr"])
        report["best_classical"] = best
        report["learned_minus_best_classical_pooled_hole_psnr"] = round(learned - scores[best]["pooled_hole_psnr"], 3)
    return report


def compare_defading(fade_corrector: torch.nn.Module, cleans: Sequence[np.ndarray], rng: np.random.Generator,
                     device: str = "cpu") -> dict[str, Any]:
    """The faded input, classical ``defade`` and the learned corrector on ``cleans`` faded from
    ``rng``: mean whole-image PSNR and SSIM, the share at GOOD_DEFADE_PSNR or more, and the mean
    PSNR of each method applied to the unfaded pictures."""
    faded = [simulate_damage(c, rng, DAMAGE_PRESETS["fade_only"]()).image for c in cleans]
    methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "faded": lambda image: image,
        "classical": classical.defade,
        "learned": lambda image: defade_learned(fade_corrector, image, device),  # type: ignore[arg-type]
    }
    report: dict[str, Any] = {"images": len(cleans)}
    for name, method in methods.items():
        repaired = [method(f) for f in faded]
        scores = np.array([psnr(c, r) for c, r in zip(cleans, repaired, strict=True)])
        report[name] = {"psnr": round(float(scores.mean()), 3),
                        "ssim": round(float(np.mean([ssim(c, r) for c, r in zip(cleans, repaired, strict=True)])), 4),
                        "share_at_goal": round(float(np.mean(scores >= GOOD_DEFADE_PSNR)), 4)}
        if name != "faded":
            report[name]["unfaded_psnr"] = round(float(np.mean([psnr(c, method(c)) for c in cleans])), 3)
    report["goal_psnr"] = GOOD_DEFADE_PSNR
    report["learned_minus_classical_psnr"] = round(report["learned"]["psnr"] - report["classical"]["psnr"], 3)
    return report


def evaluate_restoration(
    inpainter_state: dict[str, torch.Tensor],
    detector_state: dict[str, torch.Tensor],
    fade_state: dict[str, torch.Tensor],
    config: RestorationConfig,
    held_out_images: Sequence[np.ndarray],
    seed: int,
    *,
    photos: Sequence[np.ndarray] = (),
    inpainting_damage: str = "large_holes",
    detection_damage: str = "all",
    device: str = "cpu",
) -> dict[str, Any]:
    """JSON-serialisable metrics of the three networks on ``held_out_images`` (clean uint8
    [H,W,3], any sizes of at least 8 px), and of the inpainter and fade corrector on ``photos``
    when given (under ``inpainting_photos`` and ``defading_photos``); the same arguments give
    the same numbers on CPU."""
    if len(held_out_images) == 0:
        raise ValueError("no held-out images to evaluate on")
    inpainter = load_inpainter(inpainter_state, config, device)
    detector = load_detector(detector_state, config, device)
    fade_corrector = load_fade_corrector(fade_state, config, device)
    rng = np.random.default_rng([seed, 0])
    cleans = list(held_out_images)
    inpainting = compare_inpainting(inpainter, cleans, inpainting_damage, rng, device)

    damaged = [simulate_damage(c, rng, DAMAGE_PRESETS[detection_damage]()) for c in cleans]
    truth = _stacked([d.mask for d in damaged], gap=DETECTION_TOLERANCE + 1)
    detection: dict[str, Any] = {}
    for name, detect in (("learned", lambda image: detect_learned(detector, image, device)),
                         ("classical", classical.detect_damage)):
        found = _stacked([detect(d.image) for d in damaged], gap=DETECTION_TOLERANCE + 1)
        detection[name] = {k: round(v, 4) for k, v in mask_precision_recall(found, truth, DETECTION_TOLERANCE).items()}

    metrics: dict[str, Any] = {
        "inpainting": inpainting,
        "detection": {"damage": detection_damage, "tolerance_px": DETECTION_TOLERANCE, **detection},
        "defading": compare_defading(fade_corrector, cleans, np.random.default_rng([seed, 0, FADE_STREAM]), device),
        "evaluated_on": {"held_out_images": len(cleans), "photos": len(photos), "seed": seed},
    }
    if len(photos):
        photo_rng = np.random.default_rng([seed, PHOTO_STREAM])
        metrics["inpainting_photos"] = compare_inpainting(inpainter, list(photos), inpainting_damage, photo_rng, device)
        metrics["defading_photos"] = compare_defading(
            fade_corrector, list(photos), np.random.default_rng([seed, PHOTO_STREAM, FADE_STREAM]), device)
    return metrics


def learned_operations(metrics: dict[str, Any]) -> list[str]:
    """The operations a restoration job runs with this model's networks: each one whose network
    beat the classical method on every held-out set the card measured it on (the dataset's
    held-out images, and photos where given). Inpainting by pooled hole PSNR against the best
    classical method, detection by F1 against the classical detector, de-fading by PSNR against
    the classical ``defade``. The others stay classical."""

    def measured(name: str) -> list[dict[str, Any]]:
        return [metrics[key] for key in (name, f"{name}_photos") if key in metrics]

    operations = []
    if all(scores.get("learned_minus_best_classical_pooled_hole_psnr", 0) > 0 for scores in measured("inpainting")):
        operations.append("inpaint")
    if metrics["detection"]["learned"]["f1"] > metrics["detection"]["classical"]["f1"]:
        operations.append("detect")
    if all(scores["learned_minus_classical_psnr"] > 0 for scores in measured("defading")):
        operations.append("defade")
    return operations
