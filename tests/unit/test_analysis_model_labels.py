"""Similarity to the labels of a tenant's models: procedural paintings rank their own style first."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
from PIL import Image

from shared.job_params import AnalysisParams
from shared.models import PUBLIC, ModelRef, ResolvedModel, UnknownModel
from workers.analysis.model_labels import model_label_scores, procedural_samples
from workers.analysis.style import style_embedding
from workers.data.procedural import STYLES, render
from workers.job_context import JobContext
from workers.pipelines import get_pipeline

# Seeds no label sample uses (they use 0..15).
HELD_OUT_SEEDS = range(1000, 1010)


def test_procedural_paintings_rank_their_own_style_first() -> None:
    """>= 90% over 9 styles x 10 held-out seeds."""
    samples = procedural_samples()
    first, misses = 0, []
    for index, style in enumerate(STYLES):
        for seed in HELD_OUT_SEEDS:
            ranked = samples.rank(style_embedding(Image.fromarray(render(index, seed, 256))))
            first += ranked[0].name == style.name
            if ranked[0].name != style.name:
                misses.append((style.name, seed, ranked[0].name))
    assert first / (len(STYLES) * len(HELD_OUT_SEEDS)) >= 0.9, misses


class Models:
    """A tenant's models as ``workers.registry.TenantModels`` answers for them: its own, each at a
    promoted version 2, and the public ones (version 1)."""

    def __init__(self, own: dict[str, dict[str, Any]], public: dict[str, dict[str, Any]] | None = None):
        self.own, self.public = own, public or {}
        self.index = SimpleNamespace(names=lambda: sorted(self.own))
        self.catalog = SimpleNamespace(public_names=lambda: sorted(self.public))

    def resolve(self, ref: str) -> ResolvedModel:
        parsed = ModelRef.parse(ref)
        if not parsed.public and parsed.name in self.own:
            return ResolvedModel("tenant", parsed.name, 2, self.own[parsed.name])
        if parsed.name in self.public:
            return ResolvedModel(PUBLIC, parsed.name, 1, self.public[parsed.name])
        raise UnknownModel(ref)


class MissingDatasets:
    def manifest_sha256(self, dataset_id: str) -> str:
        raise LookupError(f"dataset {dataset_id} no longer exists")


def test_only_labelled_creation_models_are_scored_and_a_lost_dataset_is_skipped() -> None:
    abstract = {"task": "creation", "labels": ["drips", "stripes", "circles"], "dataset": {"id": "procedural"}}
    models = Models({
        "abstract": abstract,
        "fixer": {"task": "restoration", "dataset": {"id": "procedural"}},
        "gone": {"task": "creation", "labels": ["a", "b"], "dataset": {"id": "f" * 32}},
    }, public={"abstract": {**abstract, "labels": ["grid", "drips"]}, "upscaler": {"task": "upscale"}})
    drips = style_embedding(Image.fromarray(render(3, 1001, 256)))
    scores = model_label_scores(models, MissingDatasets(), drips)
    assert [entry["model"] for entry in scores] == ["abstract@2", "public/abstract@1"]
    assert set(scores[1]["labels"]) == {"grid", "drips"}
    assert set(scores[0]["labels"]) == {"drips", "stripes", "circles"}
    assert scores[0]["top"][0]["name"] == "drips"


def test_the_report_names_the_nearest_label_of_the_tenants_model() -> None:
    models = Models({"abstract": {"task": "creation", "labels": [s.name for s in STYLES],
                                  "dataset": {"id": "procedural"}}})
    painting = Image.fromarray(render(4, 1003, 256))  # stripes
    result = get_pipeline("analysis")({"image": painting}, AnalysisParams(similar=0), lambda *_: None,
                                      lambda: None, JobContext.local(models=models))
    import json

    report = json.loads(result.outputs[0].data)  # type: ignore[union-attr]
    assert report["style"]["models"][0]["model"] == "abstract@2"
    assert report["style"]["models"][0]["top"][0]["name"] == "stripes"
    assert "abstract@2" in report["description"]["en"] and "stripes" in report["description"]["zh"]
    assert np.isfinite(report["style"]["models"][0]["top"][0]["score"])
