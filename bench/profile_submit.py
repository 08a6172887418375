"""Where the time of ``POST /v1/jobs`` goes: many submissions of one valid job under a profiler,
split by what they spend it on (issue 22: "profile first").

A fresh stack's Redis and S3; the API in this process (``api.create_app`` with the stack's
settings, driven by Flask's test client: no HTTP server, so what is measured is the app's own
work); no worker consumes. One upload, then ``--count`` submissions of a named-style job on it
(each with an Idempotency-Key, as the SDK sends), after ``--warmup`` unprofiled ones. First, without
the profiler, the service and the minimal peer (``bench.minimal_peer_app``, the same test client)
take ``--rounds`` turns of ``--count`` submissions each: their ratio is the most the served ratio
can reach, since HTTP serving adds the same to both. Then, for the service, it reports
the mean per submission by bucket (inclusive CPU or wall time, from yappi) and the Redis
commands each submission sends (from Redis's own counter).

    python -m bench.profile_submit [--count 300] [--clock cpu|wall] [--top]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import uuid
from typing import Any

import yappi

from bench.common import BENCH_RIGHTS, add_profiler_arguments, bucket_times, photo, png_bytes, running_stack, style_job

MODULE = "bench.profile_submit"
# (title, file fragment, function name as yappi names it, or a prefix ending in "."); a bucket
# may include another's time where its title says "incl.".
BUCKETS: list[tuple[str, str, str]] = [
    ("the whole request (Flask, incl. everything below)", "flask/app.py", "Flask.full_dispatch_request"),
    ("the view, from body parsing on (incl. what follows)", "webargs/core.py", "wrapper"),
    ("auth: API key lookup (Redis)", "api/auth.py", "KeyStore.verify"),
    ("flask-limiter's hook (a tenant's submission: skipped)", "flask_limiter/", "Limiter._check_request_limit"),
    ("body schema (webargs + marshmallow, incl. building the schema)", "webargs/core.py", "FlaskParser.parse"),
    ("kind validation incl. upload ownership (Redis)", "api/job_kinds.py", "validate_job"),
    ("admission: rate limits, key, quota, record, first event (one script)", "shared/admission.py",
     "Admissions.admit"),
    ("enqueue: send_task + lost-message index", "shared/queue.py", "enqueue_job"),
    ("response: job to JSON", "api/representations.py", "job_to_json"),
    ("request log line and metrics", "api/observability.py", "_finish"),
    ("Redis: every command's round trip", "redis/client.py", "Redis.execute_command"),
]


def commands_processed(redis: Any) -> int:
    return int(redis.info("stats")["total_commands_processed"])


def profile(args: argparse.Namespace) -> None:
    from api import create_app
    from bench import minimal_peer_app
    from shared.connections import redis_client

    with running_stack("profile-submit") as stack:
        key = stack.create_key("bench")
        app = create_app(stack.settings())
        client = app.test_client()
        peer = minimal_peer_app.create_app(stack.settings()).test_client()
        headers = {"Authorization": f"Bearer {key}"}
        uploaded = client.post("/v1/uploads", headers=headers, content_type="multipart/form-data",
                               data={"file": (io.BytesIO(png_bytes(photo(256))), "photo.png"), **BENCH_RIGHTS})
        assert uploaded.status_code == 201, uploaded.get_data(as_text=True)
        body = style_job(uploaded.get_json()["id"], max_side=256)

        def submit(to: Any = client) -> None:
            response = to.post("/v1/jobs", json=body, headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
            assert response.status_code == 202, response.get_data(as_text=True)

        redis = redis_client(stack.settings())
        apps = {"service": client, "peer": peer}
        seconds, sent = dict.fromkeys(apps, 0.0), dict.fromkeys(apps, 0)
        for _ in range(args.warmup):
            for app_client in apps.values():
                submit(app_client)
        for _ in range(args.rounds):  # the two apps take turns, unprofiled
            for name, app_client in apps.items():
                before = commands_processed(redis)
                started = time.perf_counter()
                for _ in range(args.count):
                    submit(app_client)
                seconds[name] += time.perf_counter() - started
                sent[name] += commands_processed(redis) - before - 1  # less the INFO that read the counter
        n = args.count * args.rounds
        print(f"unprofiled, in turns: the service {seconds['service'] / n * 1000:.2f} ms and "
              f"{sent['service'] / n:.1f} Redis commands (a script's own counted) a submission; the minimal peer "
              f"(bench.minimal_peer_app) {seconds['peer'] / n * 1000:.2f} ms and {sent['peer'] / n:.1f}: ratio "
              f"(peer time / service time, as throughput) {seconds['peer'] / seconds['service']:.2f}")
        before = commands_processed(redis)
        yappi.set_clock_type(args.clock)
        started = time.perf_counter()
        yappi.start()
        for _ in range(args.count):
            submit()
        yappi.stop()
        wall = time.perf_counter() - started
        profiled_sent = commands_processed(redis) - before - 1  # less the INFO that read the counter
    stats = yappi.get_func_stats()
    per = 1000 / args.count
    print(f"{args.count} profiled submissions of the service: {wall * per:.2f} ms each; "
          f"{profiled_sent / args.count:.1f} Redis commands each (a script's own commands counted)")
    for title, bucket_s in sorted(bucket_times(stats, BUCKETS).items(), key=lambda item: -item[1]):
        print(f"  {title:<52} {bucket_s * per:7.3f} ms")
    print(f"  ({args.clock} time per submission, inclusive: a bucket contains the Redis round trips it waits for)")
    if args.top:
        stats.sort("ttot").print_all(columns={0: ("name", 70), 1: ("ncall", 8), 3: ("ttot", 8)})


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3, help="unprofiled turns of service and peer")
    add_profiler_arguments(parser)
    profile(parser.parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
