"""Throughput of many small jobs with the finalize stage in the background, against inline.

Measured: ``--jobs`` style transfers of one ``--side`` px upload, all submitted at once to one
inference worker (prefork, concurrency 1, as deployed); jobs/s from the first job's start to the
last one's finish, from the job records. The worker marks, signs and stores each job's results on
its finalize thread while it runs the next job (``workers.finalizing``, the default). Baseline:
the same worker with ``ARTFORGE_FINALIZE_BACKLOG=0``, each job stored and settled before the next
starts (the service before the stage). Same stack; the two alternate, round by round, each with a
fresh worker warmed by two jobs.

    python -m bench.finalize_throughput [--jobs 40] [--side 256] [--rounds 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime

from bench.common import ApiSession, Figure, command, median, photo, print_figures, running_stack, style_job
from deploy.devstack import Stack

MODULE = "bench.finalize_throughput"
WARMUP_JOBS = 2
BACKLOG = {"background": "4", "inline": "0"}


def jobs_per_second(stack: Stack, api: ApiSession, body: dict, jobs: int, mode: str) -> float:
    """A fresh worker finalizing ``mode``, warmed up, then ``jobs`` jobs at once."""
    name = f"worker-{mode}"
    stack.start_worker("inference", name=name, extra_env={"ARTFORGE_FINALIZE_BACKLOG": BACKLOG[mode]})
    try:
        for _ in range(WARMUP_JOBS):
            api.follow(api.submit(body))
        ids = [api.submit(body) for _ in range(jobs)]
        records = [api.follow(job_id) for job_id in ids]
    finally:
        stack.stop(name)
    started = min(datetime.fromisoformat(r["started_at"]).timestamp() for r in records)
    finished = max(datetime.fromisoformat(r["finished_at"]).timestamp() for r in records)
    return jobs / (finished - started)


def measure(args: argparse.Namespace, argv: list[str]) -> list[Figure]:
    rates: dict[str, list[float]] = {mode: [] for mode in BACKLOG}
    with running_stack("finalize-throughput") as stack:
        api = ApiSession(stack.start_api(), stack.create_key("bench"))
        body = style_job(api.upload(photo(args.side)), max_side=args.side)
        for round_index in range(args.rounds):
            order = sorted(BACKLOG) if round_index % 2 else sorted(BACKLOG, reverse=True)
            for mode in order:
                started = time.monotonic()
                rates[mode].append(jobs_per_second(stack, api, body, args.jobs, mode))
                print(f"round {round_index + 1}, {mode}: {rates[mode][-1]:.2f} jobs/s "
                      f"({time.monotonic() - started:.0f} s with the worker's start)", flush=True)
        api.close()
    return [Figure(f"jobs/s, {args.jobs} style transfers at {args.side} px, finalize in the background",
                   median(rates["background"]), median(rates["inline"]), "jobs/s", "finalize inline",
                   higher_is_better=True, command=command(MODULE, argv), goal=">= 1.0",
                   note=f"one worker; medians of {args.rounds} rounds: background "
                        f"{', '.join(f'{r:.2f}' for r in rates['background'])}, inline "
                        f"{', '.join(f'{r:.2f}' for r in rates['inline'])}")]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40, help="jobs submitted at once, per round and mode")
    parser.add_argument("--side", type=int, default=256, help="the upload's side and the jobs' max_side")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; each runs both modes")
    return parser.parse_args(argv)


def run(argv: list[str]) -> list[Figure]:
    return measure(parse_args(argv), argv)


if __name__ == "__main__":
    print_figures(run(sys.argv[1:]))
