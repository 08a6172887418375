"""Training jobs: data -> train (checkpointed, resumable) -> measure -> register a version.

Each ``params.target`` has a trainer registered here: "gan" (below) and "restoration"
(workers.pipelines.restoration_training). The job's checkpoint lives in its workspace under
a fixed name, so when the job runs again after a crash it resumes where the last checkpoint
left it. Cancel saves a checkpoint
first (the training loop does that), then the job ends ``canceled``.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from PIL import Image

from shared.dataset_store import PROCEDURAL
from workers.data.attributes import ATTRIBUTE_NAMES, colour_attributes
from workers.data.datasets import TrainingData, load_training_images
from workers.devices import torch_device
from workers.models.gan import GanConfig
from workers.pipelines import CancelCheck, JobContext, PipelineResult, ProgressFn, register_pipeline
from workers.training.checkpoint import state_from_bytes, state_to_bytes
from workers.training.evaluation import evaluate_generator
from workers.training.gan import TrainConfig, train_gan

CHECKPOINT = "checkpoint.safetensors"
HELD_OUT_FRACTION = 0.2
# Attribute vectors kept per label in the model card; creation samples from them.
ATTRIBUTE_SAMPLES_PER_LABEL = 64


def split_held_out(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a fixed, per-label stratified held-out split (train, held_out)."""
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        held.extend(rng.permutation(members)[: max(1, int(len(members) * fraction))].tolist())
    mask = np.zeros(len(labels), dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# -- what every training target shares -----------------------------------------------


class Trainer(Protocol):
    def __call__(self, params: dict[str, Any], progress: ProgressFn, check_cancel: CancelCheck,
                 ctx: JobContext) -> PipelineResult: ...


_TRAINERS: dict[str, Trainer] = {}


def register_trainer(target: str) -> Callable[[Trainer], Trainer]:
    def decorate(fn: Trainer) -> Trainer:
        if target in _TRAINERS:
            raise ValueError(f"trainer for {target!r} registered twice")
        _TRAINERS[target] = fn
        return fn

    return decorate


@register_pipeline("training")
def train(
    inputs: dict[str, Image.Image],
    params: dict[str, Any],
    progress: ProgressFn,
    check_cancel: CancelCheck,
    ctx: JobContext,
) -> PipelineResult:
    from workers.pipelines import restoration_training  # noqa: F401  (registers its trainer)

    return _TRAINERS[params["target"]](params, progress, check_cancel, ctx)


class TrainingRun:
    """A training job's link to its workspace: the checkpoint to resume from, checkpoints
    and sample grids going out, and progress with an ETA measured over this attempt."""

    def __init__(self, ctx: JobContext, progress: ProgressFn, share: float = 0.85):
        self.ctx, self.progress, self.share = ctx, progress, share
        saved = ctx.workspace.load(CHECKPOINT)
        self.resume = state_from_bytes(saved) if saved else None
        self.first_step = int(self.resume["step"]) if self.resume else 0
        self.started = time.monotonic()

    def on_progress(self, step: int, total: int, losses: dict[str, float]) -> None:
        rate = (step - self.first_step) / max(time.monotonic() - self.started, 1e-6)
        message = f"step {step}/{total} " + " ".join(f"{k} {v:.3f}" for k, v in losses.items())
        if rate > 0:
            message += f" eta {(total - step) / rate:.0f}s"
        self.progress(self.share * step / total, "training", message)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        self.ctx.workspace.save(CHECKPOINT, state_to_bytes(state), "application/octet-stream", listed=False)

    def save_samples(self, step: int, grid: Image.Image) -> None:
        self.ctx.workspace.save(f"samples-step-{step:06d}.png", png_bytes(grid), "image/png")

    def facts(self, steps_done: int, params: dict[str, Any], final_losses: dict[str, float]) -> dict[str, Any]:
        """The model card's "training" section."""
        return {"job_id": self.ctx.job_id, "steps": steps_done, "batch_size": params["batch_size"],
                "seed": params["seed"], "final_losses": final_losses, "resumed_from_step": self.first_step,
                "seconds_this_attempt": round(time.monotonic() - self.started, 1)}


def dataset_facts(params: dict[str, Any], data: TrainingData, held_out: int) -> dict[str, Any]:
    """The model card's "dataset" section: the lineage of what the model learned from."""
    return {"id": params["dataset"], "manifest_sha256": data.manifest_sha256, "licence": data.licence,
            "images": int(len(data.labels)), "held_out": held_out, "builtin": params["dataset"] == PROCEDURAL}


def weights_bytes(state: dict[str, Any]) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in state.items()})


# -- the GAN ----------------------------------------------------------------------------


@register_trainer("gan")
def train_gan_model(params: dict[str, Any], progress: ProgressFn, check_cancel: CancelCheck,
                    ctx: JobContext) -> PipelineResult:
    progress(0.0, "loading data", params["dataset"])
    data = load_training_images(params, ctx)
    attrs = colour_attributes(data.images)
    train_idx, held_idx = split_held_out(data.labels, HELD_OUT_FRACTION, params["seed"])
    check_cancel()

    gan_config = GanConfig(resolution=params["resolution"], n_classes=len(data.label_names))
    train_config = TrainConfig(steps=params["steps"], batch_size=params["batch_size"], seed=params["seed"],
                               checkpoint_every=params["checkpoint_every"], sample_every=params["sample_every"])
    run = TrainingRun(ctx, progress)
    result = train_gan(
        data.images[train_idx], data.labels[train_idx], attrs[train_idx], gan_config, train_config,
        resume=run.resume, on_progress=run.on_progress, check_cancel=check_cancel,
        save_checkpoint=run.save_checkpoint, save_samples=run.save_samples, device=torch_device(ctx.device),
    )

    progress(0.88, "evaluating", "SWD and conditional accuracy on held-out images")
    check_cancel()
    metrics, grid = evaluate_generator(
        result.g_ema_state, gan_config, data.images, data.labels, attrs, train_idx, held_idx, seed=params["seed"])

    progress(0.97, "registering", params["model"])
    card = {
        "task": "creation",
        "architecture": "conditional-dcgan",
        "gan_config": gan_config.to_dict(),
        "resolution": gan_config.resolution,
        "labels": data.label_names,
        "label_descriptions": data.label_descriptions,
        "attributes": list(ATTRIBUTE_NAMES),
        "attribute_samples": attribute_samples(attrs[train_idx], data.labels[train_idx], data.label_names,
                                               params["seed"]),
        "dataset": dataset_facts(params, data, len(held_idx)),
        "training": run.facts(result.steps_done, params, result.final_losses),
        "metrics": metrics,
        "created_at": time.time(),
    }
    version, promoted = ctx.models.publish(params["model"], weights_bytes(result.g_ema_state), card)
    progress(1.0, "registered", f"{params['model']}@{version}")
    return PipelineResult(images=[grid], metadata={
        "model": {"name": params["model"], "version": version, "promoted": promoted},
        "metrics": metrics, "labels": data.label_names,
    })


def attribute_samples(attrs: np.ndarray, labels: np.ndarray, names: list[str], seed: int) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    samples = {}
    for index, name in enumerate(names):
        members = attrs[labels == index]
        chosen = members[rng.permutation(len(members))[:ATTRIBUTE_SAMPLES_PER_LABEL]]
        samples[name] = np.round(chosen, 4).tolist()
    return samples
