"""Submit throughput and p99 latency of POST /v1/jobs, against a minimal peer and a bare endpoint.

Measured: 16 client threads, each with its own keep-alive connection, POST a valid
style_transfer job as fast as they can. Baselines: the same client against
``bench.minimal_peer_app`` (auth, validation, the upload's ownership check, a job record,
``send_task``: what any job service must do) and against ``bench.bare_flask_app`` (parse JSON,
``send_task``), both on the same Redis and served by gunicorn with the same workers and threads.
No worker consumes, so the queue only grows. The servers take turns (``--rounds``); each round
starts with a warm-up that is not counted.

    python -m bench.api_submit [--duration 8] [--warmup 1] [--clients 16] [--rounds 2]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bench.common import (
    ApiSession,
    Figure,
    command,
    percentile,
    photo,
    print_figures,
    running_stack,
    style_job,
    wait_until,
)
from deploy.devstack import Program, Stack, free_port

MODULE = "bench.api_submit"
GUNICORN_WORKERS = 2
GUNICORN_THREADS = 4


@dataclass
class Load:
    """Latencies (s) of the requests that completed inside the measured window."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    def add(self, other: Load) -> None:
        self.seconds += other.seconds
        self.latencies += other.latencies
        self.errors += other.errors

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds


def connect(url: str, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)


def client_loop(url: str, body: bytes, headers: dict[str, str], measure_from: float, stop_at: float,
                out: Load) -> None:
    """POST until ``stop_at`` on one keep-alive connection; count what ends in the window."""
    parts = urlsplit(url)
    conn = connect(url, 30)
    while (started := time.perf_counter()) < stop_at:
        try:
            conn.request("POST", parts.path, body, headers)
            response = conn.getresponse()
            response.read()
            ok = response.status == 202
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = connect(url, 30)
            ok = False
        ended = time.perf_counter()
        if measure_from <= ended <= stop_at:
            if ok:
                out.latencies.append(ended - started)
            else:
                out.errors += 1
    conn.close()


def run_load(url: str, body: bytes, headers: dict[str, str], clients: int, warmup: float,
             duration: float) -> Load:
    """``clients`` threads for ``warmup + duration`` seconds; only ``duration`` is counted."""
    measure_from = time.perf_counter() + warmup
    stop_at = measure_from + duration
    parts = [Load() for _ in range(clients)]
    threads = [threading.Thread(target=client_loop, args=(url, body, headers, measure_from, stop_at, part))
               for part in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = Load()
    for part in parts:
        total.add(part)
    total.seconds = duration
    return total


def post_once(url: str, body: bytes, headers: dict[str, str]) -> bool:
    parts = urlsplit(url)
    conn = connect(url, 5)
    try:
        conn.request("POST", parts.path, body, headers)
        return conn.getresponse().status == 202
    except OSError:
        return False
    finally:
        conn.close()


def start_baseline_app(stack: Stack, module: str) -> str:
    """Serve ``module``'s ``create_app()`` like the API is served; returns its submit URL."""
    port = free_port()
    stack.spawn(Program(module.rsplit(".", 1)[-1], [
        sys.executable, "-m", "gunicorn", "--workers", str(GUNICORN_WORKERS), "--threads", str(GUNICORN_THREADS),
        "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "5", f"{module}:create_app()"]))
    return f"http://127.0.0.1:{port}/v1/jobs"


def measure(args: argparse.Namespace, argv: list[str]) -> list[Figure]:
    with running_stack("api-submit") as stack:
        base = stack.start_api(workers=GUNICORN_WORKERS, threads=GUNICORN_THREADS)
        key = stack.create_key("bench")
        api = ApiSession(base, key)
        body = json.dumps(style_job(api.upload(photo(64)), max_side=64)).encode()
        api.close()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        targets = {"service": base + "/v1/jobs", "peer": start_baseline_app(stack, "bench.minimal_peer_app"),
                   "bare": start_baseline_app(stack, "bench.bare_flask_app")}
        for name, url in targets.items():
            wait_until(lambda url=url: post_once(url, body, headers), 60, f"{name} submit endpoint")

        loads = {name: Load() for name in targets}
        per_round = args.duration / args.rounds
        for _ in range(args.rounds):
            for name in ("bare", "peer", "service"):
                loads[name].add(run_load(targets[name], body, headers, args.clients, args.warmup, per_round))
    return figures(loads, args, argv)


PEER = "minimal peer: auth, validation, ownership, record, send_task"


def figures(loads: dict[str, Load], args: argparse.Namespace, argv: list[str]) -> list[Figure]:
    cmd = command(MODULE, argv)
    service, peer, bare = loads["service"], loads["peer"], loads["bare"]
    setup = (f"{args.clients} keep-alive clients, {args.duration:g} s per server in {args.rounds} rounds, "
             f"gunicorn {GUNICORN_WORKERS} workers x {GUNICORN_THREADS} threads")
    errors = ", ".join(f"{name} {load.errors}" for name, load in loads.items() if load.errors)

    def p(load: Load, q: int) -> float:
        return percentile(load.latencies, q) * 1000

    return [
        Figure("submit throughput", service.throughput, peer.throughput, "req/s", PEER, higher_is_better=True,
               command=cmd, goal=">= 0.8", note=setup + (f"; errors: {errors}" if errors else "")),
        Figure("submit p99 latency", p(service, 99), p(peer, 99), "ms", PEER, higher_is_better=False, command=cmd,
               goal="<= 2", note=f"p50 {p(service, 50):.1f} ms vs {p(peer, 50):.1f} ms"),
        Figure("submit throughput vs bare endpoint", service.throughput, bare.throughput, "req/s",
               "bare Flask + send_task", higher_is_better=True, command=cmd,
               note=f"p99 {p(service, 99):.1f} ms vs {p(bare, 99):.1f} ms"),
    ]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per server (all rounds)")
    parser.add_argument("--warmup", type=float, default=1.0, help="uncounted seconds before each round")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="the servers take turns this many times")
    return parser.parse_args(argv)


def run(argv: list[str]) -> list[Figure]:
    return measure(parse_args(argv), argv)


if __name__ == "__main__":
    print_figures(run(sys.argv[1:]))
