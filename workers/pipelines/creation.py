"""Creation: new paintings from a trained conditional GAN, steered by a style and/or a prompt.

Everything random is drawn from the job's seed, so the same seed and parameters give
identical pixels. A prompt picks labels (by its similarity to each label's description)
and sets colour-attribute targets (brightness, saturation, warmth) that replace the
attributes otherwise sampled from the training images of the chosen label.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from workers import faults
from workers.data.attributes import ATTRIBUTE_NAMES
from workers.models.gan import GanConfig, Generator, generate
from workers.pipelines import CancelCheck, InvalidJobInput, JobContext, PipelineResult, ProgressFn, register_pipeline
from workers.prompts import interpret_prompt
from workers.training.evaluation import build_generator

DISPLAY_SIDE = 256


def generator_from_card(card: dict[str, Any], state: dict[str, torch.Tensor]) -> Generator:
    return build_generator(GanConfig.from_dict(card["gan_config"]), state)


def choose_conditions(card: dict[str, Any], params: dict[str, Any], prompt_weights: dict[str, float],
                      prompt_attrs: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Labels and attribute vectors for each requested image, drawn from the seed."""
    rng = np.random.default_rng(params["seed"])
    names: list[str] = card["labels"]
    count = params["count"]
    if "style" in params:
        chosen = np.full(count, names.index(params["style"]))
    elif prompt_weights:
        weights = np.array([prompt_weights.get(n, 0.0) for n in names], dtype=np.float64)
        chosen = rng.choice(len(names), size=count, p=weights / weights.sum())
    else:
        chosen = rng.integers(0, len(names), size=count)
    samples = card["attribute_samples"]
    attrs = np.stack([np.asarray(samples[names[c]][rng.integers(0, len(samples[names[c]]))], dtype=np.float32)
                      for c in chosen])
    for position, name in enumerate(ATTRIBUTE_NAMES):
        if name in prompt_attrs:
            attrs[:, position] = prompt_attrs[name]
    return chosen.astype(np.int64), attrs


def generate_in_batches(generator: Generator, labels: np.ndarray, attrs: np.ndarray, params: dict[str, Any],
                        progress: ProgressFn) -> tuple[np.ndarray, int]:
    """All images in one batch; when the device runs out of memory, once more in batches of a
    quarter of that (at least one image). The pixels are the same either way (``generate``
    draws all noise up front), so the smaller batch changes nothing but memory and time.
    Returns the images and the batch size that worked; a second OutOfMemoryError propagates
    (the job fails with ``out_of_memory``)."""
    batch = len(labels)
    try:
        faults.before_batch("creation", batch)
        return generate(generator, labels, attrs, seed=params["seed"], truncation=params.get("truncation"),
                        batch_size=batch), batch
    except Exception as exc:
        if not faults.is_out_of_memory(exc) or batch <= 1:
            raise
        smaller = max(1, batch // 4)
        progress(0.2, "generating", f"out of memory at {batch} images at once; retrying {smaller} at a time")
        release_cached_memory()
    faults.before_batch("creation", smaller)
    return generate(generator, labels, attrs, seed=params["seed"], truncation=params.get("truncation"),
                    batch_size=smaller), smaller


def release_cached_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@register_pipeline("creation")
def create(
    inputs: dict[str, Image.Image],
    params: dict[str, Any],
    progress: ProgressFn,
    check_cancel: CancelCheck,
    ctx: JobContext,
) -> PipelineResult:
    progress(0.05, "loading model", params["model"])
    name, version, card = ctx.models.resolve(params["model"])
    generator = ctx.models.load(name, version, generator_from_card)
    check_cancel()

    interpretation: dict[str, Any] = {}
    prompt_weights: dict[str, float] = {}
    prompt_attrs: dict[str, float] = {}
    if "prompt" in params:
        condition = interpret_prompt(params["prompt"], card["labels"], card.get("label_descriptions", {}))
        prompt_weights, prompt_attrs = dict(condition.label_weights), dict(condition.attributes)
        interpretation = {"language": condition.language, "label_weights": prompt_weights,
                          "attributes": prompt_attrs, "matched_terms": list(condition.matched_terms)}
    if "style" in params and params["style"] not in card["labels"]:
        raise InvalidJobInput(f"{name}@{version} has no style {params['style']!r}", code="unknown_style")
    labels, attrs = choose_conditions(card, params, prompt_weights, prompt_attrs)

    progress(0.2, "generating", f"{params['count']} images")
    pixels, batch = generate_in_batches(generator, labels, attrs, params, progress)
    check_cancel()
    images = [Image.fromarray(p) for p in pixels]
    if params.get("upscale"):
        factor = -(-DISPLAY_SIDE // images[0].width)  # ceil: at least 256 px
        images = [im.resize((im.width * factor, im.height * factor), Image.Resampling.LANCZOS) for im in images]
    return PipelineResult(images=images, metadata={
        "model": {"name": name, "version": version, "weights_sha256": card.get("weights_sha256"),
                  "architecture": card.get("architecture"), "dataset": card.get("dataset")},
        "generated_resolution": card["resolution"],
        "batch_size": batch,
        "upscaled": bool(params.get("upscale")),
        "labels": [card["labels"][i] for i in labels],
        "attributes": np.round(attrs, 4).tolist(),
        "prompt": interpretation,
    })
