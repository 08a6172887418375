"""Training a model: data -> train (checkpointed, resumable) -> measure -> register a version.

What every training target shares (the held-out split, the run's link to its workspace, the
starting weights, publishing a version), and the GAN's trainer ("gan"); the restoration trainer
is ``workers.pipelines.restoration_training``, and ``workers.pipelines.training_jobs`` picks one
by ``params.target``. The job's checkpoint lives in its workspace under a fixed name, so when the
job runs again after a crash it resumes where the last checkpoint left it. Cancel saves a
checkpoint first (the training loop does that), then the job ends ``canceled``.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from shared.builtin_models import builtin_models
from shared.job_params import CreationParams, GanTrainingParams, TrainingParams
from shared.models import PUBLIC
from workers.data.attributes import colour_attributes
from workers.data.datasets import load_training_images
from workers.devices import torch_device
from workers.job_context import CancelCheck, JobContext, ProgressFn
from workers.metrics.frechet import frechet_distance, pretrained_features, style_features
from workers.metrics.swd import sliced_wasserstein
from workers.models.builders import build_generator, generator_from_card
from workers.models.gan import ARCHITECTURE, GanConfig, Generator, generate
from workers.pipelines.creation import choose_conditions
from workers.pipelines.registry import Output, OutputRole, PipelineResult
from workers.training.checkpoint import state_from_bytes, state_to_bytes
from workers.training.creation_model import creation_card, evaluation_sets, gan_configs, gan_split
from workers.training.evaluation import SAMPLES_PER_LABEL_MIN, evaluate_generator
from workers.training.gan import train_gan
from workers.training.promotion import GateDecision, Metric, gate

CHECKPOINT = "checkpoint.safetensors"
# The loss curve, a listed artifact: [{"step": 250, "d": 0.61, "g": 1.2, ...}, ...], at most about
# LOSS_LOG_POINTS points whatever the run's length, saved with every checkpoint and sample grid.
LOSS_LOG = "losses.json"
LOSS_LOG_POINTS = 500


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# -- what every training target shares -----------------------------------------------


class TrainingRun:
    """A training job's link to its workspace: the checkpoint to resume from, checkpoints,
    sample grids and the loss log going out, and progress with an ETA measured over this attempt."""

    def __init__(self, ctx: JobContext, progress: ProgressFn, share: float = 0.85):
        self.ctx, self.progress, self.share = ctx, progress, share
        saved = ctx.workspace.load(CHECKPOINT)
        self.resume = state_from_bytes(saved) if saved else None
        self.first_step = int(self.resume["step"]) if self.resume else 0
        self.started = time.monotonic()
        # A resumed run keeps the points up to its checkpoint; the steps after it run again.
        logged = ctx.workspace.load(LOSS_LOG) if self.resume else None
        self.loss_log: list[dict[str, float | None]] = [
            point for point in json.loads(logged) if point["step"] <= self.first_step] if logged else []

    def on_progress(self, step: int, total: int, losses: dict[str, float]) -> None:
        if step % max(1, total // LOSS_LOG_POINTS) == 0 or step == total:
            # JSON has no NaN: a diverged loss is logged as null.
            self.loss_log.append({"step": step, **{k: round(v, 5) if math.isfinite(v) else None
                                                   for k, v in losses.items()}})
        rate = (step - self.first_step) / max(time.monotonic() - self.started, 1e-6)
        message = f"step {step}/{total} " + " ".join(f"{k} {v:.3f}" for k, v in losses.items())
        if rate > 0:
            message += f" eta {(total - step) / rate:.0f}s"
        self.progress(self.share * step / total, "training", message)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        self.ctx.workspace.save(CHECKPOINT, state_to_bytes(state), "application/octet-stream", listed=False)
        self.save_loss_log()

    def save_samples(self, step: int, grid: Image.Image) -> None:
        self.ctx.workspace.save(f"samples-step-{step:06d}.png", png_bytes(grid), "image/png")
        self.save_loss_log()

    def save_loss_log(self) -> None:
        self.ctx.workspace.save(LOSS_LOG, json.dumps(self.loss_log).encode(), "application/json")

    def facts(self, steps_done: int, params: TrainingParams, final_losses: dict[str, float]) -> dict[str, Any]:
        """The model card's "training" section."""
        return {"job_id": self.ctx.job_id, "steps": steps_done, "batch_size": params.batch_size,
                "seed": params.seed, "final_losses": final_losses, "resumed_from_step": self.first_step,
                "seconds_this_attempt": round(time.monotonic() - self.started, 1)}


