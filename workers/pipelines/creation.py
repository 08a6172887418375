"""Creation: new paintings from a trained conditional GAN, steered by a style and/or a prompt.

Everything random is drawn from the job's seed, so the same seed and parameters give
identical pixels. Each image is conditioned on a label and on a colouring (brightness, saturation,
warmth) drawn from the real works of that label. A prompt picks labels (by its similarity to each
label's description) and sets colour targets: an image then gets one of its label's real
colourings nearest the targets, and a prompt with colours but no style draws the labels whose
real works have such colours.

A job runs alone (``create``) or shares one generator forward with other creation jobs for the
same model (``create_together``, which ``workers.creation_batching`` runs); both go through
``plan_creation`` (prompt, conditions and noise for the resolved model), ``generate_in_batches``
and ``creation_result`` (upscale, metadata), so a job's pixels do not depend on the company it
ran in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from PIL import Image

from shared.job_params import CreationParams
from shared.models import ResolvedModel
from workers import faults
from workers.data.attributes import ATTRIBUTE_NAMES
from workers.devices import inference, prepare_module, torch_device
from workers.job_context import CancelCheck, InvalidJobInput, JobContext, ProgressFn
from workers.models.builders import generator_from_card, shipped_upscaler
from workers.models.gan import GanConfig, Generator, condition_tensors, generate_from_noise, truncated_noise
from workers.models.upscaler import upscale_images
from workers.pipelines.registry import Output, PipelineResult, register_pipeline
from workers.prompts import interpret_prompt

# A prompt's colour picks among the colourings a style's real works have: one of the nearest quarter
# of the style's attribute samples to the targets. Setting the attributes to the targets outright
# took works out of their style (bright drips, dark ink landscapes): bench/RESULTS.md, "Prompts keep
# the style".
NEAREST_SHARE = 4
# When the prompt names colours but no style, each style is drawn in proportion to its colourings
# within this distance of every target: "dark" draws the styles that have dark works.
REACH = 0.15


def choose_conditions(card: dict[str, Any], params: CreationParams, prompt_weights: dict[str, float],
                      prompt_attrs: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Labels and attribute vectors for each requested image, drawn from the seed."""
    rng = np.random.default_rng(params.fixed_seed)
    names: list[str] = card["labels"]
    count = params.count
    samples = {name: np.asarray(card["attribute_samples"][name], dtype=np.float32) for name in names}
    targets = {ATTRIBUTE_NAMES.index(name): value for name, value in prompt_attrs.items()}
    weights = style_weights(names, samples, prompt_weights, targets) if params.style is None else None
    if params.style is not None:
        chosen = np.full(count, names.index(params.style))
    elif weights is not None:
        chosen = rng.choice(len(names), size=count, p=weights)
    else:
        chosen = rng.integers(0, len(names), size=count)
    pools = {c: nearest_colourings(samples[names[c]], targets) for c in set(chosen.tolist())}
    attrs = np.stack([pools[c][rng.integers(0, len(pools[c]))] for c in chosen.tolist()])
    return chosen.astype(np.int64), attrs


def target_distance(samples: np.ndarray, targets: dict[int, float]) -> np.ndarray:
    """Each sample's largest distance from a target attribute ([N]; zeros without targets)."""
    distance = np.zeros(len(samples), dtype=np.float32)
    for position, value in targets.items():
        distance = np.maximum(distance, np.abs(samples[:, position] - value))
    return distance


def style_weights(names: list[str], samples: dict[str, np.ndarray], prompt_weights: dict[str, float],
                  targets: dict[int, float]) -> np.ndarray | None:
    """The style mix to draw from: the styles the prompt named, else those whose real works reach
    its colours; None for a uniform draw."""
    if prompt_weights:
        weights = np.array([prompt_weights.get(name, 0.0) for name in names], dtype=np.float64)
    elif targets:
        weights = np.array([np.mean(target_distance(samples[name], targets) <= REACH) for name in names],
                           dtype=np.float64)
    else:
        return None
    return weights / weights.sum() if weights.sum() > 0 else None


