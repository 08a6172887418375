"""Does a perceptual loss help the inpainter? The shipped restoration model's data and recipe
(``workers.training.default_models``: procedural paintings and debian-images tiles), trained for
``--steps`` without and with ``perceptual_weight`` (workers.training.restoration), each measured as
its model card would be: on the held-out paintings and photos, 32-64 px holes, the served fill's
pooled hole PSNR, mean hole SSIM and perceptual distance against the best classical method's.
Needs the corpus (``make datasets``).

    python -m bench.restoration_perceptual [--steps 1500] [--weight 0.1] [--threads 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import torch

from workers.models.restoration import RestorationConfig
from workers.training.default_models import DEFAULT_RESTORATION_PARAMS, restoration_data, restoration_train_config
from workers.training.restoration import train_restoration
from workers.training.restoration_eval import evaluate_restoration


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--weight", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    params = dataclasses.replace(DEFAULT_RESTORATION_PARAMS, steps=args.steps)
    data = restoration_data(params)
    print(f"{len(data.train)} training images; held out: {len(data.held_out_paintings)} paintings, "
          f"{len(data.photos)} photo tiles", flush=True)
    print("| perceptual weight | set | served fill: pooled hole PSNR / hole SSIM / perceptual distance "
          "| best classical: the same | margin (dB) | training s |")
    print("|---|---|---|---|---|---|")
    for weight in (0.0, args.weight):
        config = dataclasses.replace(restoration_train_config(params), perceptual_weight=weight)
        started = time.monotonic()
        result = train_restoration(data.train, RestorationConfig(), config)
        seconds = time.monotonic() - started
        metrics = evaluate_restoration(result.inpainter_state, result.detector_state, result.fade_state,
                                       RestorationConfig(), data.held_out_paintings, seed=params.seed,
                                       photos=data.photos)
        for name, key in (("paintings", "inpainting"), ("photos", "inpainting_photos")):
            scores = metrics[key]
            best = scores["best_classical"]

            def cell(method: str, scores: dict = scores) -> str:
                row = scores[method]
                return f"{row['pooled_hole_psnr']:.2f} / {row['hole_ssim']:.3f} / {row['perceptual_distance']:.3f}"

            print(f"| {weight} | {name} | {cell('learned')} | {best}: {cell(best)} | "
                  f"{scores['learned_minus_best_classical_pooled_hole_psnr']:+.2f} | {seconds:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
