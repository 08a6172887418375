"""Round trip of the smallest real job, against a raw Celery round trip.

Measured: POST /v1/jobs (style_transfer of a 64x64 upload, max_side 64), then the wait for it
to succeed as the SDK and the CLI wait, on the job's event stream (``--wait events``): wall time
from before the POST to the ``end`` event. ``--wait poll`` asks GET /v1/jobs/{id} every
``--poll-ms`` instead; on two cores those requests take CPU from the worker running the job.
Baseline: ``send_task`` of a no-op task (``bench.noop_app``) to its own queue, consumed by a plain
Celery worker started like the service's (prefork, concurrency 1), then GET of the Redis key the
task sets every ``--poll-ms``. Same Redis; the two alternate, job by job.

    python -m bench.round_trip [--jobs 30] [--wait events|poll] [--poll-ms 2]
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


def service_round_trip(api: ApiSession, body: dict[str, Any], poll_s: float | None) -> tuple[float, dict[str, float]]:
    """Seconds from POST /v1/jobs until the client knows it succeeded (from its event stream, or
    from GET every ``poll_s``), and where the time went."""
    wall, started = time.time(), time.perf_counter()
    job_id = api.submit(body)
    job = api.follow(job_id) if poll_s is None else api.wait(job_id, poll_s)
    elapsed = time.perf_counter() - started
    return elapsed, job_phases(job, wall, wall + elapsed)


def measure(args: argparse.Namespace, argv: list[str]) -> list[Figure]:
    poll_s = args.poll_ms / 1000
    service_poll_s = poll_s if args.wait == "poll" else None
    with running_stack("round-trip") as stack:
        api = ApiSession(stack.start_api(), stack.create_key("bench"))
        start_noop_worker(stack)
        start_warm_worker(stack)
        body = style_job(api.upload(photo(64)), max_side=64)
        sender, client = make_celery(stack.settings(), main="bench-sender"), redis_client(stack.settings())
        for _ in range(WARMUP_JOBS):
            raw_round_trip(sender, client, poll_s)
            service_round_trip(api, body, service_poll_s)
        raw, service, phases = [], [], []
        for _ in range(args.jobs):
            raw.append(raw_round_trip(sender, client, poll_s))
            elapsed, split = service_round_trip(api, body, service_poll_s)
            service.append(elapsed)
            phases.append(split)
        api.close()
    return figures(service, raw, phases, args, argv)


def figures(service: list[float], raw: list[float], phases: list[dict[str, float]], args: argparse.Namespace,
            argv: list[str]) -> list[Figure]:
    cmd = command(MODULE, argv)
    waited = "the service's event stream followed" if args.wait == "events" else "the service polled"
    setup = f"{args.jobs} jobs each, {waited}, the no-op's key polled every {args.poll_ms:g} ms"
    return [
        Figure(f"round trip p{q}, 64 px job", percentile(service, q) * 1000, percentile(raw, q) * 1000, "ms",
               "raw Celery no-op", higher_is_better=False, command=cmd,
               note=setup + (f"; median ms per phase: {phase_medians(phases)}" if q == 50 else ""))
        for q in (50, 95)
    ]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30, help="round trips of each kind")
    parser.add_argument("--wait", choices=["events", "poll"], default="events",
                        help="how the client waits for the service's job: its event stream, or GET every --poll-ms")
    parser.add_argument("--poll-ms", type=float, default=2.0, help="polling interval of the no-op's wait (and the "
                        "service's under --wait poll)")
    return parser.parse_args(argv)


def run(argv: list[str]) -> list[Figure]:
    return measure(parse_args(argv), argv)


if __name__ == "__main__":
    print_figures(run(sys.argv[1:]))
