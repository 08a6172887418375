"""Workers die mid-job; the job still finishes exactly once with one result set.

Each test owns its servers and worker processes, so killing them disturbs nothing else.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from PIL import Image

from deploy.devstack import Stack, pid_alive
from shared.objects import ObjectStore
from tests.conftest import ApiClient

pytestmark = pytest.mark.slow


def pool_children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    return [int(line) for line in out.split()]


def submit_long_job(client: ApiClient, photo: Image.Image) -> str:
    upload = client.upload_image(photo.resize((2048, 2048)), "JPEG")
    response = client.submit({"kind": "style_transfer", "inputs": {"content": upload["id"]},
                              "params": {"style": "dark-oil", "max_side": 2048}})
    assert response.status_code == 202
    return str(response.json()["id"])


def wait_for_stage(client: ApiClient, job_id: str, stage: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["progress"]["stage"] == stage:
            return dict(job)
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached stage {stage}")


def result_keys(stack: Stack, job_id: str) -> list[str]:
    store = ObjectStore(stack.settings())
    return sorted(k for k in store.list_keys(stack.settings().bucket_results, "") if f"/{job_id}/" in k)


def test_killed_pool_process_job_runs_again_and_finishes_once(own_stack: Stack, photo: Image.Image) -> None:
    client = ApiClient(f"http://127.0.0.1:{own_stack.api_port}", own_stack.create_key("chaos"))
    own_stack.start_beat()
    worker = own_stack.start_worker("inference")
    job_id = submit_long_job(client, photo)
    wait_for_stage(client, job_id, "stylizing")
    children = pool_children(worker.pid)
    assert len(children) == 1
    os.kill(children[0], signal.SIGKILL)
    killed_at = time.monotonic()

    job = client.wait(job_id, timeout=240)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2
    print(f"pool process killed mid-job; attempt 2 succeeded {time.monotonic() - killed_at:.1f}s later")
    assert result_keys(own_stack, job_id) == [f"chaos/{job_id}/0.c2pa", f"chaos/{job_id}/0.png",
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


def test_killed_worker_job_is_requeued_by_the_reaper_and_finishes(own_stack: Stack, photo: Image.Image) -> None:
    client = ApiClient(f"http://127.0.0.1:{own_stack.api_port}", own_stack.create_key("chaos"))
    own_stack.start_beat()  # the reaper requeues the dead worker's job
    own_stack.start_worker("inference", name="worker-a")
    own_stack.start_worker("inference", name="worker-b")
    job_id = submit_long_job(client, photo)
    wait_for_stage(client, job_id, "stylizing")
    doomed = running_worker(own_stack, job_id)
    pid = own_stack.processes[doomed].pid
    own_stack.stop(doomed, sig=signal.SIGKILL)  # the whole worker, parent and pool
    assert not pid_alive(pid)
    killed_at = time.monotonic()

    # The survivor's reaper requeues it once the lease (6 s in tests) runs out, then runs it.
    deadline = time.monotonic() + 60
    while client.get(f"/v1/jobs/{job_id}").json()["attempts"] < 2:
        assert time.monotonic() < deadline, "the job was never taken over"
        time.sleep(0.1)
    requeue_s = time.monotonic() - killed_at
    assert requeue_s < 20, requeue_s  # seconds, not the broker's hours-long visibility timeout
    print(f"job taken over {requeue_s:.1f}s after its worker was killed")

    job = client.wait(job_id, timeout=240)
    assert job["status"] == "succeeded" and job["attempts"] == 2
    assert len(result_keys(own_stack, job_id)) == 3  # image, C2PA sidecar, provenance record
