"""The training worker is killed mid-run; the job resumes from its last checkpoint."""

from __future__ import annotations

import re
import signal
import time
from typing import Any

import pytest

from deploy.devstack import Stack
from tests.conftest import ApiClient, eventually

pytestmark = pytest.mark.slow

STEPS, CHECKPOINT_EVERY = 90, 15


def current_step(job: dict) -> int:
    match = re.match(r"step (\d+)/", job["progress"]["message"] or "")
    return int(match.group(1)) if match else 0


def test_killed_training_worker_resumes_from_its_checkpoint(isolated_stack: Stack) -> None:
    admin = ApiClient(f"http://127.0.0.1:{isolated_stack.api_port}", isolated_stack.create_key("lab", admin=True))
    isolated_stack.start_beat()  # the reaper requeues the killed worker's job
    isolated_stack.start_worker("training", name="trainer-1")
    job_id = admin.submit({"kind": "training", "params": {
        "target": "gan", "model": "resumable", "resolution": 32, "steps": STEPS, "per_style": 24,
        "batch_size": 16, "checkpoint_every": CHECKPOINT_EVERY, "sample_every": 45,
        "eval_per_label": 4}}).json()["id"]

    def past_two_checkpoints() -> dict[str, Any] | None:
        job = dict(admin.get(f"/v1/jobs/{job_id}").json())
        assert job["status"] in ("queued", "running"), job
        return job if current_step(job) >= 2 * CHECKPOINT_EVERY + 5 else None

    killed_at_step = current_step(eventually(past_two_checkpoints, 300, "training past two checkpoints", 0.2))
    isolated_stack.stop("trainer-1", sig=signal.SIGKILL)
    killed_at = time.monotonic()

    isolated_stack.start_worker("training", name="trainer-2")
    done = admin.wait(job_id, timeout=600)
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2
    card = admin.get("/v1/models/resumable").json()["cards"][-1]
    resumed = card["training"]["resumed_from_step"]
    # It continued from a checkpoint taken before the kill, not from zero.
    assert CHECKPOINT_EVERY <= resumed <= killed_at_step and resumed % CHECKPOINT_EVERY == 0
    assert card["training"]["steps"] == STEPS
    print(f"killed at step {killed_at_step}/{STEPS}; attempt 2 resumed from step {resumed} and finished "
          f"{time.monotonic() - killed_at:.0f}s after the kill")
