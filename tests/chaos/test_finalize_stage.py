"""The finalize stage (workers.finalizing) off the model's critical path, with real workers.

A worker takes its next job while the previous job's results are still being stored; a job turns
``succeeded`` only once they are; a worker killed mid-finalize loses nothing; a worker asked to
shut down stores what it holds first. The workers' test-only fault injection stalls every
attempt's store for a few seconds (``stall-store:style_transfer:S``, workers.faults): surely
mid-finalize, however busy the machine.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from deploy.devstack import Stack, pid_alive
from tests.chaos.test_worker_loss import pool_children, result_keys, submit_stalling_job, wait_for_stage
from tests.conftest import ApiClient, eventually

pytestmark = pytest.mark.slow

STALL_S = 3
STALLING_STORE = {"ARTFORGE_FAULT_INJECTION": f"stall-store:style_transfer:{STALL_S}"}


def job_record(client: ApiClient, job_id: str) -> dict:
    return dict(client.get(f"/v1/jobs/{job_id}").json())


def test_next_job_runs_while_one_is_stored_and_a_kill_mid_finalize_loses_nothing(isolated_stack: Stack) -> None:
    client = ApiClient(f"http://127.0.0.1:{isolated_stack.api_port}", isolated_stack.create_key("chaos"))
    isolated_stack.start_beat()  # the reaper sends the killed process's jobs again
    worker = isolated_stack.start_worker("inference", extra_env=STALLING_STORE)
    first, second = submit_stalling_job(client), submit_stalling_job(client)

    stored = wait_for_stage(client, first, "stalled storing")
    assert stored["status"] == "running" and stored["results"] == []  # not succeeded before it is stored

    # The one pool process has taken the second job while the first is still being stored.
    def both_running() -> bool:
        return (job_record(client, first)["progress"]["stage"] == "stalled storing"
                and job_record(client, second)["status"] == "running")

    eventually(both_running, 60, "the second job running while the first is stored")

    children = pool_children(worker.pid)
    assert len(children) == 1
    os.kill(children[0], signal.SIGKILL)  # both messages are acknowledged: only the leases remain
    killed_at = time.monotonic()

    for job_id in (first, second):
        job = client.wait(job_id, timeout=240)
        assert job["status"] == "succeeded" and job["attempts"] == 2, job
        assert result_keys(isolated_stack, job_id) == [f"chaos/{job_id}/0.c2pa", f"chaos/{job_id}/0.png",
                                                       f"chaos/{job_id}/0.provenance.json"]
    print(f"pool process killed mid-finalize; both jobs stored {time.monotonic() - killed_at:.1f}s later")


def test_a_worker_shut_down_mid_finalize_stores_and_settles_before_it_exits(isolated_stack: Stack) -> None:
    client = ApiClient(f"http://127.0.0.1:{isolated_stack.api_port}", isolated_stack.create_key("chaos"))
    worker = isolated_stack.start_worker("inference", extra_env=STALLING_STORE)
    job_id = submit_stalling_job(client)
    wait_for_stage(client, job_id, "stalled storing")

    os.kill(worker.pid, signal.SIGTERM)  # a warm shutdown, as a deploy's rolling restart sends
    eventually(lambda: not pid_alive(worker.pid), 60, "the worker exited")

    job = job_record(client, job_id)  # no reaper runs: only the worker itself could have finished it
    assert job["status"] == "succeeded" and job["attempts"] == 1, job
    assert len(result_keys(isolated_stack, job_id)) == 3
