"""Style similarity to the labels of the creation models a tenant can use.

A model's labels are the styles of the dataset it learned from, so a label is represented by
images of it: up to ``LABEL_SAMPLES`` per label from the dataset the model card names, each
embedded with Magenta's style network (``workers.analysis.style``). The built-in ``procedural``
dataset renders them (seeded, so every process makes the same ones); a tenant's dataset is read
from its manifest. They are kept per process, keyed by dataset and manifest hash.

A work's score for a label is the mean cosine of its three nearest samples of that label, all
vectors first centred on the samples' mean: one label often holds several looks (colour fields
stacked or side by side), which one mean vector would blur. On procedural paintings of seeds no
sample used, the right label comes first in >= 90% (``tests/unit/test_analysis_model_labels.py``).
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from shared.models import PUBLIC, UnknownModel
from workers.analysis.style import StyleScore, style_embedding
from workers.data.procedural import STYLES, render

log = logging.getLogger(__name__)

LABEL_SAMPLES = 16
NEAREST = 3
PROCEDURAL = "procedural"
PROCEDURAL_SIDE = 128
TOP_LABELS = 3
PUBLIC_PREFIX = f"{PUBLIC}/"


@dataclass(frozen=True, eq=False)
class LabelSamples:
    labels: tuple[str, ...]
    vectors: dict[str, np.ndarray]  # label -> n x 100, L2-normalised

    def rank(self, embedding: np.ndarray) -> list[StyleScore]:
        present = [label for label in self.labels if len(self.vectors.get(label, ())) > 0]
        if not present:
            return []
        centre = np.concatenate([self.vectors[label] for label in present]).mean(axis=0)
        query = _unit(embedding - centre)
        scores = []
        for label in present:
            samples = self.vectors[label] - centre
            cosines = (samples / np.linalg.norm(samples, axis=1, keepdims=True)) @ query
            scores.append(StyleScore(label, float(np.sort(cosines)[-NEAREST:].mean())))
        return sorted(scores, key=lambda s: -s.score)


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


@functools.cache
def procedural_samples(per_label: int = LABEL_SAMPLES, side: int = PROCEDURAL_SIDE) -> LabelSamples:
    vectors = {style.name: np.stack([style_embedding(Image.fromarray(render(index, seed, side)))
                                     for seed in range(per_label)])
               for index, style in enumerate(STYLES)}
    return LabelSamples(tuple(vectors), vectors)


_DATASET_SAMPLES: dict[tuple[str, str], LabelSamples] = {}


def dataset_samples(datasets: Any, dataset_id: str) -> LabelSamples:
    """Up to ``LABEL_SAMPLES`` images per label of a tenant's dataset (its current manifest)."""
    key = (dataset_id, datasets.manifest_sha256(dataset_id))
    if key not in _DATASET_SAMPLES:
        by_label: dict[str, list[np.ndarray]] = {}
        for entry in datasets.manifest(dataset_id)["files"]:
            label = entry.get("label")
            if label is None or len(by_label.get(label, [])) >= LABEL_SAMPLES:
                continue
            image = Image.open(io.BytesIO(datasets.image(dataset_id, entry["key"]))).convert("RGB")
            by_label.setdefault(label, []).append(style_embedding(image))
        _DATASET_SAMPLES[key] = LabelSamples(tuple(sorted(by_label)),
                                             {label: np.stack(v) for label, v in by_label.items()})
    return _DATASET_SAMPLES[key]


def model_label_scores(models: Any, datasets: Any, embedding: np.ndarray,
                       procedural: Callable[[], LabelSamples] = procedural_samples) -> list[dict[str, Any]]:
    """For each creation model with labels the tenant can use (``workers.registry.TenantModels``:
    its own, at their promoted versions, and the public shipped ones): every label's score and the
    top ``TOP_LABELS``. A model whose dataset cannot be read is left out."""
    refs = [*models.index.names(), *(f"{PUBLIC_PREFIX}{name}" for name in models.catalog.public_names())]
    out = []
    for ref in refs:
        try:
            model = models.resolve(ref)
        except UnknownModel:  # no promoted version yet
            continue
        card = model.card
        if card.get("task", "creation") != "creation" or not card.get("labels"):
            continue
        dataset_id = (card.get("dataset") or {}).get("id")
        try:
            samples = procedural() if dataset_id == PROCEDURAL else dataset_samples(datasets, str(dataset_id))
        except Exception:  # a dataset deleted since, or unreadable: the other models still count
            log.warning("no label samples for model %s (dataset %s)", model.pinned, dataset_id, exc_info=True)
            continue
        ranked = LabelSamples(tuple(card["labels"]), samples.vectors).rank(embedding)
        if ranked:
            out.append({"model": model.pinned, "top": [s.to_dict() for s in ranked[:TOP_LABELS]],
                        "labels": {s.name: round(s.score, 3) for s in ranked}})
    return out
