"""Restoration quality against training length: does the inpainter reach the 1.5 dB goal with more?

Trains the inpainter alone, as ``train_restoration`` trains it (the same network, batches,
damage and loss; RestorationTrainConfig's defaults) but for ``--steps`` (16x a training job's
default) on more procedural images (``--per-style``, 200: ~965 after the held-out split), at a
constant learning rate that falls linearly to zero over the last quarter. At steps 1k, 2k, 4k,
8k, 12k and the last it runs the model card's comparison on the same held-out sets and damage
as ``bench.restoration_quality`` (the 35 held-out paintings of its dataset, 16 photo tiles),
pooled hole PSNR on 32-64 px holes. Baseline: the best classical method in the same run.
``--photos`` makes half of every batch crops of the photographs that the installed packages
carry besides the held-out ones (scikit-image's, scikit-learn's two sample images), at three
scales: does a little photo data help on photos? Prints one JSON line per evaluation.
One thread takes about an hour at the defaults.

    python -m bench.restoration_learning_curve [--steps 16000] [--per-style 200] [--photos] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
import torch
from PIL import Image

from bench.common import command, machine
from bench.restoration_quality import RESOLUTION, STREAMS
from workers.data.datasets import HELD_OUT_FRACTION, split_held_out
from workers.data.photos import HELD_OUT_PHOTOS, photo_tiles
from workers.data.procedural import make_dataset
from workers.models.builders import load_inpainter
from workers.models.restoration import InpaintingNet, RestorationConfig, composite
from workers.training.restoration import (
    RestorationTrainConfig,
    damaged_batch,
    inpainting_losses,
    mask_tensor,
    random_crop,
    to_tensor,
)
from workers.training.restoration_eval import compare_inpainting

MODULE = "bench.restoration_learning_curve"
EVALUATE_AT = (1000, 2000, 4000, 8000, 12000)
DECAY_SHARE = 0.25  # the last quarter of the steps: the learning rate falls linearly to zero
# Photographs in the installed packages that are not held out (grey ones as RGB), and their sides.
TRAINING_PHOTOS = ("camera", "brick", "grass", "gravel", "clock", "coins", "moon", "cell", "hubble_deep_field",
                   "immunohistochemistry", "retina", "colorwheel", "page", "text")
PHOTO_SIDES = (160, 256, 384)
BATCH_STREAM = 9  # the batches are drawn from default_rng([seed, BATCH_STREAM])


def training_photos() -> list[np.ndarray]:
    """scikit-learn's two sample photos and TRAINING_PHOTOS, each at PHOTO_SIDES px (shorter side)."""
    from skimage import data
    from sklearn.datasets import load_sample_images  # installed with sentence-transformers

    assert not set(TRAINING_PHOTOS) & set(HELD_OUT_PHOTOS)
    pictures = list(load_sample_images().images)
    for name in TRAINING_PHOTOS:
        pixels = getattr(data, name)()
        pictures.append(np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels[..., :3])
    scaled = []
    for pixels in pictures:
        height, width = pixels.shape[:2]
        for side in PHOTO_SIDES:
            k = side / min(height, width)
            size = (max(64, round(width * k)), max(64, round(height * k)))
            scaled.append(np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS)))
    return scaled


def evaluate(inpainter: InpaintingNet, sets: dict[str, list[np.ndarray]], seed: int) -> dict[str, Any]:
    """Pooled hole PSNR of the classical fills, the network alone and the served fill, per set."""
    model = load_inpainter({k: v.detach().clone() for k, v in inpainter.state_dict().items()}, inpainter.config)
    row: dict[str, Any] = {}
    for name, cleans in sets.items():
        report = compare_inpainting(model, cleans, "large_holes", np.random.default_rng([seed, *STREAMS[name]]))
        row[name] = {method: report[method]["pooled_hole_psnr"]
                     for method in ("telea", "navier_stokes", "biharmonic", "network_only", "learned")}
        row[name]["served_minus_best_classical"] = report["learned_minus_best_classical_pooled_hole_psnr"]
    return row


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tc = RestorationTrainConfig()
    held_images, held_labels = make_dataset(30, RESOLUTION, args.seed)  # bench.restoration_quality's held-out set
    _, held = split_held_out(held_images, held_labels, HELD_OUT_FRACTION)
    images, labels = make_dataset(args.per_style, RESOLUTION, args.seed)
    train_idx, _ = split_held_out(images, labels, HELD_OUT_FRACTION)  # the same hash: no held-out image trains
    paintings = [images[i] for i in train_idx]
    photos = training_photos() if args.photos else []
    sets = {"held-out paintings": list(held_images[held]), "held-out photos": photo_tiles()}
    print(json.dumps({"training_paintings": len(paintings), "training_photos": len(photos),
                      "command": command(MODULE, sys.argv[1:]), "machine": machine()}), flush=True)

    inpainter = InpaintingNet(RestorationConfig())
    optimizer = torch.optim.Adam(inpainter.parameters(), lr=tc.inpainter_lr, betas=tc.betas)
    rng = np.random.default_rng([args.seed, BATCH_STREAM])
    damage, device = tc.damage_config, torch.device("cpu")
    half = tc.batch_size // 2
    batch_sources = [(paintings, half), (photos, tc.batch_size - half)] if photos else [(paintings, tc.batch_size)]
    started, evaluating_s = time.perf_counter(), 0.0
    for step in range(1, args.steps + 1):
        decay_from = (1 - DECAY_SHARE) * args.steps
        scale = 1.0 if step < decay_from else (args.steps - step) / (DECAY_SHARE * args.steps)
        for group in optimizer.param_groups:
            group["lr"] = tc.inpainter_lr * scale
        crops = [random_crop(pool[i], tc.patch, rng) for pool, count in batch_sources
                 for i in rng.integers(len(pool), size=count)]
        _, mask_np = damaged_batch(crops, rng, damage)
        clean, mask = to_tensor(np.stack(crops), device), mask_tensor(mask_np, device)
        raw = inpainter.predict(clean, mask)
        loss_l1, loss_pyramid = inpainting_losses(raw, composite(raw, clean, mask), clean, mask, tc)
        loss = loss_l1 + tc.pyramid_weight * loss_pyramid
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step in EVALUATE_AT or step == args.steps:
            evaluation_started = time.perf_counter()
            train_s = evaluation_started - started - evaluating_s
            inpainter.eval()
            row = {"step": step, "train_s": round(train_s), **evaluate(inpainter, sets, args.seed)}
            inpainter.train()
            print(json.dumps(row), flush=True)
            evaluating_s += time.perf_counter() - evaluation_started


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=16 * RestorationTrainConfig.steps)
    parser.add_argument("--per-style", type=int, default=200, help="procedural training images per style")
    parser.add_argument("--photos", action="store_true", help="half of every batch from photos (see the docstring)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the result depends on it)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
