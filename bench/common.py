"""What the benchmarks share: a throwaway stack, test images, an API session, statistics,
and the ``Figure`` every benchmark reports (a value, its baseline from the same run, the ratio).
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from PIL import Image

from client.sdk import ArtForgeClient
from deploy.devstack import Stack

# The service's worker and the bare model calls both run on the CPU, so they compare.
# One tenant submits as fast as it can and no worker drains the queue: rate limits stay on (their
# cost is part of the measurement) but far above the load, and the active-jobs quota is off.
BENCH_ENV = {"ARTFORGE_DEVICE": "cpu", "ARTFORGE_RATE_LIMIT_DEFAULT": "100000000/minute",
             "ARTFORGE_RATE_LIMIT_SUBMIT": "100000000/minute", "ARTFORGE_MAX_ACTIVE_JOBS_PER_TENANT": "0"}
STYLE = "bold-ink"
BENCH_RIGHTS = {"requester_holds_rights": "true"}
TERMINAL = ("succeeded", "failed", "canceled")


# -- the stack ---------------------------------------------------------------------------


@contextmanager
def running_stack(name: str) -> Iterator[Stack]:
    """Redis and S3 of a fresh stack in a temp folder; every process is stopped at the end.
    The folder is removed after a clean run and kept (for its logs) after a failure."""
    workdir = Path(tempfile.mkdtemp(prefix=f"artforge-bench-{name}-"))
    stack = Stack(workdir, env=dict(BENCH_ENV))
    clean = False
    try:
        stack.start_redis()
        stack.start_s3()
        yield stack
        clean = True
    finally:
        stack.stop_all()
        if clean:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"bench {name}: logs kept in {workdir / 'logs'}", file=sys.stderr)


def start_warm_worker(stack: Stack) -> None:
    """Start the service's inference worker and wait until it has rendered the style
    thumbnails (the task it sends itself on start), so it is idle with its model loaded."""
    from shared.objects import ObjectStore
    from shared.styles import NAMED_STYLES

    stack.start_worker("inference")
    store, bucket = ObjectStore(stack.settings()), stack.settings().bucket_results
    wait_until(lambda: len(store.list_keys(bucket, "_styles/")) >= len(NAMED_STYLES), 300,
               "the worker's style thumbnails", interval=0.5)


def wait_until_workers_idle(stack: Stack, timeout: float = 120.0) -> None:
    """Until no task waits in the broker or is held by a worker (late acks: a running task's
    message stays unacked), so what a job left behind (its results' indexing, on the maintenance
    queue) does not run while a baseline is timed."""
    from shared.connections import redis_client
    from shared.contract import QUEUE_MAINTENANCE
    from shared.queue import JOB_QUEUES, UNACKED_KEY, queue_lists

    client = redis_client(stack.settings())
    lists = queue_lists((*JOB_QUEUES, QUEUE_MAINTENANCE))

    def idle() -> bool:
        with client.pipeline(transaction=False) as pipe:
            for name in lists:
                pipe.llen(name)
            pipe.hlen(UNACKED_KEY)
            return not any(pipe.execute())

    wait_until(idle, timeout, "the workers idle", interval=0.02)


def wait_until(check: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Call ``check`` until it returns something truthy; that value is returned."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s")


# -- images ------------------------------------------------------------------------------


def photo(side: int) -> Image.Image:
    """NASA's astronaut portrait (public domain, shipped by scikit-image), side x side."""
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((side, side), Image.Resampling.LANCZOS)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# -- the API -----------------------------------------------------------------------------


def style_job(upload_id: str, max_side: int) -> dict[str, Any]:
    """The body of a named-style job on one upload."""
    return {"kind": "style_transfer", "inputs": {"content": upload_id},
            "params": {"style": STYLE, "max_side": max_side}}


