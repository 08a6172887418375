"""Creation through the whole service, against the bare generator forward.

Measured: images/s of a creation job of ``--count`` images (POST /v1/jobs until its event
stream says it succeeded, as the SDK waits): queue, model lookup (cached after the first job), the
generator forward, PNG encoding, S3 writes of every image and its provenance record.
Also shown: the job's pipeline function alone (no queue, provenance or storage).
Baseline: ``workers.models.gan.generate`` of the same model, same labels, attributes and
seed, in this process. The model is the default one every tenant can create from (``abstract``,
shipped inside the package), at its own resolution. The three alternate, run by run, after a
warm-up, each run starting once the worker is idle (a job's follow-up tasks, such as indexing
its results, would otherwise share the CPU with the next bare forward); medians of ``--runs``
are reported.

    python -m bench.creation [--runs 5] [--count 64]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import torch

from bench.common import (
    ApiSession,
    Figure,
    command,
    job_phases,
    median,
    phase_medians,
    print_figures,
    running_stack,
    wait_until_workers_idle,
)

TENANT = "bench"
MODULE = "bench.creation"
MODEL = "abstract"  # the shipped default model
WARMUP_RUNS = 2


def bare_generate(stack: Any, job: dict[str, Any], count: int) -> tuple[Any, int]:
    """The same model, labels, attributes and seed as the service's job, through generate(); and
    the model's resolution."""
    import numpy as np

    from shared.connections import Stores
    from workers.models.builders import generator_from_card
    from workers.models.gan import generate
    from workers.registry import ModelRegistry

    stores = Stores.from_settings(stack.settings())
    registry = ModelRegistry(stores.objects, stores.models, stores.settings.bucket_models)
    model = registry.for_tenant(TENANT).resolve(job["params"]["model"])
    generator, card = registry.load(model, generator_from_card), model.card
    details = job["metadata"]
    labels = np.array([card["labels"].index(label) for label in details["labels"]], dtype=np.int64)
    attrs = np.array(details["attributes"], dtype=np.float32)
    assert len(labels) == count
    return lambda: generate(generator, labels, attrs, seed=job["params"]["seed"]), int(card["resolution"])


def pipeline_function(stack: Any, body: dict[str, Any]) -> Any:
    """The job's pipeline function with the service's registry (model cached after the first call):
    model lookup, conditions, the forward, conversion to images; no queue, provenance or storage."""
    from shared.connections import Stores
    from shared.job_params import CreationParams
    from workers.job_context import JobContext
    from workers.pipelines.creation import create
    from workers.registry import ModelRegistry

    stores = Stores.from_settings(stack.settings())
    registry = ModelRegistry(stores.objects, stores.models, stores.settings.bucket_models)
    ctx = JobContext.local("cpu", models=registry.for_tenant(TENANT))
    params = CreationParams.from_dict(body["params"])
    return lambda: create({}, params, lambda *a: None, lambda: None, ctx)


def measure(args: argparse.Namespace, argv: list[str]) -> list[Figure]:
    body = {"kind": "creation", "params": {"model": MODEL, "count": args.count, "seed": 7}}
    times: dict[str, list[float]] = {"bare": [], "pipeline": [], "service": []}
    phases: list[dict[str, float]] = []
    with running_stack("creation") as stack:
        admin = ApiSession(stack.start_api(), stack.create_key(TENANT, admin=True))
        stack.start_worker("inference")
        first = admin.follow(admin.submit(body))
        bare, side = bare_generate(stack, job_metadata(admin, first), args.count)
        pipeline = pipeline_function(stack, body)
        for run in range(WARMUP_RUNS + args.runs):
            wait_until_workers_idle(stack)  # the last job's follow-up tasks must not share the baseline's CPU
            started = time.perf_counter()
            bare()
            bare_s = time.perf_counter() - started
            started = time.perf_counter()
            pipeline()
            pipeline_s = time.perf_counter() - started
            submitted, started = time.time(), time.perf_counter()
            job = admin.follow(admin.submit(body))
            service_s = time.perf_counter() - started
            if run >= WARMUP_RUNS:
                times["bare"].append(bare_s)
                times["pipeline"].append(pipeline_s)
                times["service"].append(service_s)
                phases.append(job_phases(job, submitted, time.time()))
        admin.close()
    service, pipeline, bare_rate = (args.count / median(times[name]) for name in ("service", "pipeline", "bare"))
    running = median([p["running"] for p in phases]) - median(times["pipeline"])
    return [
        Figure(f"creation {args.count} images at {side} px via service", service, bare_rate, "img/s",
               "bare generator forward", higher_is_better=True, command=command(MODULE, argv), goal=">= 0.3",
               note=(f"median of {args.runs}; bare forward {median(times['bare']) * 1000:.1f} ms, "
                     f"service {median(times['service']) * 1000:.0f} ms per job, of which "
                     f"~{running * 1000 / args.count:.1f} ms per image marking, signing and storing it "
                     f"(`python -m bench.profile_job creation` splits it); {torch.get_num_threads()} threads here; "
                     f"service ms per phase: {phase_medians(phases)}")),
        Figure(f"creation {args.count} images at {side} px, pipeline function", pipeline, bare_rate, "img/s",
               "bare generator forward", higher_is_better=True, command=command(MODULE, argv),
               note="model lookup (cached), conditions, the forward and conversion to images; no storage"),
    ]


def job_metadata(api: ApiSession, job: dict[str, Any]) -> dict[str, Any]:
    """The job with what its pipeline chose (labels, attributes), from the first provenance record."""
    provenance = api.http.get(job["results"][0]["provenance_url"], timeout=30).json()
    return {**job, "metadata": provenance["output"]["details"]}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--count", type=int, default=64)
    return parser.parse_args(argv)


def run(argv: list[str]) -> list[Figure]:
    return measure(parse_args(argv), argv)


if __name__ == "__main__":
    print_figures(run(sys.argv[1:]))
