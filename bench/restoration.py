"""Restoration at `--side` px (512 by default): every operation, learned and classical, and the whole service.

Measured: milliseconds per ``--side`` px image of each operation as the job's pipeline runs
it (``workers.pipelines.restoration.restore`` with one operation, in this process), and of a
learned inpainting job through the whole service (POST until its event stream says succeeded).
Baseline: the bare learned inpainter call (``inpaint_learned`` on the whole image) on the
same damaged image and mask, in the same run. The learned model is a short training job of
the service itself (``--train-steps``; only speed is measured here, quality is in the model
card and the tests). All runners alternate, run by run; medians of ``--runs`` are reported.

    python -m bench.restoration [--runs 5] [--side 512] [--train-steps 20]
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

from bench.common import ApiSession, Figure, command, median, print_figures, running_stack

TENANT = "bench"
MODULE = "bench.restoration"
MODEL = "bench-restoration"
WARMUP_RUNS = 2
# (figure name, the job's params): each runs through the pipeline function.
OPERATIONS: list[tuple[str, dict[str, Any]]] = [
    ("inpaint, learned", {"operations": ["inpaint"], "method": "learned"}),
    ("inpaint, telea", {"operations": ["inpaint"], "method": "classical", "inpaint_method": "telea"}),
    ("inpaint, navier_stokes", {"operations": ["inpaint"], "method": "classical", "inpaint_method": "navier_stokes"}),
    ("inpaint, biharmonic", {"operations": ["inpaint"], "method": "classical", "inpaint_method": "biharmonic"}),
    ("auto_mask, learned", {"operations": ["defade"], "method": "learned", "auto_mask": True}),
    ("auto_mask, classical", {"operations": ["defade"], "method": "classical", "auto_mask": True}),
    ("defade, classical", {"operations": ["defade"], "method": "classical"}),
    ("denoise", {"operations": ["denoise"], "method": "classical"}),
]


def test_image(side: int) -> tuple[np.ndarray, np.ndarray]:
    """A procedural painting with simulated holes and scratches, and the mask of them."""
    from workers.data.damage import DamageConfig, simulate_damage
    from workers.data.procedural import make_dataset

    images, _ = make_dataset(1, side, seed=3)
    damaged = simulate_damage(images[0], np.random.default_rng(0), DamageConfig())
    return damaged.image, damaged.mask


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def train_model(stack: Any, admin: ApiSession, steps: int) -> None:
    stack.start_worker("training")
    job_id = admin.submit({"kind": "training", "params": {
        "target": "restoration", "model": MODEL, "steps": steps, "per_style": 8,
        "checkpoint_every": steps, "sample_every": steps}})
    admin.wait(job_id, poll_s=0.5, timeout=900)
    stack.stop("worker-training")


def pipeline_runners(stack: Any, image: np.ndarray, mask: np.ndarray) -> dict[str, Callable[[], object]]:
    """The pipeline function per operation, with the service's registry (model cached after the first)."""
    from shared.connections import Stores
    from shared.job_params import RestorationParams
    from workers.job_context import JobContext
    from workers.models.builders import restoration_model_from_card
    from workers.pipelines.restoration import restore
    from workers.registry import ModelRegistry
    from workers.restoration.learned import defade_learned, inpaint_learned

    stores = Stores.from_settings(stack.settings())
    registry = ModelRegistry(stores.objects, stores.models, stores.settings.bucket_models)
    ctx = JobContext.local("cpu", models=registry.for_tenant(TENANT))
    inputs = {"image": Image.fromarray(image), "mask": Image.fromarray((mask * 255).astype(np.uint8))}
    model = registry.for_tenant(TENANT).resolve(MODEL)
    name, version = model.name, model.version
    # A short training run's networks seldom all beat the classical methods, so jobs would not use
    # them all; their speed does not depend on their training, and is measured here directly.
    every = restoration_model_from_card({**model.card, "learned_operations": ["inpaint", "detect", "defade"]},
                                        registry.weights(model))
    inpainter, fade_corrector = every.inpainter, every.fade_corrector
    assert inpainter is not None and fade_corrector is not None
    runners: dict[str, Callable[[], object]] = {
        "bare": lambda: inpaint_learned(inpainter, image, mask, "cpu"),
        "defade, learned (fade corrector)": lambda: defade_learned(fade_corrector, image, "cpu"),
    }
    for title, params in OPERATIONS:
        full = RestorationParams.from_dict({**params, **({"model": f"{name}@{version}"}
                                                         if params["method"] == "learned" else {})})
        runners[title] = functools.partial(restore, inputs, full, lambda *a: None, lambda: None, ctx)
    return runners


def measure(args: argparse.Namespace, argv: list[str]) -> list[Figure]:
    image, mask = test_image(args.side)
    with running_stack("restoration") as stack:
        admin = ApiSession(stack.start_api(), stack.create_key(TENANT, admin=True))
        train_model(stack, admin, args.train_steps)
        stack.start_worker("inference")
        runners = pipeline_runners(stack, image, mask)
        body = {"kind": "restoration", "params": {"operations": ["inpaint"], "method": "learned", "model": MODEL},
                "inputs": {"image": admin.upload(Image.fromarray(image)),
                           "mask": admin.upload(Image.fromarray((mask * 255).astype(np.uint8)))}}
        runners["service: inpaint, learned"] = lambda: admin.follow(admin.submit(body))
        times: dict[str, list[float]] = {name: [] for name in runners}
        for run in range(WARMUP_RUNS + args.runs):
            for name, run_once in runners.items():
                seconds = timed(run_once)
                if run >= WARMUP_RUNS:
                    times[name].append(seconds)
        admin.close()
    bare = median(times.pop("bare")) * 1000
    cmd = command(MODULE, argv)
    return [Figure(f"restoration {args.side} px: {name}", median(values) * 1000, bare, "ms",
                   "bare learned inpainter call", higher_is_better=False, command=cmd,
                   goal="<= 1.3" if name.startswith("service") else "",
                   note=f"median of {args.runs}; {torch.get_num_threads()} threads here" if name.startswith(
                       "service") else "")
            for name, values in times.items()]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--train-steps", type=int, default=20)
    return parser.parse_args(argv)


def run(argv: list[str]) -> list[Figure]:
    return measure(parse_args(argv), argv)


if __name__ == "__main__":
    print_figures(run(sys.argv[1:]))
