"""A job that runs past its soft time limit fails with a clear error instead of hanging.

The job stalls (workers.faults) for five times its soft limit: past it whatever the machine's load."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.devstack import Stack
from tests.chaos.test_worker_loss import submit_stalling_job
from tests.conftest import ApiClient, stack_on

pytestmark = pytest.mark.slow


@pytest.fixture
def short_limit_stack(servers: Stack, tmp_path: Path) -> Iterator[Stack]:
    stack = stack_on(servers, tmp_path, {"ARTFORGE_INFERENCE_SOFT_LIMIT_S": "2",
                                         "ARTFORGE_INFERENCE_HARD_LIMIT_S": "60"})
    try:
        stack.start_api(workers=1, threads=2)
        stack.start_worker("inference", extra_env={"ARTFORGE_FAULT_INJECTION": "stall:style_transfer:10"})
        yield stack
    finally:
        stack.stop_all()


def test_job_past_its_soft_limit_fails_with_timeout(short_limit_stack: Stack) -> None:
    client = ApiClient(f"http://127.0.0.1:{short_limit_stack.api_port}", short_limit_stack.create_key("slow"))
    job = client.wait(submit_stalling_job(client), timeout=120)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "timeout" and job["results"] == []
    assert job["attempts"] == 1  # a timeout is final, not retried in a loop
