"""S3 goes down in the middle of a job, before the job has read its inputs or stored its results.

The worker retries its S3 calls with backoff (``ARTFORGE_S3_RETRY_*``, shared.objects.RetryPolicy)
while keeping the job's lease, so the job stays ``running`` and is never ``succeeded`` before its
results are durable. S3 back within that budget: the same attempt stores and succeeds. S3 down for
longer: the attempt hands the job back to the queue, a later attempt finishes it. Either way the
results are downloadable afterwards and there is exactly one result set.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deploy.devstack import Stack
from shared.connections import redis_client
from shared.jobs import JobStore
from tests.chaos.test_worker_loss import STALLING, result_keys, submit_stalling_job, wait_for_stage
from tests.conftest import TEST_ENV, ApiClient, eventually

pytestmark = pytest.mark.slow


def stack_with_retries(tmp_path: Path, attempts: int, backoff_s: float, max_backoff_s: float) -> Stack:
    stack = Stack(tmp_path, env={**TEST_ENV, "ARTFORGE_S3_RETRY_ATTEMPTS": str(attempts),
                                 "ARTFORGE_S3_RETRY_BACKOFF_S": str(backoff_s),
                                 "ARTFORGE_S3_RETRY_BACKOFF_MAX_S": str(max_backoff_s)})
    stack.start_redis()
    stack.start_s3()
    stack.start_api(workers=1, threads=2)
    stack.start_worker("inference", extra_env=STALLING)  # S3 goes down while the job stalls
    return stack


@pytest.fixture
def patient_stack(tmp_path: Path) -> Iterator[Stack]:
    """Worker S3 budget: 8 tries, 0.5 s doubling to 4 s between them: about 20 s of waiting."""
    stack = stack_with_retries(tmp_path, attempts=8, backoff_s=0.5, max_backoff_s=4)
    try:
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture
def impatient_stack(tmp_path: Path) -> Iterator[Stack]:
    """Worker S3 budget: 4 tries, 1 s doubling to 4 s: 7 s of waiting per attempt, 3 attempts."""
    stack = stack_with_retries(tmp_path, attempts=4, backoff_s=1, max_backoff_s=4)
    try:
        yield stack
    finally:
        stack.stop_all()


def worker_log(stack: Stack) -> str:
    return (stack.workdir / "logs" / "worker-inference.log").read_text(errors="replace")


def wait_while_down(store: JobStore, job_id: str, done: Callable[[], bool], timeout: float = 120) -> set[str]:
    """Poll the job record until ``done()`` is true; the statuses it showed meanwhile."""
    seen: set[str] = set()

    def watched() -> bool:
        record = store.get(job_id)
        assert record is not None
        seen.add(record.status.value)
        return done()

    eventually(watched, timeout, "the S3 outage's next step")
    return seen


def assert_results_downloadable(client: ApiClient, stack: Stack, job: dict) -> None:
    assert len(job["results"]) == 1
    image = client.get(job["results"][0]["url"])
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert client.get(job["results"][0]["provenance_url"]).status_code == 200
    # One result set: the image, its C2PA sidecar and its provenance record, nothing from a failed try.
    assert [k.rsplit("/", 1)[1] for k in result_keys(stack, job["id"])] == ["0.c2pa", "0.png", "0.provenance.json"]


def test_job_rides_out_a_short_s3_outage_and_succeeds_once_s3_is_back(patient_stack: Stack) -> None:
    stack = patient_stack
    client = ApiClient(f"http://127.0.0.1:{stack.api_port}", stack.create_key("s3down"))
    store = JobStore(redis_client(stack.settings()))
    job_id = submit_stalling_job(client)
    wait_for_stage(client, job_id, "stalled")
    stack.stop("s3")
    down_at = time.monotonic()

    # After the stall the attempt reads its input, finds S3 down and keeps trying.
    seen = wait_while_down(store, job_id, lambda: "S3 unavailable for" in worker_log(stack))
    retrying_at = time.monotonic()
    seen |= wait_while_down(store, job_id, lambda: time.monotonic() > retrying_at + 3)
    assert seen == {"running"}, seen
    stack.restart_s3()
    down_s, retrying_s = time.monotonic() - down_at, time.monotonic() - retrying_at

    job = client.wait(job_id, timeout=120)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 1  # the same attempt stored its results
    assert_results_downloadable(client, stack, job)
    tries = worker_log(stack).count("S3 unavailable for")
    print(f"S3 down {down_s:.1f}s during the job, the last {retrying_s:.1f}s of it with the attempt "
          f"retrying ({tries} retried S3 calls logged); succeeded in attempt 1")


def test_job_outlasting_the_retry_budget_is_requeued_and_finishes_later(impatient_stack: Stack) -> None:
    stack = impatient_stack
    client = ApiClient(f"http://127.0.0.1:{stack.api_port}", stack.create_key("s3down"))
    store = JobStore(redis_client(stack.settings()))
    job_id = submit_stalling_job(client)
    wait_for_stage(client, job_id, "stalled")
    stack.stop("s3")
    down_at = time.monotonic()

    # Attempt 1 spends its budget, hands the job back, and attempt 2 starts (S3 still down).
    seen = wait_while_down(store, job_id, lambda: (r := store.get(job_id)) is not None and r.attempts >= 2)
    assert "requeued:storage_unavailable" in worker_log(stack)
    stack.restart_s3()
    down_s = time.monotonic() - down_at
    assert seen <= {"running", "queued"}, seen

    job = client.wait(job_id, timeout=180)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2, job
    assert_results_downloadable(client, stack, job)
    print(f"S3 down {down_s:.1f}s, past attempt 1's retry budget; the job succeeded in attempt {job['attempts']}")
