"""Redis restarts (AOF on) with hundreds of jobs queued and no worker running: none is lost.

While Redis is down the API answers 503 with Retry-After (and /healthz stays up); it recovers by
itself once Redis is back, without a restart of its own. Then two worker processes drain the
queue and every job succeeds, once, with its stored result.

The jobs are the cheapest kind that still runs a model and stores a full result (image, C2PA
sidecar, provenance record): creation of one 32 px image with a narrow (ngf 8) untrained generator.
`make test` queues 200 of them; `make test-load` queues 1,000 (``ARTFORGE_CHAOS_RESTART_JOBS``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import pytest
import redis
import requests

from deploy.devstack import Stack
from shared.connections import redis_client
from shared.contract import MAX_PRIORITY, QUEUE_INFERENCE
from shared.jobs import JobStore
from shared.objects import ObjectStore
from tests.chaos.test_poison_and_oom import publish_untrained_gan
from tests.conftest import TEST_ENV, ApiClient, eventually

pytestmark = pytest.mark.slow

JOBS = int(os.environ.get("ARTFORGE_CHAOS_RESTART_JOBS", "200"))
WORKERS = int(os.environ.get("ARTFORGE_CHAOS_RESTART_WORKERS", "4"))


def queued_messages(client: redis.Redis) -> int:
    names = [QUEUE_INFERENCE, *(f"{QUEUE_INFERENCE}:{p}" for p in range(1, MAX_PRIORITY + 1))]
    return sum(cast(int, client.llen(name)) for name in names)


def statuses(store: JobStore, job_ids: list[str]) -> dict[str, int]:
    with store.redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hget(store.job_key(job_id), "status")
        found = pipe.execute()
    counts: dict[str, int] = {}
    for status in found:
        counts[str(status)] = counts.get(str(status), 0) + 1
    return counts


def assert_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0


@pytest.fixture
def burst_stack(tmp_path: Path) -> Iterator[Stack]:
    """Redis, S3 and the API, with no rate limit or active-jobs cap in the way of one tenant's burst."""
    stack = Stack(tmp_path, env={**TEST_ENV, "ARTFORGE_RATE_LIMIT_DEFAULT": "", "ARTFORGE_RATE_LIMIT_SUBMIT": "",
                                 "ARTFORGE_MAX_ACTIVE_JOBS_PER_TENANT": "0",
                                 # Several workers share the cores: one torch thread each.
                                 "ARTFORGE_TORCH_THREADS": "1"})
    try:
        stack.start_redis()
        stack.start_s3()
        stack.start_api(workers=1, threads=8)
        yield stack
    finally:
        stack.stop_all()


def test_redis_restart_with_hundreds_of_queued_jobs_loses_none(burst_stack: Stack) -> None:
    stack = burst_stack
    client = ApiClient(f"http://127.0.0.1:{stack.api_port}", stack.create_key("burst"))
    publish_untrained_gan(stack, "burst", "tiny", ngf=8)
    body = {"kind": "creation", "params": {"model": "tiny", "count": 1, "seed": 7}}

    started = time.monotonic()
    with requests.Session() as session, ThreadPoolExecutor(8) as pool:
        session.headers["Authorization"] = f"Bearer {client.key}"
        responses = list(pool.map(lambda _: session.post(client.base + "/v1/jobs", json=body, timeout=60),
                                  range(JOBS)))
    submit_s = time.monotonic() - started
    assert [r.status_code for r in responses] == [202] * JOBS
    job_ids = [r.json()["id"] for r in responses]
    r = redis_client(stack.settings())
    store = JobStore(r)
    assert queued_messages(r) == JOBS and statuses(store, job_ids) == {"queued": JOBS}

    stack.stop("redis")  # SIGTERM: Redis flushes its AOF and exits
    down_at = time.monotonic()
    assert_unavailable(client.submit(body))
    assert_unavailable(client.get(f"/v1/jobs/{job_ids[0]}"))
    assert_unavailable(requests.get(client.base + "/readyz", timeout=10))
    assert requests.get(client.base + "/healthz", timeout=10).status_code == 200
    stack.start_redis()  # same port, folder and arguments: the AOF is loaded again
    restart_s = time.monotonic() - down_at

    # The API recovers by itself (its connections reconnect), and nothing was lost.
    eventually(lambda: requests.get(client.base + "/readyz", timeout=10).status_code == 200, 30,
               "the API recovered after Redis came back", interval=0.2)
    assert client.get(f"/v1/jobs/{job_ids[-1]}").json()["status"] == "queued"
    assert queued_messages(r) == JOBS and statuses(store, job_ids) == {"queued": JOBS}

    drain_started = time.monotonic()
    for index in range(WORKERS):
        stack.start_worker("inference", name=f"worker-{index}")
    def drained() -> bool:
        counts = statuses(store, job_ids)
        assert set(counts) <= {"queued", "running", "succeeded"}, counts
        return counts.get("succeeded", 0) == JOBS

    eventually(drained, 900, "every job succeeded", interval=1)
    drain_s = time.monotonic() - drain_started

    jobs = [store.get(job_id) for job_id in job_ids]
    assert all(job is not None and job.attempts == 1 and len(job.results) == 1 for job in jobs)
    settings = stack.settings()
    images = [k for k in ObjectStore(settings).list_keys(settings.bucket_results, "burst/") if k.endswith("/0.png")]
    assert len(images) == JOBS
    # Jobs that joined another's batch still have their own message, which finds nothing to do.
    eventually(lambda: queued_messages(r) == 0, 120, "the joined jobs' messages consumed", interval=1)
    print(f"{JOBS} jobs: submitted in {submit_s:.1f}s ({JOBS / submit_s:.0f}/s); Redis down and back in "
          f"{restart_s:.1f}s; drained by {WORKERS} workers in {drain_s:.1f}s ({JOBS / drain_s:.1f} jobs/s)")
