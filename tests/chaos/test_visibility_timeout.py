"""A job that runs longer than the broker's visibility timeout is never run twice at once.

The stack's visibility timeout is cut to a few seconds (``ARTFORGE_VISIBILITY_TIMEOUT_S``, with
kombu's unacked sweep every second), so Redis hands the still-running job's message to the second
worker while the first one works on it. The job's lease must refuse that copy: one attempt, one
worker, one result set, and the refused duplicate in a worker's log.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.devstack import Stack
from shared.connections import redis_client
from shared.jobs import Job, JobStore
from tests.chaos.test_worker_loss import result_keys, submit_stalling_job
from tests.conftest import ApiClient, eventually, stack_on

pytestmark = pytest.mark.slow

# Short enough that several sweeps pass while the job runs: it stalls (workers.faults) for 5x as long.
VISIBILITY_S = 2
STALLING = {"ARTFORGE_FAULT_INJECTION": f"stall:style_transfer:{5 * VISIBILITY_S}"}


@pytest.fixture
def short_visibility_stack(servers: Stack, tmp_path: Path) -> Iterator[Stack]:
    stack = stack_on(servers, tmp_path, {"ARTFORGE_VISIBILITY_TIMEOUT_S": str(VISIBILITY_S)})
    try:
        stack.start_api(workers=1, threads=2)
        stack.start_worker("inference", name="worker-a", extra_env=STALLING)
        stack.start_worker("inference", name="worker-b", extra_env=STALLING)
        yield stack
    finally:
        stack.stop_all()


def refused_deliveries(stack: Stack, job_id: str) -> list[str]:
    """Log lines, of any of the stack's workers, where a delivery of the job was refused because
    another attempt held its lease."""
    lines = []
    for log in (stack.workdir / "logs").glob("worker-*.log"):
        lines += [line for line in log.read_text(errors="replace").splitlines()
                  if job_id in line and "not started" in line and "(leased)" in line]
    return lines


def test_job_longer_than_visibility_timeout_runs_once(short_visibility_stack: Stack) -> None:
    stack = short_visibility_stack
    client = ApiClient(f"http://127.0.0.1:{stack.api_port}", stack.create_key("long"))
    job_id = submit_stalling_job(client)

    store = JobStore(redis_client(stack.settings()))
    seen: set[tuple[int, str]] = set()  # (attempts, worker) of the record at each poll
    started = time.monotonic()

    def ended() -> Job | None:
        record = store.get(job_id)
        assert record is not None
        seen.add((record.attempts, record.worker))
        return record if record.status.is_terminal else None

    record = eventually(ended, 300, "the job ended")
    ran_s = time.monotonic() - started

    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    assert ran_s > 3 * VISIBILITY_S, f"the job took {ran_s:.1f}s: too short to outlive the visibility timeout"
    # One attempt, by one worker process, from start to finish.
    assert job["attempts"] == 1
    assert {worker for attempts, worker in seen if attempts} == {record.worker}, seen
    assert len(result_keys(stack, job_id)) == 3  # one image, its C2PA sidecar, its provenance record
    refused = refused_deliveries(stack, job_id)
    # The broker did hand the message out again while the job ran, and the lease refused it.
    assert refused, "no early redelivery happened: the test proved nothing"
    print(f"job ran {ran_s:.1f}s against a {VISIBILITY_S}s visibility timeout; "
          f"{len(refused)} early redelivery(ies) refused by the lease")
