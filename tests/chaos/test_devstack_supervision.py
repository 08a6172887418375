"""The dev stack supervises what it starts (``python -m deploy.devstack``, what ``make up`` runs).

Every worker process of a running stack is killed with SIGKILL in the middle of a job, as the OOM
killer would: supervisord restarts the workers, the reaper requeues the job once its lease runs
out, and the job finishes once, with no manual step. ``up`` on a partly running stack starts only
what is missing; ``status`` lists every process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from PIL import Image

from deploy.devstack import DevStack, restarts
from tests.chaos.test_worker_loss import result_keys
from tests.conftest import TEST_ENV, ApiClient, eventually

pytestmark = pytest.mark.slow

STALL_S = 5
WORKERS = ("worker-inference", "worker-training")


def devstack(dev: DevStack, *argv: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTFORGE_")}
    env |= {**TEST_ENV, "ARTFORGE_FAULT_INJECTION": f"stall:style_transfer:{STALL_S}"}
    return subprocess.run([sys.executable, "-m", "deploy.devstack", "--state-dir", str(dev.root), *argv],
                          env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[DevStack]:
    dev = DevStack(tmp_path / "state")
    started = devstack(dev, "up")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield dev
    finally:
        stopped = devstack(dev, "down")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert dev.leftovers() == [], "processes of the stack outlived `down`"


def pids(dev: DevStack) -> dict[str, int]:
    return {info["name"]: info["pid"] for info in dev.processes()}


def operator(dev: DevStack) -> ApiClient:
    env = dict(line.split("=", 1) for line in dev.env_file.read_text().splitlines())
    return ApiClient(env["ARTFORGE_URL"], env["ARTFORGE_API_KEY"])


def test_every_worker_process_killed_mid_job_the_job_still_finishes_once(dev: DevStack) -> None:
    made = operator(dev).post("/v1/tenants/chaos/keys", json={})
    assert made.status_code == 201, made.text
    client = ApiClient(operator(dev).base, made.json()["key"])
    upload = client.upload_image(Image.effect_noise((64, 64), 60).convert("RGB"))
    submitted = client.submit({"kind": "style_transfer", "inputs": {"content": upload["id"]},
                               "params": {"style": "dark-oil", "max_side": 64}})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    eventually(lambda: client.get(f"/v1/jobs/{job_id}").json()["progress"]["stage"] == "stalled", timeout=120,
               what="the job to be running")

    before, restarted_before = pids(dev), restarts(dev)
    doomed = [psutil.Process(before[name]) for name in WORKERS]
    doomed += [child for parent in list(doomed) for child in parent.children(recursive=True)]
    assert len(doomed) >= 4, doomed  # each worker's parent and its pool process
    for process in doomed:
        os.kill(process.pid, signal.SIGKILL)
    killed_at = time.monotonic()

    job = client.wait(job_id, timeout=120)
    took_s = time.monotonic() - killed_at
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2, job
    assert [key.rsplit("/", 1)[1] for key in result_keys(dev.stack(), job_id)] == ["0.c2pa", "0.png",
                                                                                  "0.provenance.json"]
    print(f"\nevery worker process SIGKILLed mid-job; attempt 2 succeeded {took_s:.1f} s later")

    # supervisord restarted both workers and said so; nothing else was restarted.
    after = pids(dev)
    assert all(after[name] != before[name] for name in WORKERS)
    assert {n: p for n, p in after.items() if n not in WORKERS} == {n: p for n, p in before.items() if n not in WORKERS}
    log = dev.supervisor_log.read_text()
    for name in WORKERS:
        assert f"exited: {name} (terminated by SIGKILL; not expected)" in log, log[-2000:]
    shown = devstack(dev, "status")
    assert shown.returncode == 0, shown.stdout
    table = {line.split()[0]: line.split()[1:4] for line in shown.stdout.splitlines()[1:-1]}
    assert table.keys() == {*WORKERS, "redis", "s3", "api", "beat"}, shown.stdout
    for name, (state, pid, restarted) in table.items():
        expected = restarted_before.get(name, 0) + (name in WORKERS)
        assert (state, int(pid), int(restarted)) == ("RUNNING", after[name], expected), shown.stdout


def test_up_on_a_partly_running_stack_starts_only_what_is_missing(dev: DevStack) -> None:
    key = operator(dev).key
    rpc = dev.supervisor()
    assert rpc is not None
    for name in ("worker-training", "beat"):
        rpc.supervisor.stopProcess(name)
    running = {n: p for n, p in pids(dev).items() if p}
    assert set(running) == {"redis", "s3", "api", "worker-inference"}
    assert devstack(dev, "status").returncode == 1  # not everything runs

    again = devstack(dev, "up")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "started beat, worker-training" in again.stdout, again.stdout  # supervisord lists them by name
    after = pids(dev)
    assert all(after.values()), after
    assert {n: after[n] for n in running} == running  # what ran was left alone
    assert operator(dev).key == key and operator(dev).get("/v1/jobs").status_code == 200
