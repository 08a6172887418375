"""Training data in memory: the built-in procedural set, or a tenant's uploaded dataset."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from shared.dataset_store import PROCEDURAL, PROCEDURAL_RECORD
from shared.job_params import TrainingParams
from workers.data.procedural import STYLES, make_dataset
from workers.job_context import InvalidJobInput, JobContext

UNLABELED = "all"
MIN_IMAGES_PER_LABEL = 4


@dataclass(frozen=True)
class TrainingData:
    images: np.ndarray  # uint8 [N, R, R, 3]
    labels: np.ndarray  # int64 [N], indices into label_names
    label_names: list[str]
    label_descriptions: dict[str, str]
    licence: str
    manifest_sha256: str


def square_resize(image: Image.Image, resolution: int) -> np.ndarray:
    """Centre-crop to a square, then resize: the GAN sees square images."""
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return np.asarray(square.resize((resolution, resolution), Image.Resampling.LANCZOS), dtype=np.uint8)


def procedural_fingerprint(per_style: int, resolution: int, seed: int) -> str:
    """What stands for the manifest sha256 of the generated dataset: the same parameters make
    the same images."""
    return f"procedural:per_style={per_style}:size={resolution}:seed={seed}"


def load_training_images(params: TrainingParams, ctx: JobContext) -> TrainingData:
    resolution = params.resolution
    if params.dataset == PROCEDURAL:
        images, labels = make_dataset(params.per_style, resolution, seed=params.seed)
        fingerprint = procedural_fingerprint(params.per_style, resolution, params.seed)
        return TrainingData(images, labels, [s.name for s in STYLES], {s.name: s.description for s in STYLES},
                            PROCEDURAL_RECORD.licence, fingerprint)
    manifest = ctx.datasets.manifest(params.dataset)
    if not manifest.get("licence"):
        raise InvalidJobInput("the dataset declares no licence; training on it is refused", code="licence_required")
    files = manifest["files"]
    names = sorted({f["label"] or UNLABELED for f in files})
    arrays: list[np.ndarray] = []
    label_ids: list[int] = []
    for entry in files:
        image = Image.open(io.BytesIO(ctx.datasets.image(params.dataset, entry["key"]))).convert("RGB")
        arrays.append(square_resize(image, resolution))
        label_ids.append(names.index(entry["label"] or UNLABELED))
    counts = np.bincount(np.array(label_ids), minlength=len(names))
    if counts.min() < MIN_IMAGES_PER_LABEL:
        raise InvalidJobInput(f"every label needs at least {MIN_IMAGES_PER_LABEL} images; "
                              f"{dict(zip(names, counts.tolist(), strict=True))}", code="dataset_too_small")
    return TrainingData(np.stack(arrays), np.array(label_ids, dtype=np.int64), names, {n: n for n in names},
                        manifest["licence"], ctx.datasets.manifest_sha256(params.dataset))
