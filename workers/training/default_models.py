"""The default models that ship inside the package, trained by the project's own code.

    make models                                            # every default model (resumable)
    python -m workers.training.default_models abstract     # the creation model
    python -m workers.training.default_models upscaler     # the 2x upscaler
    python -m workers.training.default_models restoration  # the restoration model
    python -m workers.training.default_models abstract --evaluate-only  # re-measure the shipped weights

Each run writes ``shared/assets/models/<name>/weights.safetensors`` and ``card.json``. The card
records the command, the seed and the whole recipe, and the metrics measured the same way a
training job measures its model. The creation model is trained exactly as a ``training`` job on
the built-in ``procedural`` dataset with ``DEFAULT_CREATION_PARAMS`` would train it (the same
functions: ``gan_configs``, ``gan_split``, ``train_gan``, ``evaluate_generator``,
``creation_card``). Training checkpoints its whole state to ``--workdir`` every 500 steps, so an
interrupted run continues where it stopped when the command is run again (the same weights as a
run straight through: ``tests/unit/test_gan.py``). The restoration model is trained as a
``training`` job with target ``restoration`` and ``DEFAULT_RESTORATION_PARAMS`` would train it
(``train_restoration``, ``evaluate_restoration``, ``restoration_card``), resumable the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors

from shared.builtin_models import BUILTIN_MODELS_DIR, release_version
from shared.datasets import manifest_sha256
from shared.debian_images import DEBIAN_IMAGES, manifest_path, read_manifest
from shared.job_params import GanTrainingParams, RestorationTrainingParams, TrainingParams
from shared.settings import Settings
from workers.data.attributes import colour_attributes
from workers.data.datasets import HELD_OUT_FRACTION, dataset_facts, procedural_training_data, split_held_out
from workers.data.debian_images import files_of_split, restoration_photos, tiles_of_split
from workers.models.restoration import RestorationConfig
from workers.training.checkpoint import state_from_bytes, state_to_bytes
from workers.training.creation_model import creation_card, evaluation_sets, gan_configs, gan_split
from workers.training.evaluation import evaluate_generator, quality_goals
from workers.training.gan import train_gan
from workers.training.restoration import RestorationTrainConfig, train_restoration
from workers.training.restoration_eval import evaluate_restoration
from workers.training.restoration_model import restoration_card, restoration_weights
from workers.training.upscaler import TRAINING_PHOTOS, evaluate_upscaler, train_upscaler
from workers.training.upscaler import TrainConfig as UpscalerTrainConfig
from workers.training.upscaler import evaluation_sets as upscaler_evaluation_sets

COMMAND = "make models"
EVALUATE_COMMAND = "python -m workers.training.default_models abstract --evaluate-only"
SEED = 0
# The training job's params that make the shipped creation model.
DEFAULT_CREATION_PARAMS = GanTrainingParams(model="abstract", dataset="procedural", per_style=1000, resolution=64,
                                            steps=20000, batch_size=32, seed=SEED, checkpoint_every=500,
                                            sample_every=500, eval_per_label=36)
# The shipped creation model trains in fp32 even on a CPU with bf16 units, as its weights were
# trained, so that this command reproduces its card. A bf16 run of 25,000 steps (bench/RESULTS.md,
# 2026-12-08) traded SWD and the still lifes for a lower Fréchet distance: not shipped.
CREATION_MIXED_PRECISION = False
# The training job's params that make the shipped restoration model: 6.6x a training job's images
# and 8x its steps (bench/RESULTS.md: on paintings the gain is all in by about 4,000 steps).
DEFAULT_RESTORATION_PARAMS = RestorationTrainingParams(model="restoration", dataset="procedural", per_style=120,
                                                       resolution=128, patch=64, batch_size=8, steps=8000, seed=SEED,
                                                       checkpoint_every=500, sample_every=1000)
# Photographs for the restoration model: each training picture of debian-images at this side,
# cut into tiles of the recipe's resolution (16 of 128 px), about as many as the paintings.
DEBIAN_TILE_SIDE = 512


def _machine() -> dict[str, Any]:
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__}


def _training_facts(params: TrainingParams, steps_done: int, final_losses: dict[str, float],
                    seconds: float) -> dict[str, Any]:
    """The card's "training" section: what was run, how long it took, and how to run it again."""
    return {"steps": steps_done, "batch_size": params.batch_size, "seed": params.seed, "final_losses": final_losses,
            "seconds": round(seconds), "machine": _machine(),
            "reproduce": {"command": COMMAND, "seed": SEED, "params": params.to_dict()}}


def _summary(params: TrainingParams, steps_done: int) -> str:
    return f"{steps_done:,} steps at {params.resolution} px, batch {params.batch_size}, seed {params.seed}"


def _write(name: str, weights: dict[str, torch.Tensor], card: dict[str, Any], summary: str) -> Path:
    """Weights and card of a shipped model; weights that never shipped before get the next version
    (``shared.builtin_models.release_version``, ``summary`` says what they are)."""
    folder = BUILTIN_MODELS_DIR / name
    folder.mkdir(parents=True, exist_ok=True)
    data = save_safetensors({k: v.detach().cpu().contiguous() for k, v in weights.items()})
    released = time.strftime("%Y-%m-%d", time.gmtime())
    version = release_version(name, hashlib.sha256(data).hexdigest(), summary, released)
    (folder / "weights.safetensors").write_bytes(data)
    card = {**card, "name": name, "version": version}
    (folder / "card.json").write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n")
    return folder


