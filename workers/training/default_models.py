"""The default models that ship inside the package, trained by the project's own code.

    make models                                            # every default model (resumable)
    python -m workers.training.default_models abstract     # the creation model
    python -m workers.training.default_models upscaler     # the 2x upscaler

Each run writes ``shared/assets/models/<name>/weights.safetensors`` and ``card.json``. The card
records the command, the seed and the whole recipe, and the metrics measured the same way a
training job measures its model. The creation model is trained exactly as a ``training`` job on
the built-in ``procedural`` dataset with ``DEFAULT_CREATION_PARAMS`` would train it (the same
functions: ``gan_configs``, ``gan_split``, ``train_gan``, ``evaluate_generator``,
``creation_card``). Training checkpoints its whole state to ``--workdir`` every 500 steps, so an
interrupted run continues where it stopped when the command is run again (the same weights as a
run straight through: ``tests/unit/test_gan.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from shared.builtin_models import BUILTIN_MODELS_DIR
from shared.job_params import GanTrainingParams
from workers.data.attributes import colour_attributes
from workers.data.datasets import procedural_training_data
from workers.training.checkpoint import state_from_bytes, state_to_bytes
from workers.training.creation_model import creation_card, evaluation_sets, gan_configs, gan_split
from workers.training.evaluation import evaluate_generator
from workers.training.gan import train_gan
from workers.training.upscaler import TRAINING_PHOTOS, evaluate_upscaler, train_upscaler
from workers.training.upscaler import TrainConfig as UpscalerTrainConfig
from workers.training.upscaler import evaluation_sets as upscaler_evaluation_sets

COMMAND = "make models"
SEED = 0
# The training job's params that make the shipped creation model.
DEFAULT_CREATION_PARAMS = GanTrainingParams(model="abstract", dataset="procedural", per_style=1000, resolution=64,
                                            steps=10000, batch_size=32, seed=SEED, checkpoint_every=500,
                                            sample_every=500, eval_per_label=36)


def _machine() -> dict[str, Any]:
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__}


def _write(name: str, weights: dict[str, torch.Tensor], card: dict[str, Any]) -> Path:
    folder = BUILTIN_MODELS_DIR / name
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(folder / "weights.safetensors"))
    (folder / "card.json").write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n")
    return folder


def train_creation_model(workdir: Path, steps: int | None = None) -> Path:
    params = dataclasses.replace(DEFAULT_CREATION_PARAMS, steps=steps) if steps else DEFAULT_CREATION_PARAMS
    data = procedural_training_data(params.per_style, params.resolution, params.seed)
    attrs = colour_attributes(data.images)
    train_idx, held_idx, fresh = gan_split(params, data)
    gan_config, train_config = gan_configs(params, len(data.label_names))
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = workdir / "checkpoint.bin"
    resume = state_from_bytes(checkpoint.read_bytes()) if checkpoint.exists() else None
    first_step = int(resume["step"]) if resume else 0
    started = time.monotonic()

    def save(state: dict[str, Any]) -> None:
        partial = checkpoint.with_suffix(".partial")
        partial.write_bytes(state_to_bytes(state))
        partial.replace(checkpoint)

    def report(step: int, total: int, losses: dict[str, float]) -> None:
        if step % 100 == 0 or step == total:
            rate = (step - first_step) / max(time.monotonic() - started, 1e-6)
            print(f"step {step}/{total} " + " ".join(f"{k} {v:.3f}" for k, v in losses.items())
                  + f" ({rate:.2f} steps/s)", flush=True)

    result = train_gan(data.images[train_idx], data.labels[train_idx], attrs[train_idx], gan_config, train_config,
                       resume=resume, on_progress=report, save_checkpoint=save,
                       save_samples=lambda step, grid: grid.save(workdir / f"samples-step-{step:06d}.png"))
    seconds = time.monotonic() - started
    print("evaluating", flush=True)
    real = evaluation_sets(params, data, attrs, train_idx, held_idx, fresh)
    metrics, grid = evaluate_generator(result.g_ema_state, gan_config, real, seed=params.seed)
    grid.save(workdir / "evaluation-grid.png")
    previous = json.loads((workdir / "seconds.json").read_text()) if (workdir / "seconds.json").exists() else {}
    total_seconds = previous.get(str(first_step), 0.0) + seconds
    (workdir / "seconds.json").write_text(json.dumps({str(result.steps_done): total_seconds}))
    card = creation_card(params, gan_config, train_config, data, attrs, train_idx, real, metrics, {
        "steps": result.steps_done, "batch_size": params.batch_size, "seed": params.seed,
        "final_losses": result.final_losses, "seconds": round(total_seconds), "machine": _machine(),
        "reproduce": {"command": COMMAND, "seed": SEED, "params": params.to_dict()},
    })
    return _write(params.model, result.g_ema_state, {**card, "name": params.model, "version": 1})


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
            "name": "upscaler", "version": 1, "created_at": time.time()}
    return _write("upscaler", network.state_dict(), card)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.training.default_models",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=["abstract", "upscaler", "all"])
    parser.add_argument("--steps", type=int,
                        help="override the recipe's step count (a quick look, not the shipped model)")
    parser.add_argument("--workdir", type=Path, default=Path(".models-work"),
                        help="checkpoints and sample grids; a run resumes from here")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.model in ("upscaler", "all"):
        print("wrote", train_default_upscaler(args.steps))
    if args.model in ("abstract", "all"):
        print("wrote", train_creation_model(args.workdir / "abstract", args.steps))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
