"""How the service makes a creation model from a dataset, shared by training jobs
(``workers.pipelines.training``) and the shipped model's command (``workers.training.default_models``):
the networks and recipe a job's params ask for, the split, the real images the model is measured
against, and its model card."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from shared.job_params import GanTrainingParams
from workers.data.attributes import ATTRIBUTE_NAMES
from workers.data.datasets import HELD_OUT_FRACTION, TrainingData, dataset_facts, reference_sets, split_held_out
from workers.models.gan import ARCHITECTURE, GanConfig
from workers.training.evaluation import RealSets, quality_goals
from workers.training.gan import TrainConfig

# Attribute vectors kept per label in the model card; creation samples from them.
ATTRIBUTE_SAMPLES_PER_LABEL = 64


def gan_configs(params: GanTrainingParams, n_labels: int) -> tuple[GanConfig, TrainConfig]:
    """The networks and the recipe a GAN training job's params ask for (defaults: the shipped recipe)."""
    gan_config = GanConfig(resolution=params.resolution, n_classes=n_labels)
    train_config = TrainConfig(steps=params.steps, batch_size=params.batch_size, seed=params.seed,
                               checkpoint_every=params.checkpoint_every, sample_every=params.sample_every)
    return gan_config, train_config


Fresh = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def gan_split(params: GanTrainingParams, data: TrainingData) -> tuple[np.ndarray, np.ndarray, Fresh | None]:
    """(train indices, held-out indices, fresh evaluation sets or None). The procedural dataset
    trains on all its images, since fresh ones measure it; a tenant's keeps a held-out split."""
    fresh = reference_sets(params, data.label_names)
    if fresh is not None:
        return np.arange(len(data.labels)), np.zeros(0, dtype=np.int64), fresh
    train_idx, held_idx = split_held_out(data.images, data.labels, HELD_OUT_FRACTION)
    return train_idx, held_idx, None


def evaluation_sets(params: GanTrainingParams, data: TrainingData, attrs: np.ndarray, train_idx: np.ndarray,
                    held_idx: np.ndarray, fresh: Fresh | None) -> RealSets:
    """The real images a trained generator is measured against: the held-out split, and for the
    real-vs-real floor a second set of the same size. The procedural dataset makes both afresh
    (``fresh``: ``params.eval_per_label`` images of every style, from seeds no training uses), so
    its figures rest on as many images as asked; a tenant's dataset compares its held-out split
    with a sample of the training images."""
    if fresh is not None:
        (held, held_labels), (reference, reference_labels) = fresh
    else:
        rng = np.random.default_rng(params.seed)
        sample = rng.choice(train_idx, size=min(len(held_idx), len(train_idx)), replace=False)
        held, held_labels = data.images[held_idx], data.labels[held_idx]
        reference, reference_labels = data.images[sample], data.labels[sample]
    return RealSets(data.images[train_idx], data.labels[train_idx], attrs[train_idx], held, held_labels,
                    reference, reference_labels)


def creation_card(params: GanTrainingParams, gan_config: GanConfig, train_config: TrainConfig,
                  data: TrainingData, attrs: np.ndarray, train_idx: np.ndarray, real: RealSets,
                  metrics: dict[str, Any], training: dict[str, Any]) -> dict[str, Any]:
    """A creation model's card: what it is, what it learned from, how it was trained, how good it is."""
    return {
        "task": "creation",
        "architecture": ARCHITECTURE,
        "gan_config": gan_config.to_dict(),
        "resolution": gan_config.resolution,
        "labels": data.label_names,
        "label_descriptions": data.label_descriptions,
        "attributes": list(ATTRIBUTE_NAMES),
        "attribute_samples": attribute_samples(attrs[train_idx], data.labels[train_idx], data.label_names,
                                               params.seed),
        "dataset": dataset_facts(params, data, len(real.held)),
        "training": {**training, "train_config": train_config.to_dict()},
        "metrics": metrics,
        "quality_goals": quality_goals(metrics),
        "created_at": time.time(),
    }


def attribute_samples(attrs: np.ndarray, labels: np.ndarray, names: list[str], seed: int) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    samples = {}
    for index, name in enumerate(names):
        members = attrs[labels == index]
        chosen = members[rng.permutation(len(members))[:ATTRIBUTE_SAMPLES_PER_LABEL]]
        samples[name] = np.round(chosen, 4).tolist()
    return samples