def nearest_colourings(samples: np.ndarray, targets: dict[int, float]) -> np.ndarray:
    """The real colourings of a style an image may get: all of them, or, for a prompt's colour
    targets, the share of them nearest the targets."""
    if not targets:
        return samples
    nearest = np.argsort(target_distance(samples, targets), kind="stable")
    return samples[nearest[:max(1, len(samples) // NEAREST_SHARE)]]


@dataclass(frozen=True)
class CreationPlan:
    """One job's share of a generator forward, everything drawn from the job's own seed: labels,
    attributes and noise (``count`` rows each)."""

    model: ResolvedModel
    labels: np.ndarray
    attrs: np.ndarray
    noise: torch.Tensor
    interpretation: dict[str, Any]

    @property
    def count(self) -> int:
        return len(self.labels)


def plan_creation(params: CreationParams, model: ResolvedModel) -> CreationPlan:
    """What ``params`` asks of ``model`` (already resolved): the prompt read, the style checked,
    labels, attributes and noise drawn."""
    card = model.card
    interpretation: dict[str, Any] = {}
    prompt_weights: dict[str, float] = {}
    prompt_attrs: dict[str, float] = {}
    if params.prompt is not None:
        condition = interpret_prompt(params.prompt, card["labels"], card.get("label_descriptions", {}))
        prompt_weights, prompt_attrs = dict(condition.label_weights), dict(condition.attributes)
        interpretation = {"language": condition.language, "label_weights": prompt_weights,
                          "attributes": prompt_attrs, "understood": list(condition.understood)}
    if params.style is not None and params.style not in card["labels"]:
        raise InvalidJobInput(f"{model.pinned} has no style {params.style!r}", code="unknown_style")
    labels, attrs = choose_conditions(card, params, prompt_weights, prompt_attrs)
    config = GanConfig.from_dict(card["gan_config"])
    condition_tensors(config, labels, attrs)  # a bad label fails this job here, not a shared forward
    noise = truncated_noise(len(labels), config.nz, params.fixed_seed, params.truncation)
    return CreationPlan(model, labels, attrs, noise, interpretation)


def load_generator(models: Any, model: ResolvedModel, device: str) -> Generator:
    """The version's generator (cached by the registry), in eval mode on ``device``."""
    return cast(Generator, prepare_module(models.load(model, generator_from_card), device))


def generate_in_batches(generator: Generator, plans: list[CreationPlan], device: str,
                        progress: ProgressFn) -> tuple[list[np.ndarray], int]:
    """The images of every plan, all in one batch; when the device runs out of memory, once more
    in batches of a quarter of that (at least one image). Each plan brings its own noise and each
    image depends on its own row alone (``generate_from_noise``), so neither the batch size nor
    the other plans in the batch change a plan's pixels, only memory and time.
    Returns each plan's images and the batch size that worked; a second OutOfMemoryError
    propagates (the jobs fail with ``out_of_memory``)."""
    labels = torch.cat([torch.as_tensor(p.labels, dtype=torch.long) for p in plans])
    attrs = torch.cat([torch.as_tensor(p.attrs, dtype=torch.float32) for p in plans])
    z = torch.cat([p.noise for p in plans])

    def forward(batch: int) -> np.ndarray:
        faults.before_batch("creation", batch)
        with inference(device):
            return generate_from_noise(generator, z, labels, attrs, batch_size=batch)

    batch = len(labels)
    try:
        pixels = forward(batch)
    except Exception as exc:
        if not faults.is_out_of_memory(exc) or batch <= 1:
            raise
        smaller = max(1, batch // 4)
        progress(0.2, "generating", f"out of memory at {batch} images at once; retrying {smaller} at a time")
        release_cached_memory()
        pixels, batch = forward(smaller), smaller
    return np.split(pixels, np.cumsum([p.count for p in plans])[:-1]), batch


def release_cached_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def creation_result(plan: CreationPlan, params: CreationParams, pixels: np.ndarray, batch_size: int,
                    batched_with: int, device: str = "cpu") -> PipelineResult:
    """A job's images (enlarged by the learned upscaler to ``params.upscale`` px when it asks) and
    the facts its provenance records; ``batched_with``: how many jobs shared the forward (1: it
    ran alone)."""
    images = [Image.fromarray(p) for p in pixels]
    upscaled: dict[str, Any] | bool = False
    if params.upscale is not None and params.upscale != images[0].width:
        network, upscaler_card = shipped_upscaler(device)
        with inference(device):
            images = upscale_images(network, images, params.upscale, device)
        upscaled = {"side": params.upscale, "method": "learned",
                    "model": {"name": upscaler_card["name"], "version": upscaler_card["version"],
                              "weights_sha256": upscaler_card["weights_sha256"]}}
    card = plan.model.card
    return PipelineResult(outputs=[Output(image) for image in images], metadata={
        "model": {"name": plan.model.name, "version": plan.model.version, "public": plan.model.public,
                  "weights_sha256": card.get("weights_sha256"), "architecture": card.get("architecture"),
                  "dataset": card.get("dataset")},
        "generated_resolution": card["resolution"],
        "batch_size": batch_size,
        "batched_with": batched_with,
        "upscaled": upscaled,
        "labels": [card["labels"][i] for i in plan.labels],
        "attributes": np.round(plan.attrs, 4).tolist(),
        "prompt": plan.interpretation,
    })


@register_pipeline("creation")
def create(
    inputs: dict[str, Image.Image],
    params: CreationParams,
    progress: ProgressFn,
    check_cancel: CancelCheck,
    ctx: JobContext,
) -> PipelineResult:
    progress(0.05, "loading model", params.model)
    model = ctx.models.resolve(params.model)
    device = torch_device(ctx.device)
    generator = load_generator(ctx.models, model, device)
    check_cancel()
    plan = plan_creation(params, model)
    progress(0.2, "generating", f"{plan.count} images")
    (pixels,), batch = generate_in_batches(generator, [plan], device, progress)
    check_cancel()
    return creation_result(plan, params, pixels, batch, batched_with=1, device=device)


@dataclass(frozen=True)
class Member:
    """One job of a shared forward: its params and its own progress and cancel callbacks."""

    params: CreationParams
    progress: ProgressFn
    check_cancel: CancelCheck


def create_together(members: Sequence[Member], model: ResolvedModel,
                    ctx: JobContext) -> Iterator[tuple[int, PipelineResult | Exception]]:
    """``create`` for several jobs of one ``model`` in one generator forward: yields each
    member's position with its result, or with what ended it (a bad style fails that member alone;
    a failed load or forward, every member still in it). Each member's pixels are those ``create``
    makes for it alone."""
    plans: dict[int, CreationPlan] = {}
    for position, member in enumerate(members):
        try:
            member.progress(0.05, "loading model", model.pinned)
            plans[position] = plan_creation(member.params, model)
        except Exception as exc:
            yield position, exc
    try:
        device = torch_device(ctx.device)
        generator = load_generator(ctx.models, model, device)
    except Exception as exc:
        yield from ((position, exc) for position in plans)
        return
    live = []
    for position in plans:
        try:
            members[position].check_cancel()
            live.append(position)
        except Exception as exc:
            yield position, exc
    if not live:
        return
    total = sum(plans[position].count for position in live)
    for position in live:
        members[position].progress(0.2, "generating", f"{plans[position].count} images, in one batch of {total} "
                                                      f"with {len(live) - 1} other jobs")

    def progress(fraction: float, stage: str, message: str = "") -> None:
        for position in live:
            members[position].progress(fraction, stage, message)

    try:
        pixels, batch = generate_in_batches(generator, [plans[position] for position in live], device, progress)
    except Exception as exc:
        yield from ((position, exc) for position in live)
        return
    for position, own in zip(live, pixels, strict=True):
        yield position, creation_result(plans[position], members[position].params, own, batch, len(live), device)
