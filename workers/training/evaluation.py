"""Measure a trained generator against held-out real images, for its model card.

- SWD (Progressive GAN's sliced Wasserstein distance, x1e3) of generated vs held-out
  real images, with two references measured the same way: the real-vs-real noise floor
  (held-out vs as many training images) and an untrained generator of the same config.
- Conditional accuracy: a classifier trained on the training images labels the
  generated ones; the share it labels as asked.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from workers.metrics.conditional_accuracy import conditional_accuracy, train_style_classifier
from workers.metrics.swd import sliced_wasserstein
from workers.models.gan import GanConfig, Generator, generate

SAMPLES_PER_LABEL_MIN = 64


def build_generator(config: GanConfig, state: dict[str, torch.Tensor] | None) -> Generator:
    generator = Generator(config)
    if state is not None:
        generator.load_state_dict(state)
    return generator.eval()


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


def evaluate_generator(
    g_state: dict[str, torch.Tensor],
    config: GanConfig,
    images: np.ndarray,
    labels: np.ndarray,
    attrs: np.ndarray,
    train_idx: np.ndarray,
    held_idx: np.ndarray,
    seed: int,
) -> tuple[dict[str, Any], Image.Image]:
    n_labels = config.n_classes
    held = images[held_idx]
    per_label = max(SAMPLES_PER_LABEL_MIN, int(np.ceil(len(held_idx) / n_labels)))
    want_labels, want_attrs = conditions_like(labels[train_idx], attrs[train_idx], per_label, n_labels, seed)

    trained = generate(build_generator(config, g_state), want_labels, want_attrs, seed=seed)
    torch.manual_seed(seed)
    untrained = generate(build_generator(config, None), want_labels, want_attrs, seed=seed)
    rng = np.random.default_rng(seed)
    real_reference = images[rng.choice(train_idx, size=min(len(held_idx), len(train_idx)), replace=False)]

    swd = sliced_wasserstein(held, trained, seed=seed)
    floor = sliced_wasserstein(held, real_reference, seed=seed)
    untrained_swd = sliced_wasserstein(held, untrained, seed=seed)

    classifier = train_style_classifier(images[train_idx], labels[train_idx], n_labels, seed=seed)
    metrics = {
        "swd": swd,
        "swd_real_floor": floor,
        "swd_untrained": untrained_swd,
        "conditional_accuracy": round(conditional_accuracy(classifier, trained, want_labels), 4),
        "classifier_real_accuracy": round(float(classifier.real_accuracy), 4),
        "evaluated_on": {"held_out_real": int(len(held_idx)), "generated": int(len(want_labels)), "seed": seed},
    }
    return metrics, grid_by_label(trained, want_labels, n_labels)
