"""Training a conditional GAN: data -> train (checkpointed, resumable) -> measure -> register.

The job's checkpoint lives in its workspace under a fixed name, so when the job runs again
after a crash it resumes where the last checkpoint left it. Cancel saves a checkpoint
first (the training loop does that), then the job ends ``canceled``.
"""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
from PIL import Image

from shared.dataset_store import PROCEDURAL
from workers.data.attributes import ATTRIBUTE_NAMES, colour_attributes
from workers.data.datasets import load_training_images
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


@register_pipeline("training")
def train(
    inputs: dict[str, Image.Image],
    params: dict[str, Any],
    progress: ProgressFn,
    check_cancel: CancelCheck,
    ctx: JobContext,
) -> PipelineResult:
    progress(0.0, "loading data", params["dataset"])
    data = load_training_images(params, ctx)
    attrs = colour_attributes(data.images)
    train_idx, held_idx = split_held_out(data.labels, HELD_OUT_FRACTION, params["seed"])
    check_cancel()

    gan_config = GanConfig(resolution=params["resolution"], n_classes=len(data.label_names))
    train_config = TrainConfig(steps=params["steps"], batch_size=params["batch_size"], seed=params["seed"],
                               checkpoint_every=params["checkpoint_every"], sample_every=params["sample_every"])
    saved = ctx.workspace.load(CHECKPOINT)
    resume = state_from_bytes(saved) if saved else None
    started = time.monotonic()
    first_step = int(resume["step"]) if resume else 0

    def on_progress(step: int, total: int, losses: dict[str, float]) -> None:
        done = step - first_step
        rate = done / max(time.monotonic() - started, 1e-6)
        eta = (total - step) / rate if rate > 0 else None
        message = f"step {step}/{total} " + " ".join(f"{k} {v:.3f}" for k, v in losses.items())
        if eta is not None:
            message += f" eta {eta:.0f}s"
        progress(0.85 * step / total, "training", message)

    result = train_gan(
        data.images[train_idx], data.labels[train_idx], attrs[train_idx], gan_config, train_config,
        resume=resume,
        on_progress=on_progress,
        check_cancel=check_cancel,
        save_checkpoint=lambda state: ctx.workspace.save(CHECKPOINT, state_to_bytes(state),
                                                         "application/octet-stream", listed=False),
        save_samples=lambda step, grid: ctx.workspace.save(f"samples-step-{step:06d}.png", png_bytes(grid),
                                                           "image/png"),
    )

    progress(0.88, "evaluating", "SWD and conditional accuracy on held-out images")
    check_cancel()
    metrics, grid = evaluate_generator(
        result.g_ema_state, gan_config, data.images, data.labels, attrs, train_idx, held_idx, seed=params["seed"])

    progress(0.97, "registering", params["model"])
    card = {
        "architecture": "conditional-dcgan",
        "gan_config": gan_config.to_dict(),
        "resolution": gan_config.resolution,
        "labels": data.label_names,
        "label_descriptions": data.label_descriptions,
        "attributes": list(ATTRIBUTE_NAMES),
        "attribute_samples": attribute_samples(attrs[train_idx], data.labels[train_idx], data.label_names,
                                               params["seed"]),
        "dataset": {"id": params["dataset"], "manifest_sha256": data.manifest_sha256, "licence": data.licence,
                    "images": int(len(data.labels)), "held_out": int(len(held_idx)),
                    "builtin": params["dataset"] == PROCEDURAL},
        "training": {"job_id": ctx.job_id, "steps": result.steps_done, "batch_size": params["batch_size"],
                     "seed": params["seed"], "final_losses": result.final_losses,
                     "resumed_from_step": first_step, "seconds_this_attempt": round(time.monotonic() - started, 1)},
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


def weights_bytes(state: dict[str, Any]) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in state.items()})
