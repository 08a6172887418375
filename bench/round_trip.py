"""Round trip of the smallest real job, against a raw Celery round trip.

Measured: POST /v1/jobs (style_transfer of a 64x64 upload, max_side 64), then GET
/v1/jobs/{id} every 2 ms until it has succeeded: wall time from before the POST to the GET
that says so. Baseline: ``send_task`` of a no-op task (``bench.noop_app``) to its own queue,
consumed by a plain Celery worker started like the service's (prefork, concurrency 1), then
GET of the Redis key the task sets every 2 ms. Same Redis; the two alternate, job by job.

    python -m bench.round_trip [--jobs 30] [--poll-ms 2]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from typing import Any

import redis
from celery import Celery

from bench.common import (
    ApiSession,
    Figure,
    command,
    job_phases,
    percentile,
    phase_medians,
    photo,
    print_figures,
    running_stack,
    start_warm_worker,
    style_job,
)
from bench.noop_app import DONE_PREFIX, NOOP_QUEUE, NOOP_TASK
from deploy.devstack import Program, Stack
from shared.connections import redis_client
from shared.queue import make_celery

MODULE = "bench.round_trip"
WARMUP_JOBS = 3


def start_noop_worker(stack: Stack) -> None:
    stack.spawn(Program("worker-noop", [
        sys.executable, "-m", "celery", "-A", "bench.noop_app", "worker", "-Q", NOOP_QUEUE, "--concurrency", "1",
        "--prefetch-multiplier", "1", "--pool", "prefork", "-n", f"noop-{uuid.uuid4().hex[:6]}@%h",
        "--without-gossip", "--without-mingle", "-l", "INFO"]))


def raw_round_trip(sender: Celery, client: redis.Redis, poll_s: float, timeout: float = 60.0) -> float:
    """Seconds from send_task of the no-op task until its Redis key is seen."""
    key = uuid.uuid4().hex
    started = time.perf_counter()
    sender.send_task(NOOP_TASK, args=[key], queue=NOOP_QUEUE)
    while not client.exists(DONE_PREFIX + key):
        if time.perf_counter() - started > timeout:
            raise TimeoutError("the no-op task did not run; see the worker-noop log")
        time.sleep(poll_s)
    return time.perf_counter() - started


def service_round_trip(api: ApiSession, body: dict[str, Any], poll_s: float) -> tuple[float, dict[str, float]]:
    """Seconds from POST /v1/jobs until GET says succeeded, and where the time went."""
    wall, started = time.time(), time.perf_counter()
    job = api.wait(api.submit(body), poll_s)
    elapsed = time.perf_counter() - started
    return elapsed, job_phases(job, wall, wall + elapsed)


def measure(args: argparse.Namespace, argv: list[str]) -> list[Figure]:
    poll_s = args.poll_ms / 1000
    with running_stack("round-trip") as stack:
        api = ApiSession(stack.start_api(), stack.create_key("bench"))
        start_noop_worker(stack)
        start_warm_worker(stack)
        body = style_job(api.upload(photo(64)), max_side=64)
        sender, client = make_celery(stack.settings(), main="bench-sender"), redis_client(stack.settings())
        for _ in range(WARMUP_JOBS):
            raw_round_trip(sender, client, poll_s)
            service_round_trip(api, body, poll_s)
        raw, service, phases = [], [], []
        for _ in range(args.jobs):
            raw.append(raw_round_trip(sender, client, poll_s))
            elapsed, split = service_round_trip(api, body, poll_s)
            service.append(elapsed)
            phases.append(split)
        api.close()
    return figures(service, raw, phases, args, argv)


def figures(service: list[float], raw: list[float], phases: list[dict[str, float]], args: argparse.Namespace,
            argv: list[str]) -> list[Figure]:
    cmd = command(MODULE, argv)
    setup = f"{args.jobs} jobs each, polled every {args.poll_ms:g} ms"
    return [
        Figure(f"round trip p{q}, 64 px job", percentile(service, q) * 1000, percentile(raw, q) * 1000, "ms",
               "raw Celery no-op", higher_is_better=False, command=cmd,
               note=setup + (f"; median ms per phase: {phase_medians(phases)}" if q == 50 else ""))
        for q in (50, 95)
    ]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30, help="round trips of each kind")
    parser.add_argument("--poll-ms", type=float, default=2.0, help="polling interval of both waits")
    return parser.parse_args(argv)


def run(argv: list[str]) -> list[Figure]:
    return measure(parse_args(argv), argv)


if __name__ == "__main__":
    print_figures(run(sys.argv[1:]))
