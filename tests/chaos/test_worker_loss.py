"""Workers die mid-job; the job still finishes exactly once with one result set.

Each test owns its servers and worker processes, so killing them disturbs nothing else. The job
is a small style transfer that the workers' test-only fault injection stalls for a few seconds
(``stall:style_transfer:S``, workers.faults) in every attempt: surely running when the worker is
killed, however busy the machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any

import pytest
from PIL import Image

from deploy.devstack import Stack, pid_alive
from shared.objects import ObjectStore
from tests.conftest import ApiClient, eventually

pytestmark = pytest.mark.slow


def pool_children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    return [int(line) for line in out.split()]


STALL_S = 6
STALLING = {"ARTFORGE_FAULT_INJECTION": f"stall:style_transfer:{STALL_S}"}


def submit_stalling_job(client: ApiClient) -> str:
    """A 64 px style transfer; on a worker started with ``STALLING`` (or another stall), each
    attempt shows the stage "stalled" and waits before it runs."""
    upload = client.upload_image(Image.effect_noise((64, 64), 60).convert("RGB"))
    response = client.submit({"kind": "style_transfer", "inputs": {"content": upload["id"]},
                              "params": {"style": "dark-oil", "max_side": 64}})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def wait_for_stage(client: ApiClient, job_id: str, stage: str, timeout: float = 120) -> dict[str, Any]:
    def at_stage() -> dict[str, Any] | None:
        job = dict(client.get(f"/v1/jobs/{job_id}").json())
        return job if job["progress"]["stage"] == stage else None

    return eventually(at_stage, timeout, f"job {job_id} at stage {stage!r}")


def result_keys(stack: Stack, job_id: str) -> list[str]:
    store = ObjectStore(stack.settings())
    return sorted(k for k in store.list_keys(stack.settings().bucket_results, "") if f"/{job_id}/" in k)


def test_killed_pool_process_job_runs_again_and_finishes_once(isolated_stack: Stack) -> None:
    client = ApiClient(f"http://127.0.0.1:{isolated_stack.api_port}", isolated_stack.create_key("chaos"))
    isolated_stack.start_beat()
    worker = isolated_stack.start_worker("inference", extra_env=STALLING)
    job_id = submit_stalling_job(client)
    wait_for_stage(client, job_id, "stalled")
    children = pool_children(worker.pid)
    assert len(children) == 1
    os.kill(children[0], signal.SIGKILL)
    killed_at = time.monotonic()

    job = client.wait(job_id, timeout=240)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2
    print(f"pool process killed mid-job; attempt 2 succeeded {time.monotonic() - killed_at:.1f}s later")
    assert result_keys(isolated_stack, job_id) == [f"chaos/{job_id}/0.c2pa", f"chaos/{job_id}/0.png",
                                              f"chaos/{job_id}/0.provenance.json"]


def running_worker(stack: Stack, job_id: str) -> str:
    """The name of the stack process whose pool child runs the job."""
    from shared.connections import redis_client
    from shared.jobs import JobStore

    child_pid = int(JobStore(redis_client(stack.settings())).get(job_id).worker.rsplit(":", 1)[1])
    for name, process in stack.processes.items():
        if child_pid in pool_children(process.pid):
            return name
    raise AssertionError(f"no worker of ours runs job {job_id}")


def test_killed_worker_job_is_requeued_by_the_reaper_and_finishes(isolated_stack: Stack) -> None:
    client = ApiClient(f"http://127.0.0.1:{isolated_stack.api_port}", isolated_stack.create_key("chaos"))
    isolated_stack.start_beat()  # the reaper requeues the dead worker's job
    isolated_stack.start_worker("inference", name="worker-a", extra_env=STALLING)
    isolated_stack.start_worker("inference", name="worker-b", extra_env=STALLING)
    job_id = submit_stalling_job(client)
    wait_for_stage(client, job_id, "stalled")
    doomed = running_worker(isolated_stack, job_id)
    pid = isolated_stack.processes[doomed].pid
    isolated_stack.stop(doomed, sig=signal.SIGKILL)  # the whole worker, parent and pool
    assert not pid_alive(pid)
    killed_at = time.monotonic()

    # The survivor's reaper requeues it once the lease (6 s in tests) runs out, then runs it.
    eventually(lambda: client.get(f"/v1/jobs/{job_id}").json()["attempts"] >= 2, 60, "the job taken over")
    requeue_s = time.monotonic() - killed_at
    assert requeue_s < 20, requeue_s  # seconds, not the broker's hours-long visibility timeout
    print(f"job taken over {requeue_s:.1f}s after its worker was killed")

    job = client.wait(job_id, timeout=240)
    assert job["status"] == "succeeded" and job["attempts"] == 2
    assert len(result_keys(isolated_stack, job_id)) == 3  # image, C2PA sidecar, provenance record
