"""Restoration quality: the learned inpainter against every classical method, on 32-64 px holes.

Trains the restoration networks exactly as a ``training`` job with ``target: restoration``
does (``train_restoration`` with the default configs, on the built-in procedural set at 128
px, the job's own held-out split), then runs the model card's comparison
(``workers.training.restoration_eval.compare_inpainting``) on the held-out paintings and on
the held-out photos (``workers.data.photos``). Baseline: the best classical method in the
same run (Telea, Navier-Stokes, biharmonic or pull-push, whichever scores highest). Also
de-fading, the learned fade corrector against the classical ``defade``, as the model card
measures it (``compare_defading``), and the classical denoising (non-local means) on the same
images (whole-image PSNR against the clean original; baseline: the faded or noisy input).
Prints markdown tables for bench/RESULTS.md.
Takes ~4 minutes on two cores at the defaults.

    python -m bench.restoration_quality [--steps 1000] [--per-style 30] [--seed 0] [--threads 2]
                                        [--inpainter-lr 1e-3]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
import torch

from bench.common import command, machine
from workers.data.damage import DamageConfig, simulate_damage
from workers.data.datasets import HELD_OUT_FRACTION, split_held_out
from workers.data.photos import photo_tiles
from workers.data.procedural import make_dataset
from workers.metrics.restoration import psnr
from workers.models.builders import load_fade_corrector, load_inpainter
from workers.models.restoration import RestorationConfig
from workers.restoration import classical
from workers.training.restoration import RestorationTrainConfig, train_restoration
from workers.training.restoration_eval import (
    CLASSICAL_INPAINTING,
    FADE_STREAM,
    GOOD_DEFADE_PSNR,
    PHOTO_STREAM,
    compare_defading,
    compare_inpainting,
)

MODULE = "bench.restoration_quality"
RESOLUTION = 128
METHODS = ("damaged", *CLASSICAL_INPAINTING, "network_only", "learned")

STREAMS = {"held-out paintings": [0], "held-out photos": [PHOTO_STREAM]}  # the model card's damage streams
NOISE_STREAM = FADE_STREAM + 1  # the denoising table's noise: a stream the model card does not use


def defading_table(reports: dict[str, dict[str, Any]]) -> str:
    """Mean whole-image PSNR of faded images, classical and learned de-fading, per image set."""
    lines = [f"| images | faded | classical | learned | learned minus classical | >= {GOOD_DEFADE_PSNR:.0f} dB "
             "(classical / learned) | unfaded, after (classical / learned) |", "|---" * 7 + "|"]
    for name, r in reports.items():
        lines.append(f"| {name} ({r['images']}) | {r['faded']['psnr']:.2f} dB | {r['classical']['psnr']:.2f} dB "
                     f"| **{r['learned']['psnr']:.2f} dB** | {r['learned_minus_classical_psnr']:+.2f} dB "
                     f"| {r['classical']['share_at_goal']:.0%} / {r['learned']['share_at_goal']:.0%} "
                     f"| {r['classical']['unfaded_psnr']:.1f} / {r['learned']['unfaded_psnr']:.1f} dB |")
    return "\n".join(lines)


def denoising_table(sets: dict[str, list[np.ndarray]], seed: int) -> str:
    """Mean whole-image PSNR before and after non-local-means denoising, per image set."""
    lines = ["| operation | images | noisy (mean PSNR) | denoised (mean PSNR) |", "|---" * 4 + "|"]
    for name, cleans in sets.items():
        rng = np.random.default_rng([seed, *STREAMS[name], NOISE_STREAM])
        noisy = [simulate_damage(c, rng, DamageConfig.noise_only()).image for c in cleans]
        before = np.mean([psnr(c, d) for c, d in zip(cleans, noisy, strict=True)])
        after = np.mean([psnr(c, classical.denoise(d)) for c, d in zip(cleans, noisy, strict=True)])
        lines.append(f"| denoise (non-local means) | {name} ({len(cleans)}) | {before:.2f} dB | **{after:.2f} dB** |")
    return "\n".join(lines)


def measure(args: argparse.Namespace) -> tuple[dict[str, dict[str, Any]], float, str, str]:
    torch.set_num_threads(args.threads)
    images, labels = make_dataset(args.per_style, RESOLUTION, args.seed)
    train_idx, held_idx = split_held_out(images, labels, HELD_OUT_FRACTION)
    config = RestorationTrainConfig(steps=args.steps, seed=args.seed, inpainter_lr=args.inpainter_lr,
                                    checkpoint_every=max(args.steps, 1), sample_every=max(args.steps, 1))
    started = time.perf_counter()
    result = train_restoration(list(images[train_idx]), RestorationConfig(), config)
    train_s = time.perf_counter() - started
    inpainter = load_inpainter(result.inpainter_state, RestorationConfig())
    fade_corrector = load_fade_corrector(result.fade_state, RestorationConfig())
    # the same damage streams as the model card's evaluation with this seed
    sets = {"held-out paintings": list(images[held_idx]), "held-out photos": photo_tiles()}
    reports = {name: compare_inpainting(inpainter, cleans, "large_holes",
                                        np.random.default_rng([args.seed, *STREAMS[name]]))
               for name, cleans in sets.items()}
    defading = {name: compare_defading(fade_corrector, cleans,
                                       np.random.default_rng([args.seed, *STREAMS[name], FADE_STREAM]))
                for name, cleans in sets.items()}
    return reports, train_s, defading_table(defading), denoising_table(sets, args.seed)


def table(reports: dict[str, dict[str, Any]]) -> str:
    lines = ["| images | " + " | ".join(METHODS) + " | best classical | learned minus it |",
             "|---" * (len(METHODS) + 3) + "|"]
    for name, report in reports.items():
        cells = [f"{report[m]['pooled_hole_psnr']:.2f} / {report[m]['hole_ssim']:.2f}" for m in METHODS]
        margin = report["learned_minus_best_classical_pooled_hole_psnr"]
        lines.append(f"| {name} ({report['images']}) | " + " | ".join(cells)
                     + f" | {report['best_classical']} | **{margin:+.2f} dB** |")
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=RestorationTrainConfig.steps)
    parser.add_argument("--per-style", type=int, default=30, help="procedural images per style (20%% held out)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the result depends on it)")
    parser.add_argument("--inpainter-lr", type=float, default=RestorationTrainConfig.inpainter_lr)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    reports, train_s, defading, denoising = measure(args)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"pooled hole PSNR (dB) / mean hole SSIM on 32-64 px holes; trained {args.steps} steps in {train_s:.0f} s "
          f"({torch.get_num_threads()} torch threads, {machine()}, {when}); `{command(MODULE, argv)}`")
    print(table(reports))
    print()
    print("de-fading, mean whole-image PSNR of faded images (and of unfaded ones after each method):")
    print(defading)
    print()
    print(denoising)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