def weights_bytes(state: dict[str, Any]) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in state.items()})


def starting_weights(params: TrainingParams, ctx: JobContext,
                     incompatibility: Callable[[dict[str, Any]], str | None]) -> tuple[dict[str, Any] | None, dict]:
    """The weights a run starts from, and the model card's "init" section.

    ``params.init_from`` "promoted" fine-tunes the promoted version of ``params.model`` (the
    tenant's own, or else the shipped model of that name) when ``incompatibility(its card)``
    finds nothing in the way (say, a GAN whose labels changed); otherwise, and by default
    ("scratch"), the run starts from random weights."""
    if params.init_from != "promoted":
        return None, {"from": "scratch"}
    name = params.model
    version = ctx.models.index.promoted(name)
    if version is not None:
        model = ctx.models.own(name, version)
    elif name in builtin_models():
        model = ctx.models.resolve(f"{PUBLIC}/{name}")
    else:
        return None, {"from": "scratch", "reason": f"{name} has no promoted version yet"}
    problem = incompatibility(model.card)
    if problem:
        return None, {"from": "scratch", "reason": f"{model.pinned} cannot be fine-tuned: {problem}"}
    return ctx.models.weights(model), {"from": model.pinned}


Challenge = Callable[[int, dict[str, Any]], GateDecision]


def publish_version(ctx: JobContext, params: TrainingParams, weights: dict[str, Any], card: dict[str, Any],
                    challenge: Challenge) -> dict[str, Any]:
    """Register a trained version and decide whether it serves.

    ``params.promote`` "if_first" (the default): the first version of a name is promoted, later
    ones wait for a manual promotion. "if_better": the promotion gate scores this version and
    the promoted one with ``challenge(incumbent_version, incumbent_card)``; the new version is
    promoted only if the gate says so, and only if the promoted version is still the one it
    was compared with. The decision is kept in the card and the promotion history."""
    name, index = params.model, ctx.models.index
    incumbent = index.promoted(name)
    decision = None
    if params.promote == "if_better" and incumbent is not None:
        decision = challenge(incumbent, index.card(name, incumbent) or {})
        card = {**card, "promotion_gate": decision.to_dict()}
    version, promoted = ctx.models.publish(name, weights_bytes(weights), card)
    if decision is not None and decision.promote:
        promoted = index.promote(name, version, decision.reason, expected_current=incumbent,
                                 details={"gate": decision.to_dict(), "job_id": ctx.job_id})
    return {"name": name, "version": version, "promoted": promoted,
            "gate": decision.to_dict() if decision is not None else None}


# -- the GAN ----------------------------------------------------------------------------


def train_gan_model(params: GanTrainingParams, progress: ProgressFn, check_cancel: CancelCheck,
                    ctx: JobContext) -> PipelineResult:
    progress(0.0, "loading data", params.dataset)
    data = load_training_images(params, ctx)
    attrs = colour_attributes(data.images)
    train_idx, held_idx, fresh = gan_split(params, data)
    check_cancel()

    gan_config, train_config = gan_configs(params, len(data.label_names))
    init_weights, init = starting_weights(params, ctx, lambda card: gan_incompatibility(card, gan_config))
    run = TrainingRun(ctx, progress)
    result = train_gan(
        data.images[train_idx], data.labels[train_idx], attrs[train_idx], gan_config, train_config,
        resume=run.resume, init_weights=init_weights, on_progress=run.on_progress, check_cancel=check_cancel,
        save_checkpoint=run.save_checkpoint, save_samples=run.save_samples, device=torch_device(ctx.device),
    )

    progress(0.88, "evaluating", "Fréchet distance, KID, SWD, conditional accuracy and diversity")
    check_cancel()
    real = evaluation_sets(params, data, attrs, train_idx, held_idx, fresh)
    metrics, grid = evaluate_generator(result.g_ema_state, gan_config, real, seed=params.seed)

    progress(0.97, "registering", params.model)
    card = creation_card(params, gan_config, train_config, data, attrs, train_idx, real, metrics,
                         {**run.facts(result.steps_done, params, result.final_losses), "init": init,
                          "precision": result.precision})

    def challenge(incumbent_version: int, incumbent_card: dict[str, Any]) -> GateDecision:
        rules = gan_gate(params.resolution, metrics, real.held)
        progress(0.92, "promotion gate", f"{rules.metric.name} against {params.model}@{incumbent_version}")
        incumbent = ctx.models.load(ctx.models.own(params.model, incumbent_version), generator_from_card)
        challenger = build_generator(gan_config, result.g_ema_state)
        return gate(rules.metric, rules.score, (challenger, card), (incumbent, incumbent_card), incumbent_version,
                    params.promotion_margin, noise_floor=rules.floor, guard=rules.guard)

    published = publish_version(ctx, params, result.g_ema_state, card, challenge)
    progress(1.0, "registered", f"{params.model}@{published['version']}")
    return PipelineResult(outputs=[Output(grid, OutputRole.SAMPLE_GRID)],
                          metadata={"model": published, "metrics": metrics, "labels": data.label_names})


