"""Which change to the creation recipe makes better works? The shipped creation model's data and
recipe (``workers.training.default_models``: the nine procedural styles at 64 px, batch 32, seed 0),
trained for ``--steps`` with one variant of the networks or the recipe, and measured exactly as its model card is
(``evaluate_generator``: Fréchet distance and SWD against their real-vs-real floors, both style
classifiers, within-style diversity). Run one variant per process (``--threads 1`` each, two at a
time on 2 cores) and compare the rows; the sample grid and the generator's weights (to measure
again later) are written beside the table.

    python -m bench.creation_recipe --variant shipped --steps 2000 --threads 1
    python -m bench.creation_recipe --variant ndf64 --steps 2000 --threads 1
    python -m bench.creation_recipe --variant projected --steps 2000 --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from workers.data.attributes import colour_attributes
from workers.data.datasets import procedural_training_data
from workers.training.creation_model import evaluation_sets, gan_configs, gan_split
from workers.training.default_models import DEFAULT_CREATION_PARAMS
from workers.training.evaluation import evaluate_generator
from workers.training.gan import train_gan

# Changes to compare, each against the shipped recipe: (GanConfig fields, TrainConfig fields).
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "shipped": ({}, {}),
    "ndf64": ({"ndf": 64}, {}),
    "ngf32": ({"ngf": 32}, {}),
    "ngf32-ndf64": ({"ngf": 32, "ndf": 64}, {}),
    "projected": ({}, {"projected_weight": 1.0}),  # a projected discriminator beside the pixel one
    "projected-light": ({}, {"projected_weight": 0.25}),  # the same, a quarter of the weight
    "projected-tenth": ({}, {"projected_weight": 0.1}),  # a tenth of the weight
    "projected-diverse": ({}, {"projected_weight": 0.25, "diversity_weight": 4.0}),  # a stronger mode-seeking term
    "projected-tenth-diverse": ({}, {"projected_weight": 0.1, "diversity_weight": 4.0}),  # both
    "ttur": ({}, {"lr_g": 1e-4, "lr_d": 4e-4}),  # SAGAN's and BigGAN's two learning rates: D's 4x G's
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="shipped")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(".bench-work/creation-recipe"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    params = dataclasses.replace(DEFAULT_CREATION_PARAMS, steps=args.steps)
    data = procedural_training_data(params.per_style, params.resolution, params.seed)
    attrs = colour_attributes(data.images)
    train_idx, held_idx, fresh = gan_split(params, data)
    shipped_config, train_config = gan_configs(params, len(data.label_names))
    network_change, recipe_change = VARIANTS[args.variant]
    gan_config = dataclasses.replace(shipped_config, **network_change)
    train_config = dataclasses.replace(train_config, **recipe_change)
    started = time.monotonic()
    result = train_gan(data.images[train_idx], data.labels[train_idx], attrs[train_idx], gan_config, train_config,
                       on_progress=lambda step, total, losses: print(
                           f"{args.variant} step {step}/{total} ({step / (time.monotonic() - started):.2f} steps/s)",
                           flush=True) if step % 250 == 0 else None)
    seconds = time.monotonic() - started
    real = evaluation_sets(params, data, attrs, train_idx, held_idx, fresh)
    metrics, grid = evaluate_generator(result.g_ema_state, gan_config, real, seed=params.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    grid.save(args.out / f"{args.variant}-{args.steps}.png")
    save_file(result.g_ema_state, str(args.out / f"{args.variant}-{args.steps}.safetensors"))
    accuracy, diversity = metrics["conditional_accuracy"], metrics["diversity"]["generated"]
    layout = metrics["diversity_layout"]["generated"]
    print("| variant | steps | FD / floor | style FD / floor | SWD / floor | CNN / real | features / real "
          "| diversity mean, min | layout diversity mean, min | training s |")
    print(f"| {args.variant} {network_change or ''}{recipe_change or ''} | {args.steps} | "
          f"{metrics['frechet_distance']['ratio_to_floor']:.2f} | "
          f"{metrics['frechet_distance_style']['ratio_to_floor']:.2f} | {metrics['swd_ratio_to_floor']:.2f} | "
          f"{accuracy['cnn'] / accuracy['cnn_real']:.3f} | {accuracy['features'] / accuracy['features_real']:.3f} | "
          f"{diversity['mean']:.2f}, {diversity['min']:.2f} | {layout['mean']:.2f}, {layout['min']:.2f} | "
          f"{seconds:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