class Checkpoints:
    """A default model's training state in ``workdir``: an interrupted run resumes from it, and
    the seconds spent before the interruption count in the card."""

    def __init__(self, workdir: Path):
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir, self.path = workdir, workdir / "checkpoint.bin"
        self.resume = state_from_bytes(self.path.read_bytes()) if self.path.exists() else None
        self.first_step = int(self.resume["step"]) if self.resume else 0
        self.ledger = workdir / "seconds.json"  # training seconds up to each checkpoint's step
        self.seconds = json.loads(self.ledger.read_text()) if self.ledger.exists() else {}
        self.started = time.monotonic()

    def save(self, state: dict[str, Any]) -> None:
        partial = self.path.with_suffix(".partial")
        partial.write_bytes(state_to_bytes(state))
        partial.replace(self.path)
        self.total_seconds(int(state["step"]))  # so a run killed after this checkpoint still counts

    def save_samples(self, step: int, grid: Any) -> None:
        grid.save(self.workdir / f"samples-step-{step:06d}.png")

    def report(self, step: int, total: int, losses: dict[str, float]) -> None:
        if step % 100 == 0 or step == total:
            rate = (step - self.first_step) / max(time.monotonic() - self.started, 1e-6)
            print(f"step {step}/{total} " + " ".join(f"{k} {v:.3f}" for k, v in losses.items())
                  + f" ({rate:.2f} steps/s)", flush=True)

    def total_seconds(self, steps_done: int) -> float:
        """Training seconds over every run that led to ``steps_done``."""
        self.seconds[str(steps_done)] = self.seconds.get(str(self.first_step), 0.0) + time.monotonic() - self.started
        self.ledger.write_text(json.dumps(self.seconds))
        return float(self.seconds[str(steps_done)])


def evaluate_creation_model() -> Path:
    """Measure the shipped creation model's weights again, exactly as its training run measured
    them, and rewrite its card's metrics: for a metric added after the model was trained. The
    weights are not touched; the card records the command and machine of the evaluation."""
    params = DEFAULT_CREATION_PARAMS
    folder = BUILTIN_MODELS_DIR / params.model
    card = json.loads((folder / "card.json").read_text())
    data = procedural_training_data(params.per_style, params.resolution, params.seed)
    attrs = colour_attributes(data.images)
    train_idx, held_idx, fresh = gan_split(params, data)
    gan_config, _ = gan_configs(params, len(data.label_names))
    if gan_config.to_dict() != card["gan_config"]:
        raise ValueError("the shipped model was trained with another recipe: retrain it (make models)")
    real = evaluation_sets(params, data, attrs, train_idx, held_idx, fresh)
    metrics, _ = evaluate_generator(load_file(str(folder / "weights.safetensors")), gan_config, real, seed=params.seed)
    card.update(metrics=metrics, quality_goals=quality_goals(metrics),
                evaluation={"command": EVALUATE_COMMAND, "machine": _machine(), "at": time.time()})
    (folder / "card.json").write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n")
    return folder


def train_creation_model(workdir: Path, steps: int | None = None) -> Path:
    params = dataclasses.replace(DEFAULT_CREATION_PARAMS, steps=steps) if steps else DEFAULT_CREATION_PARAMS
    data = procedural_training_data(params.per_style, params.resolution, params.seed)
    attrs = colour_attributes(data.images)
    train_idx, held_idx, fresh = gan_split(params, data)
    gan_config, train_config = gan_configs(params, len(data.label_names))
    run = Checkpoints(workdir)
    result = train_gan(data.images[train_idx], data.labels[train_idx], attrs[train_idx], gan_config, train_config,
                       resume=run.resume, on_progress=run.report, save_checkpoint=run.save,
                       save_samples=run.save_samples, mixed_precision=CREATION_MIXED_PRECISION)
    total_seconds = run.total_seconds(result.steps_done)
    print("evaluating", flush=True)
    real = evaluation_sets(params, data, attrs, train_idx, held_idx, fresh)
    metrics, grid = evaluate_generator(result.g_ema_state, gan_config, real, seed=params.seed)
    grid.save(workdir / "evaluation-grid.png")
    training = {**_training_facts(params, result.steps_done, result.final_losses, total_seconds),
                "precision": result.precision}
    card = creation_card(params, gan_config, train_config, data, attrs, train_idx, real, metrics, training)
    return _write(params.model, result.g_ema_state, card,
                  f"{_summary(params, result.steps_done)}, {result.precision}, "
                  f"standing statistics over {train_config.standing_batches} batches")


@dataclass(frozen=True)
class RestorationData:
    """What the shipped restoration model learns from and is measured on."""

    train: list[np.ndarray]
    held_out_paintings: list[np.ndarray]
    photos: list[np.ndarray]  # held out: scikit-image's and debian-images'
    photo_facts: dict[str, Any]
    dataset_facts: dict[str, Any]


