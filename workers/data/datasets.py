"""Training data in memory: a built-in set (procedural, or the Debian corpus installed on the
worker), or a tenant's uploaded dataset."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from shared.dataset_store import BUILTIN_DATASETS, PROCEDURAL, PROCEDURAL_RECORD
from shared.datasets import manifest_sha256
from shared.debian_images import DEBIAN_IMAGES, DEFAULT_MANIFEST_PATH, DatasetNotInstalled, read_manifest
from shared.job_params import GanTrainingParams, TrainingParams
from workers.data.debian_images import files_of_split, open_image
from workers.data.photos import centre_square
from workers.data.procedural import STYLES, make_dataset
from workers.job_context import InvalidJobInput, JobContext

UNLABELED = "all"
MIN_IMAGES_PER_LABEL = 4
# The share of a tenant's dataset held out from training to measure the model on.
HELD_OUT_FRACTION = 0.2


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
    square = centre_square(image)
    return np.asarray(square.resize((resolution, resolution), Image.Resampling.LANCZOS), dtype=np.uint8)


def procedural_fingerprint(per_style: int, resolution: int, seed: int) -> str:
    """What stands for the manifest sha256 of the generated dataset: the same parameters make
    the same images."""
    return f"procedural:per_style={per_style}:size={resolution}:seed={seed}"


# Seeds of the procedural images a model is measured against: never the seed of a training set
# (training seeds are below 2**31, the API's limit).
HELD_OUT_SEED = 2**31 + 1
REFERENCE_SEED = 2**31 + 2


def reference_sets(params: GanTrainingParams, label_names: list[str]
                   ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None:
    """For the procedural dataset: two fresh sets (held out, reference) of ``eval_per_label``
    images of every style, rendered from seeds no training set uses; None for other datasets."""
    if params.dataset != PROCEDURAL or label_names != [s.name for s in STYLES]:
        return None
    held = make_dataset(params.eval_per_label, params.resolution, seed=HELD_OUT_SEED)
    reference = make_dataset(params.eval_per_label, params.resolution, seed=REFERENCE_SEED)
    return held, reference


def procedural_training_data(per_style: int, resolution: int, seed: int) -> TrainingData:
    """The built-in procedural dataset: ``per_style`` images of every style at ``resolution``."""
    images, labels = make_dataset(per_style, resolution, seed=seed)
    return TrainingData(images, labels, [s.name for s in STYLES], {s.name: s.description for s in STYLES},
                        PROCEDURAL_RECORD.licence, procedural_fingerprint(per_style, resolution, seed))


def debian_training_data(manifest_path: Path, resolution: int) -> TrainingData:
    """The Debian corpus's training split, each picture's centre square at ``resolution`` px (its
    held-out split is for evaluation: workers.data.debian_images.held_out_tiles). The licence is
    the manifest's summary; each image's own is in the manifest. InvalidJobInput
    ``dataset_not_installed`` when the corpus is not installed on this worker."""
    try:
        manifest = read_manifest(manifest_path)
        images = [square_resize(open_image(entry), resolution) for entry in files_of_split(manifest, "train")]
    except DatasetNotInstalled as exc:
        raise InvalidJobInput(str(exc), code="dataset_not_installed") from None
    if len(images) < MIN_IMAGES_PER_LABEL:
        raise InvalidJobInput(f"the {DEBIAN_IMAGES} manifest lists {len(images)} training images",
                              code="dataset_too_small")
    return TrainingData(np.stack(images), np.zeros(len(images), dtype=np.int64), [UNLABELED], {UNLABELED: UNLABELED},
                        manifest["licence"], manifest_sha256(manifest))


def debian_manifest_path(ctx: JobContext) -> Path:
    """Where this worker keeps the debian-images manifest (the default path outside a worker)."""
    return Path(ctx.datasets.debian_images_manifest) if ctx.datasets is not None else DEFAULT_MANIFEST_PATH


def load_training_images(params: TrainingParams, ctx: JobContext) -> TrainingData:
    resolution = params.resolution
    if params.dataset == PROCEDURAL:
        return procedural_training_data(params.per_style, resolution, params.seed)
    if params.dataset == DEBIAN_IMAGES:
        return debian_training_data(debian_manifest_path(ctx), resolution)
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


def split_held_out(images: np.ndarray, labels: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held_out) of a split decided by each image's content: an image is held
    out when its hash falls below ``fraction``, so the split stays put as a dataset grows (an
    image held out once is held out in every later version, and a model never trains on the
    images a later version is compared with it on). A label the hash gives no held-out image
    lends its lowest-hashed one."""
    position = np.array([int.from_bytes(hashlib.sha256(np.ascontiguousarray(image).tobytes()).digest()[:8], "big")
                         / 2.0**64 for image in images])
    held = position < fraction
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) > 1 and not held[members].any():
            held[members[np.argmin(position[members])]] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


def dataset_facts(params: TrainingParams, data: TrainingData, held_out: int) -> dict[str, Any]:
    """The model card's "dataset" section: the lineage of what the model learned from."""
    return {"id": params.dataset, "manifest_sha256": data.manifest_sha256, "licence": data.licence,
            "images": int(len(data.labels)), "held_out": held_out, "builtin": params.dataset in BUILTIN_DATASETS}