class ApiSession:
    """One keep-alive ``requests`` session holding an API key."""

    def __init__(self, base: str, key: str):
        self.base, self.key = base, key
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {key}"

    def upload(self, image: Image.Image) -> str:
        """Upload with a rights declaration (the bench's images are public domain or made by it), so
        any upload may be a style reference or an image to restore."""
        response = self.http.post(self.base + "/v1/uploads", files={"file": ("photo.png", png_bytes(image))},
                                  data=BENCH_RIGHTS, timeout=60)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def submit(self, body: dict[str, Any]) -> str:
        response = self.http.post(self.base + "/v1/jobs", json=body, timeout=30)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def follow(self, job_id: str, timeout: float = 300.0) -> dict[str, Any]:
        """Follow the job's event stream (``GET /v1/jobs/{id}/events``, as the SDK and the CLI wait)
        until its ``end`` event, whose data is the final record; it must have succeeded. Unlike
        polling, it costs the API nothing while the job runs."""
        client = ArtForgeClient(self.base, self.key, session=self.http)
        for event in client.job_events(job_id, timeout=timeout):
            if event["event"] == "end":
                job: dict[str, Any] = event["data"]
                assert job["status"] == "succeeded", job
                return job
        raise TimeoutError(f"the event stream of job {job_id} ended without its end event")

    def wait(self, job_id: str, poll_s: float, timeout: float = 300.0) -> dict[str, Any]:
        """Poll GET /v1/jobs/{id} every ``poll_s`` until the job ends; it must succeed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job: dict[str, Any] = self.http.get(f"{self.base}/v1/jobs/{job_id}", timeout=30).json()
            if job["status"] in TERMINAL:
                assert job["status"] == "succeeded", job
                return job
            time.sleep(poll_s)
        raise TimeoutError(f"job {job_id} did not finish in {timeout:.0f}s")

    def close(self) -> None:
        self.http.close()


def job_phases(job: dict[str, Any], submitted: float, seen: float) -> dict[str, float]:
    """Where a job's wall time went (seconds), from its record's timestamps and the client's
    ``time.time()`` before the POST and when it saw the job succeeded: submit (until the
    record exists), queued (until a worker took it), running (until finished), seen (polling)."""
    created, begun, finished = (datetime.fromisoformat(job[k]).timestamp()
                                for k in ("created_at", "started_at", "finished_at"))
    return {"submit": created - submitted, "queued": begun - created, "running": finished - begun,
            "seen": seen - finished}


def phase_medians(phases: list[dict[str, float]]) -> str:
    return ", ".join(f"{name} {median([p[name] for p in phases]) * 1000:.1f}" for name in phases[0])


# -- statistics --------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), interpolating linearly between the nearest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no samples")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: list[float]) -> float:
    return percentile(values, 50)


# -- reporting ---------------------------------------------------------------------------


@dataclass
class Figure:
    """One measured figure and its baseline from the same run; ratio = value / baseline."""

    name: str
    value: float
    baseline: float
    unit: str
    baseline_name: str
    higher_is_better: bool
    command: str
    goal: str = ""
    note: str = ""
    machine: str = field(default_factory=lambda: machine())
    measured_at: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))

    @property
    def ratio(self) -> float:
        return self.value / self.baseline

    def goal_verdict(self) -> str:
        """The goal with "(met)" or "(not met)" for goals of the form ">= x" or "<= x"; "-" for none."""
        if not self.goal:
            return "-"
        op, _, bound = self.goal.partition(" ")
        try:
            limit = float(bound)
        except ValueError:
            return self.goal
        met = self.ratio >= limit if op == ">=" else self.ratio <= limit if op == "<=" else None
        return self.goal if met is None else f"{self.goal} ({'met' if met else 'not met'})"

    def line(self) -> str:
        better = "higher" if self.higher_is_better else "lower"
        goal = f", goal {self.goal_verdict()}" if self.goal else ""
        return (f"{self.name}: {self.value:.4g} {self.unit} vs {self.baseline_name} {self.baseline:.4g} "
                f"{self.unit} -> ratio {self.ratio:.3f} ({better} is better{goal})")


def command(module: str, argv: list[str]) -> str:
    """The command line that runs ``module`` alone with ``argv``."""
    return " ".join(["python -m", module, *map(shlex.quote, argv)])


def machine() -> str:
    """CPU model from /proc/cpuinfo and the number of cores this process may use."""
    model = "unknown CPU"
    try:
        for row in Path("/proc/cpuinfo").read_text().splitlines():
            if row.startswith("model name"):
                model = row.partition(":")[2].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores"


def print_figures(figures: list[Figure]) -> None:
    for figure in figures:
        print(figure.line())
        if figure.note:
            print(f"    {figure.note}")


def bucket_times(stats: Iterable[Any], buckets: list[tuple[str, str, str]]) -> dict[str, float]:
    """Seconds per bucket of a yappi profile, summed over calls (``ttot``: inclusive time). A bucket
    is (title, file fragment, function name as yappi names it, or a prefix ending in ".")."""
    totals: dict[str, float] = {}
    for stat in stats:
        for title, fragment, name in buckets:
            matches = stat.name.startswith(name) if name.endswith(".") else stat.name == name
            if fragment in stat.module and matches:
                totals[title] = totals.get(title, 0.0) + stat.ttot
                break
    return totals


def add_profiler_arguments(parser: Any) -> None:
    """The options both profilers take: which clock, and the full function list."""
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                        help="cpu: what each step costs the machine; wall: how long it was waited for")
    parser.add_argument("--top", action="store_true", help="also list every function by inclusive time")