def restoration_data(params: RestorationTrainingParams) -> RestorationData:
    """Half paintings, half photographs: the procedural training split, and tiles of the
    debian-images corpus's training pictures (``make datasets`` installs it)."""
    data = procedural_training_data(params.per_style, params.resolution, params.seed)
    train_idx, held_idx = split_held_out(data.images, data.labels, HELD_OUT_FRACTION)
    corpus_path = manifest_path(Settings().debian_images_manifest)
    manifest = read_manifest(corpus_path)
    photo_tiles = tiles_of_split(manifest, "train", tile=params.resolution, side=DEBIAN_TILE_SIDE)
    images = list(data.images[train_idx]) + photo_tiles
    photos, photo_facts = restoration_photos(corpus_path)
    dataset = {"id": f"{params.dataset}+{DEBIAN_IMAGES}", "builtin": True, "images": len(images),
               "parts": [dataset_facts(params, data, len(held_idx)),
                         {"id": DEBIAN_IMAGES, "manifest_sha256": manifest_sha256(manifest),
                          "licence": manifest["licence"], "pictures": len(files_of_split(manifest, "train")),
                          "tiles": len(photo_tiles), "tile": params.resolution, "resized_to": DEBIAN_TILE_SIDE,
                          "held_out_pictures": len(files_of_split(manifest, "held_out"))}]}
    return RestorationData(images, list(data.images[held_idx]), photos, photo_facts, dataset)


def restoration_train_config(params: RestorationTrainingParams) -> RestorationTrainConfig:
    return RestorationTrainConfig(steps=params.steps, batch_size=params.batch_size, patch=params.patch,
                                  seed=params.seed, checkpoint_every=params.checkpoint_every,
                                  sample_every=params.sample_every)


def train_restoration_default(workdir: Path, steps: int | None = None) -> Path:
    params = dataclasses.replace(DEFAULT_RESTORATION_PARAMS, steps=steps) if steps else DEFAULT_RESTORATION_PARAMS
    data = restoration_data(params)
    model_config, train_config = RestorationConfig(), restoration_train_config(params)
    run = Checkpoints(workdir)
    result = train_restoration(data.train, model_config, train_config, resume=run.resume,
                               on_progress=run.report, save_checkpoint=run.save, save_samples=run.save_samples)
    total_seconds = run.total_seconds(result.steps_done)
    print("evaluating", flush=True)
    metrics = evaluate_restoration(result.inpainter_state, result.detector_state, result.fade_state, model_config,
                                   data.held_out_paintings, seed=params.seed, photos=data.photos)
    training = _training_facts(params, result.steps_done, result.final_losses, total_seconds)
    card = restoration_card(params, model_config, train_config, data.dataset_facts, data.photo_facts, metrics,
                            training)
    return _write(params.model, restoration_weights(result), card, _summary(params, result.steps_done))


def train_default_upscaler(steps: int | None = None) -> Path:
    config = UpscalerTrainConfig(seed=SEED, **({"steps": steps} if steps else {}))
    started = time.monotonic()
    network = train_upscaler(config, on_progress=lambda step, total, loss: print(
        f"step {step}/{total} l1 {loss:.4f}", flush=True) if step % 500 == 0 or step == total else None)
    seconds = time.monotonic() - started
    metrics = evaluate_upscaler(network, upscaler_evaluation_sets(SEED))
    card = {"task": "upscale", "architecture": "residual-espcn-2x", "upscaler_config": network.config.to_dict(),
            "factor": 2, "metrics": metrics,
            "training": {"train_config": config.to_dict(), "seconds": round(seconds), "machine": _machine(),
                         "reproduce": {"command": COMMAND, "seed": SEED}},
            "dataset": {"id": "procedural + scikit-image photos",
                        "licences": {"procedural": "generated by this service", **{
                            f"scikit-image:{name}": licence for name, licence in TRAINING_PHOTOS.items()}}},
            "created_at": time.time()}
    return _write("upscaler", network.state_dict(), card, f"{config.steps:,} steps, seed {SEED}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.training.default_models",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=["abstract", "upscaler", "restoration", "all"])
    parser.add_argument("--steps", type=int,
                        help="override the recipe's step count (a quick look, not the shipped model)")
    parser.add_argument("--workdir", type=Path, default=Path(".models-work"),
                        help="checkpoints and sample grids; a run resumes from here")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--evaluate-only", action="store_true",
                        help="abstract: measure the shipped weights again and rewrite the card's metrics")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.evaluate_only:
        if args.model != "abstract":
            parser.error("--evaluate-only measures the creation model: give abstract")
        print("wrote", evaluate_creation_model())
        return 0
    if args.model in ("upscaler", "all"):
        print("wrote", train_default_upscaler(args.steps))
    if args.model in ("abstract", "all"):
        print("wrote", train_creation_model(args.workdir / "abstract", args.steps))
    if args.model in ("restoration", "all"):
        print("wrote", train_restoration_default(args.workdir / "restoration", args.steps))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
