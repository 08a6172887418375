"""The training worker is killed mid-run; the job resumes from its last checkpoint."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator

import pytest

from deploy.devstack import Stack
from tests.conftest import TEST_ENV, ApiClient

pytestmark = pytest.mark.slow

STEPS, CHECKPOINT_EVERY = 90, 15


@pytest.fixture
def training_stack(tmp_path) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    stack = Stack(tmp_path, env=dict(TEST_ENV))
    try:
        stack.start_redis()
        stack.start_s3()
        stack.start_api(workers=1, threads=2)
        stack.start_beat()
        yield stack
    finally:
        stack.stop_all()


def current_step(job: dict) -> int:
    match = re.match(r"step (\d+)/", job["progress"]["message"] or "")
    return int(match.group(1)) if match else 0


def test_killed_training_worker_resumes_from_its_checkpoint(training_stack: Stack) -> None:
    admin = ApiClient(f"http://127.0.0.1:{training_stack.api_port}", training_stack.create_key("lab", admin=True))
    training_stack.start_worker("training", name="trainer-1")
    job_id = admin.submit({"kind": "training", "params": {
        "target": "gan", "model": "resumable", "resolution": 32, "steps": STEPS, "per_style": 24,
        "batch_size": 16, "checkpoint_every": CHECKPOINT_EVERY, "sample_every": 45}}).json()["id"]

    deadline = time.monotonic() + 300
    while current_step(job := admin.get(f"/v1/jobs/{job_id}").json()) < 2 * CHECKPOINT_EVERY + 5:
        assert time.monotonic() < deadline and job["status"] in ("queued", "running"), job
        time.sleep(0.2)
    killed_at_step = current_step(job)
    training_stack.stop("trainer-1", sig=signal.SIGKILL)

    training_stack.start_worker("training", name="trainer-2")
    done = admin.wait(job_id, timeout=600)
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2
    card = admin.get("/v1/models/resumable").json()["cards"][-1]
    resumed = card["training"]["resumed_from_step"]
    # It continued from a checkpoint taken before the kill, not from zero.
    assert CHECKPOINT_EVERY <= resumed <= killed_at_step and resumed % CHECKPOINT_EVERY == 0
    assert card["training"]["steps"] == STEPS
