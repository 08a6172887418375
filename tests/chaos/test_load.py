"""Load: many small jobs from 16 concurrent clients, two inference workers, nothing lost.

``ARTFORGE_LOAD_JOBS`` jobs (300 in ``make test``; 5,000 in ``make test-load``, whose figures are in
bench/RESULTS.md) go through the whole service: gunicorn (2 workers x
4 threads), Redis, two Celery worker processes (concurrency 1 each, as the dev stack starts
them), beat (the reaper) and S3. The job is the cheapest real one that stores results: a
style transfer of a 32x32 upload at max_side 32 (measured beside a classical "defade"
restoration of the same upload: the same time per job, but half the objects in S3).

Each client thread has a tenant of its own, submits its share as fast as it can, then polls its
jobs in submission order until all are terminal. Then: every job succeeded (none failed, none
canceled, none still waiting), no job id came back twice, each job lists exactly one result, and
the results bucket holds exactly one result set per job under ``{tenant}/{job_id}/``: the same
object names as a warm-up job's, and no objects of jobs nobody submitted.

The rates are printed: submissions per second (accepted 202s over the submit window) and
completions per second (overall, from the first submission to the last job finished, and
sustained, between the 10th and 90th percentile of finish times), and the sustained rate against
what the two workers would do if running jobs were all they did (two over the median running time).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from deploy.devstack import Stack
from shared.objects import ObjectStore
from tests.conftest import OWN_RIGHTS, TEST_ENV, ApiClient, eventually, image_bytes, stack_on

pytestmark = [pytest.mark.slow, pytest.mark.load]

JOBS = int(os.environ.get("ARTFORGE_LOAD_JOBS", "300"))
CLIENTS = 16
WORKERS = 2
TERMINAL = ("succeeded", "failed", "canceled")
LOAD_ENV = {
    **TEST_ENV,
    # Nothing throttles the load: no rate limits, no cap on a tenant's active jobs.
    "ARTFORGE_RATE_LIMIT_DEFAULT": "",
    "ARTFORGE_RATE_LIMIT_SUBMIT": "",
    "ARTFORGE_MAX_ACTIVE_JOBS_PER_TENANT": "0",
    # Two workers share the machine's cores: one torch thread each.
    "ARTFORGE_TORCH_THREADS": "1",
    # The lease of a queued-then-running job under load: heartbeats may lag while 2 cores are busy.
    "ARTFORGE_LEASE_S": "30",
}
POLL_S = 0.25
# Overall bound: 2 cores complete ~20 jobs/s here (bench/RESULTS.md); the bound allows for a machine 4x slower.
DEADLINE_S = 120 + JOBS / 5


def small_job(upload_id: str) -> dict[str, Any]:
    return {"kind": "style_transfer", "inputs": {"content": upload_id},
            "params": {"style": "sunlit-pastel", "max_side": 32}}


def at(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


@dataclass
class LoadClient:
    """One client thread: a tenant, a keep-alive connection, and the jobs it submitted in order."""

    base: str
    tenant: str
    key: str
    upload_id: str = ""
    submitted: list[str] = field(default_factory=list)
    submit_done_at: float = 0.0
    all_terminal_at: float = 0.0

    def __post_init__(self) -> None:
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self.key}"

    def upload(self, image: Image.Image) -> None:
        response = self.session.post(self.base + "/v1/uploads", files={"file": ("load.png", image_bytes(image))},
                                     data=OWN_RIGHTS, timeout=60)
        assert response.status_code == 201, response.text
        self.upload_id = response.json()["id"]

    def submit(self, count: int) -> None:
        body = small_job(self.upload_id)
        for _ in range(count):
            response = self.session.post(self.base + "/v1/jobs", json=body, timeout=60)
            assert response.status_code == 202, response.text
            self.submitted.append(response.json()["id"])
        self.submit_done_at = time.time()

    def wait_all(self, deadline: float) -> None:
        """Poll in submission order: the queue is FIFO, so the oldest unfinished job is the one to ask about."""
        for job_id in self.submitted:
            eventually(lambda job_id=job_id: self.status(job_id) in TERMINAL, deadline - time.monotonic(),
                       f"job {job_id} of {self.tenant} terminal", interval=POLL_S)
        self.all_terminal_at = time.time()

    def status(self, job_id: str) -> str:
        response = self.session.get(f"{self.base}/v1/jobs/{job_id}", timeout=60)
        assert response.status_code == 200, response.text
        return str(response.json()["status"])

    def run(self, count: int, deadline: float, start: threading.Barrier) -> None:
        start.wait()
        self.submit(count)
        self.wait_all(deadline)

    def records(self) -> list[dict[str, Any]]:
        records = []
        for job_id in self.submitted:
            response = self.session.get(f"{self.base}/v1/jobs/{job_id}", timeout=60)
            assert response.status_code == 200, response.text
            records.append(response.json())
        return records


def wait_for_log(stack: Stack, name: str, text: str, timeout: float) -> None:
    log = Path(stack.processes[name].log)
    eventually(lambda: text in log.read_text(errors="replace"), timeout, f"{name} logging {text!r}", interval=0.5)


@pytest.fixture
def load_stack(servers: Stack, tmp_path: Path) -> Iterator[Stack]:
    stack = stack_on(servers, tmp_path, LOAD_ENV)
    try:
        stack.start_api(workers=2, threads=4)
        for number in range(1, WORKERS + 1):
            stack.start_worker("inference", name=f"worker-inference-{number}")
        stack.start_beat()
        for number in range(1, WORKERS + 1):
            wait_for_log(stack, f"worker-inference-{number}", " ready.", 120)
        yield stack
    finally:
        stack.stop_all()


def stored_results(store: ObjectStore, bucket: str, tenant: str) -> tuple[dict[str, set[str]], int]:
    """The results bucket under ``tenant/``: job id -> the object names under ``tenant/job_id/``, and
    how many sealed provenance records the chain keeps under ``tenant/records/`` (one per result
    stored; a second run of a job would seal more)."""
    jobs: dict[str, set[str]] = {}
    records = 0
    for key in store.list_keys(bucket, f"{tenant}/"):
        _, job_id, name = key.split("/", 2)
        if job_id == "records":
            records += 1
        else:
            jobs.setdefault(job_id, set()).add(name)
    return jobs, records


def test_thousands_of_small_jobs_from_16_clients_all_finish_once(load_stack: Stack) -> None:
    stack = load_stack
    base = f"http://127.0.0.1:{stack.api_port}"
    store, bucket = ObjectStore(stack.settings()), stack.settings().bucket_results
    image = Image.effect_noise((32, 32), 60).convert("RGB")

    # A warm-up job: the models are loaded and its objects are the result set every job must have.
    warmup = ApiClient(base, stack.create_key("warmup"))
    response = warmup.submit(small_job(warmup.upload_image(image, rights=OWN_RIGHTS)["id"]))
    assert response.status_code == 202, response.text
    warm_job = warmup.wait(response.json()["id"], timeout=120)
    assert warm_job["status"] == "succeeded", warm_job
    warm_stored, records_per_job = stored_results(store, bucket, "warmup")
    expected_names = warm_stored[warm_job["id"]]
    assert {"0.png", "0.provenance.json"} <= expected_names, expected_names

    clients = [LoadClient(base, f"load-{n:02d}", stack.create_key(f"load-{n:02d}")) for n in range(CLIENTS)]
    for client in clients:
        client.upload(image)
    shares = [JOBS // CLIENTS + (1 if n < JOBS % CLIENTS else 0) for n in range(CLIENTS)]
    start = threading.Barrier(CLIENTS + 1)
    deadline = time.monotonic() + DEADLINE_S
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(client.run, share, deadline, start)
                   for client, share in zip(clients, shares, strict=True)]
        start.wait()
        started = time.time()
        for future in futures:
            future.result()
    all_terminal = max(client.all_terminal_at for client in clients)

    job_ids = [job_id for client in clients for job_id in client.submitted]
    assert len(job_ids) == JOBS
    assert len(set(job_ids)) == JOBS, "a job id came back twice"

    records = [record for client in clients for record in client.records()]
    statuses = Counter(record["status"] for record in records)
    attempts = Counter(record["attempts"] for record in records)
    assert statuses == {"succeeded": JOBS}, statuses
    for record in records:
        assert [result["index"] for result in record["results"]] == [0], record

    for client in clients:
        stored, sealed = stored_results(store, bucket, client.tenant)
        assert set(stored) == set(client.submitted), f"{client.tenant}: result sets of unknown or missing jobs"
        assert sealed == records_per_job * len(client.submitted), f"{client.tenant}: {sealed} provenance records"
        wrong = {job_id: names for job_id, names in stored.items() if names != expected_names}
        assert not wrong, f"{client.tenant}: {len(wrong)} jobs without exactly one result set, e.g. " \
                          f"{next(iter(wrong.items()))}; expected {sorted(expected_names)}"

    submit_window = max(client.submit_done_at for client in clients) - started
    finished = sorted(at(record["finished_at"]) for record in records)
    first_started = min(at(record["started_at"]) for record in records)
    p10, p90 = finished[len(finished) // 10], finished[len(finished) * 9 // 10]
    sustained = (len(finished) * 9 // 10 - len(finished) // 10) / (p90 - p10)
    running_ms = statistics.median((at(r["finished_at"]) - at(r["started_at"])) * 1000 for r in records)
    print(f"\nload: {JOBS} jobs, {CLIENTS} clients, {WORKERS} workers: all succeeded, attempts {dict(attempts)}")
    print(f"  submitted: {JOBS / submit_window:.1f} jobs/s ({submit_window:.1f} s)")
    print(f"  completed: {JOBS / (finished[-1] - started):.1f} jobs/s overall ({finished[-1] - started:.1f} s from the "
          f"first submission to the last finish; first start {first_started - started:.1f} s in), sustained "
          f"{sustained:.1f} jobs/s (p10-p90 of finish times); median running time {running_ms:.0f} ms")
    print(f"  every client saw all its jobs terminal {all_terminal - started:.1f} s after the start")
    # What the workers could do if running a job were all they did: the rest is queue, Redis, S3 and the API.
    capacity = WORKERS * 1000 / running_ms
    print(f"  {WORKERS} workers at the median running time: {capacity:.1f} jobs/s; sustained / that = "
          f"{sustained / capacity:.2f}")
