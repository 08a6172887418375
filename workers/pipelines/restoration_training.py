"""Training a restoration model: clean images -> simulated damage -> inpainter and damage
detector (checkpointed, resumable) -> measured against the classical inpainting methods and
detector on held-out images and on held-out photos -> a new version in the registry.

Self-supervised: any image collection will do, labels are ignored; the held-out split is
the same stratified one the GAN trainer uses.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from shared.job_params import RestorationTrainingParams
from workers.data.datasets import (
    HELD_OUT_FRACTION,
    dataset_facts,
    debian_manifest_path,
    load_training_images,
    split_held_out,
)
from workers.data.debian_images import restoration_photos
from workers.devices import torch_device
from workers.job_context import CancelCheck, JobContext, ProgressFn
from workers.models.builders import load_inpainter, restoration_inpainter_from_card
from workers.models.restoration import RestorationConfig
from workers.pipelines.registry import Output, OutputRole, PipelineResult
from workers.pipelines.training import TrainingRun, publish_version, starting_weights
from workers.training.promotion import GateDecision, Metric, gate
from workers.training.restoration import RestorationTrainConfig, train_restoration
from workers.training.restoration_eval import evaluate_restoration, learned_pooled_hole_psnr
from workers.training.restoration_model import restoration_card, restoration_weights

# A fine-tuning run's learning rates rise over this share of its steps (measured on the shipped
# model, 60 steps: the served fill lost 0.17 dB pooled hole PSNR without a warm-up, 0.04 with one).
FINE_TUNE_WARMUP = 0.2


def train_restoration_model(params: RestorationTrainingParams, progress: ProgressFn, check_cancel: CancelCheck,
                            ctx: JobContext) -> PipelineResult:
    progress(0.0, "loading data", params.dataset)
    data = load_training_images(params, ctx)
    train_idx, held_idx = split_held_out(data.images, data.labels, HELD_OUT_FRACTION)
    check_cancel()

    model_config = RestorationConfig()
    init_weights, init = starting_weights(params, ctx, lambda card: restoration_incompatibility(card, model_config))
    train_config = RestorationTrainConfig(
        steps=params.steps, batch_size=params.batch_size, patch=params.patch, seed=params.seed,
        checkpoint_every=params.checkpoint_every, sample_every=params.sample_every,
        warmup_steps=round(FINE_TUNE_WARMUP * params.steps) if init_weights is not None else 0)
    run = TrainingRun(ctx, progress)
    result = train_restoration(
        list(data.images[train_idx]), model_config, train_config,
        resume=run.resume, init_weights=init_weights, on_progress=run.on_progress, check_cancel=check_cancel,
        save_checkpoint=run.save_checkpoint, save_samples=run.save_samples, device=torch_device(ctx.device),
    )

    progress(0.88, "evaluating", "inpainting, detection and de-fading against the classical methods")
    check_cancel()
    photos, photo_facts = restoration_photos(debian_manifest_path(ctx))
    metrics = evaluate_restoration(result.inpainter_state, result.detector_state, result.fade_state, model_config,
                                   data.images[held_idx], seed=params.seed, photos=photos)

    progress(0.97, "registering", params.model)
    card = restoration_card(params, model_config, train_config, dataset_facts(params, data, len(held_idx)),
                            photo_facts, metrics, {**run.facts(result.steps_done, params, result.final_losses),
                                                   "init": init})
    weights = restoration_weights(result)

    def challenge(incumbent_version: int, incumbent_card: dict[str, Any]) -> GateDecision:
        progress(0.92, "promotion gate", f"hole PSNR against {params.model}@{incumbent_version}")
        held = list(data.images[held_idx])
        incumbent = ctx.models.load(ctx.models.own(params.model, incumbent_version), restoration_inpainter_from_card)
        challenger = load_inpainter(result.inpainter_state, model_config)
        return gate(Metric("pooled_hole_psnr", higher_is_better=True),
                    lambda net, seed: learned_pooled_hole_psnr(net, held, seed), challenger, incumbent,
                    incumbent_version, params.promotion_margin)

    published = publish_version(ctx, params, weights, card, challenge)
    progress(1.0, "registered", f"{params.model}@{published['version']}")
    # The last sample grid (damaged | mask | restored | clean) is the job's result image.
    grid = ctx.workspace.load(f"samples-step-{result.steps_done:06d}.png")
    outputs = [Output(Image.open(io.BytesIO(grid)).convert("RGB"), OutputRole.SAMPLE_GRID)] if grid else []
    return PipelineResult(outputs=outputs, metadata={"model": published, "metrics": metrics})


def restoration_incompatibility(card: dict[str, Any], config: RestorationConfig) -> str | None:
    if card.get("task") != "restoration":
        return f"it is a {card.get('task')} model"
    if RestorationConfig.from_dict(card["restoration_config"]) != config:
        return "its network configuration differs from this run's"
    return None