def gan_incompatibility(card: dict[str, Any], config: GanConfig) -> str | None:
    if card.get("task") != "creation":
        return f"it is a {card.get('task')} model"
    if card.get("architecture") != ARCHITECTURE:
        return f"it is a {card.get('architecture')} network, not {ARCHITECTURE}"
    if GanConfig.from_dict(card["gan_config"]) != config:
        return "its architecture, resolution or number of labels differs from this run's"
    return None


# The style space vetoes a challenger that wins on ImageNet features with neon colours or one layout
# per style (workers.training.promotion).
STYLE_GUARD = Metric("frechet_distance_style", higher_is_better=False)


def gate_metric(resolution: int) -> Metric:
    """The Fréchet distance on pretrained features from 64 px up. A 32 px work is enlarged 7x for
    those features, where they stop telling a trained generator from an untrained one (measured:
    a 1-step generator scored 295 against a 440-step one's 304), so 32 px models are gated on
    SWD, which compares the pixels themselves."""
    return Metric("frechet_distance" if resolution >= 64 else "swd", higher_is_better=False)


GanModel = tuple[Generator, dict[str, Any]]  # a generator and its card


@dataclass(frozen=True)
class GanGate:
    """How a GAN of one resolution is gated: the metric and its scorer, the metric's real-vs-real
    floor (from the challenger's card), and the guard metric with its scorer, where there is one."""

    metric: Metric
    score: Callable[[GanModel, int], float]
    floor: float
    guard: tuple[Metric, Callable[[GanModel, int], float]] | None


def gan_gate(resolution: int, metrics: dict[str, Any], held: np.ndarray) -> GanGate:
    """The gate for a GAN measured against the held-out images ``held``; ``metrics``: the
    challenger's card metrics (for the floor)."""
    metric = gate_metric(resolution)
    if metric.name == "swd":
        def swd(model: GanModel, seed: int) -> float:
            return generated_swd(model[0], model[1], held, seed)
        return GanGate(metric, swd, metrics["swd_real_floor"]["average"], None)
    held_features, held_style = pretrained_features(held), style_features(held)

    def imagenet_fd(model: GanModel, seed: int) -> float:
        return generated_frechet_distance(model[0], model[1], held, held_features, seed)

    def style_fd(model: GanModel, seed: int) -> float:
        return generated_frechet_distance(model[0], model[1], held, held_style, seed, style_features)
    return GanGate(metric, imagenet_fd, metrics["frechet_distance"]["real_floor"], (STYLE_GUARD, style_fd))


def generated_like_real(generator: Generator, card: dict[str, Any], real: np.ndarray, seed: int) -> np.ndarray:
    """As many images (at least 64) as ``real`` holds, generated the way creation jobs ask the
    model for them, resized to the real ones' size."""
    count = max(SAMPLES_PER_LABEL_MIN, len(real))
    labels, attrs = choose_conditions(card, CreationParams(seed=seed, count=count), {}, {})
    fake = generate(generator, labels, attrs, seed=seed)
    side = real.shape[1]
    if fake.shape[1] != side:
        fake = np.stack([np.asarray(Image.fromarray(f).resize((side, side), Image.Resampling.LANCZOS)) for f in fake])
    return fake


def generated_frechet_distance(generator: Generator, card: dict[str, Any], real: np.ndarray,
                               real_features: np.ndarray, seed: int,
                               features: Callable[[np.ndarray], np.ndarray] = pretrained_features) -> float:
    """Fréchet distance between ``real`` (whose ``features`` are given) and generated images."""
    return frechet_distance(features(generated_like_real(generator, card, real, seed)), real_features)


def generated_swd(generator: Generator, card: dict[str, Any], real: np.ndarray, seed: int) -> float:
    """SWD (x1e3) between ``real`` and generated images."""
    return float(sliced_wasserstein(real, generated_like_real(generator, card, real, seed), seed=seed)["average"])
