"""Batched creation (workers.creation_batching): creation jobs for one model that are queued when
a worker starts share one generator forward, and each ends exactly as it would alone.

Real Redis, S3, API and Celery worker processes. The jobs are submitted while no inference worker
runs, so they are all waiting when one starts. The model is a randomly initialised 32 px
generator registered like a trained one: what it paints does not matter, only that each job's
pixels are its own (at 32 px results carry no watermark, so pixels compare exactly).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from deploy.devstack import Stack
from shared.queue import creation_waiting_key
from tests.chaos.test_poison_and_oom import publish_untrained_gan
from tests.conftest import ApiClient, eventually, stack_on

MODEL = "batched"
TENANT = "batching"
MODEL_REF = f"{MODEL}@1"
MODEL_IDENTITY = f"{TENANT}/{MODEL}@1"  # what the waiting list is keyed by: a tenant's own model
LABELS = ("red", "blue", "green")


@pytest.fixture(scope="module")
def batch_stack(servers: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A namespace on the session's servers and the API; each test starts (and stops) the inference
    worker it needs."""
    stack = stack_on(servers, tmp_path_factory.mktemp("batching"))
    try:
        stack.start_api(workers=1, threads=2)
        publish_untrained_gan(stack, TENANT, MODEL, labels=LABELS, ngf=8)
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture(scope="module")
def client(batch_stack: Stack) -> ApiClient:
    return ApiClient(f"http://127.0.0.1:{batch_stack.api_port}", batch_stack.create_key(TENANT))


@pytest.fixture
def redis_client(batch_stack: Stack) -> Any:
    from shared.connections import redis_client

    return redis_client(batch_stack.settings())


def submit(client: ApiClient, **params: Any) -> str:
    response = client.submit({"kind": "creation", "params": {"model": MODEL, **params}})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def details(client: ApiClient, job: dict[str, Any]) -> dict[str, Any]:
    """What the pipeline said about the job, as its first result's provenance record has it."""
    record = client.get(job["results"][0]["provenance_url"]).json()
    return dict(record["output"]["details"])


def result_pixels(client: ApiClient, job: dict[str, Any]) -> np.ndarray:
    return np.stack([np.asarray(Image.open(io.BytesIO(client.get(r["url"]).content)).convert("RGB"))
                     for r in job["results"]])


def pixels_alone(stack: Stack, params: dict[str, Any]) -> np.ndarray:
    """The job's images as ``generate`` makes them for it alone, in this process."""
    from shared.job_params import CreationParams
    from workers.models.builders import generator_from_card
    from workers.models.gan import generate
    from workers.pipelines.creation import choose_conditions
    from workers.runtime import Runtime

    models = Runtime.from_settings(stack.settings()).registry.for_tenant(TENANT)
    model = models.resolve(params["model"])
    labels, attrs = choose_conditions(model.card, CreationParams.from_dict(params), {}, {})
    return generate(models.load(model, generator_from_card), labels, attrs, seed=params["seed"],
                    truncation=params.get("truncation"))


def worker_log_lines(stack: Stack, name: str) -> list[str]:
    """The messages of a process's log (JSON lines, and Celery's own plain ones)."""
    lines = []
    for line in Path(stack.processes[name].log).read_text().splitlines():
        try:
            lines.append(str(json.loads(line).get("message", "")))
        except (ValueError, AttributeError):
            lines.append(line)
    return lines


def wait_for_log(stack: Stack, name: str, wanted: list[str], timeout: float = 30.0) -> list[str]:
    def said() -> list[str] | None:
        lines = worker_log_lines(stack, name)
        return lines if all(any(w in line for line in lines) for w in wanted) else None

    return eventually(said, timeout, f"{name}'s log saying {wanted}")


def test_queued_creation_jobs_share_one_forward_and_each_gets_its_own_pixels(
        batch_stack: Stack, client: ApiClient, redis_client: Any) -> None:
    specs: list[dict[str, Any]] = [
        {"style": "red", "count": 3, "seed": 11},
        {"count": 2, "seed": 12},
        {"style": "blue", "count": 4, "seed": 13, "truncation": 1.5},
        {"style": "green", "count": 1, "seed": 14},  # canceled before any worker starts
        {"count": 2, "seed": 15},
    ]
    ids = [submit(client, **spec) for spec in specs]
    canceled = ids[3]
    assert client.post(f"/v1/jobs/{canceled}/cancel").json()["status"] == "canceled"
    assert redis_client.lrange(creation_waiting_key(MODEL_IDENTITY), 0, -1) == ids, "each one listed as it was queued"
    assert redis_client.ttl(creation_waiting_key(MODEL_IDENTITY)) > 0

    batch_stack.start_worker("inference", name="worker-batch")
    try:
        jobs = {job_id: client.wait(job_id, timeout=120) for job_id in ids}
        ran = [job_id for job_id in ids if job_id != canceled]
        assert [jobs[job_id]["status"] for job_id in ran] == ["succeeded"] * len(ran), jobs

        # The first job taken led the batch; the others already waiting joined it, the canceled one did not.
        images = sum(spec["count"] for job_id, spec in zip(ids, specs, strict=True) if job_id != canceled)
        for job_id in ran:
            facts = details(client, jobs[job_id])
            assert facts["batched_with"] == len(ran) and facts["batch_size"] == images, facts
        lines = wait_for_log(batch_stack, "worker-batch",
                             [f"job {ids[0]} joined {len(ran) - 1} other creation jobs ({images} images)"])

        # Each job's pixels are those it gets alone.
        for job_id, spec in zip(ids, specs, strict=True):
            if job_id != canceled:
                expected = pixels_alone(batch_stack, {**spec, "model": MODEL_REF})
                assert np.array_equal(result_pixels(client, jobs[job_id]), expected), spec

        assert jobs[canceled]["status"] == "canceled" and jobs[canceled]["results"] == []
        assert jobs[canceled]["attempts"] == 0

        # Every job's own message came later: each was skipped, none ran a second time.
        lines = wait_for_log(batch_stack, "worker-batch", [f"job {job_id} not started" for job_id in ids[1:]])
        assert sum("attempt 1 started" in line for line in lines) == len(ran)
        for job_id in ran:
            job = client.get(f"/v1/jobs/{job_id}").json()
            assert job["status"] == "succeeded" and job["attempts"] == 1, job
        assert redis_client.llen(creation_waiting_key(MODEL_IDENTITY)) == 0
    finally:
        batch_stack.stop("worker-batch")


def test_batch_max_images_caps_a_batch_and_zero_turns_joining_off(
        batch_stack: Stack, client: ApiClient, redis_client: Any) -> None:
    # Off: with 0 every job runs alone, although all were waiting (the API listed them all).
    alone = [submit(client, count=1, seed=seed) for seed in (21, 22, 23)]
    batch_stack.start_worker("inference", name="worker-off", extra_env={"ARTFORGE_CREATION_BATCH_MAX_IMAGES": "0"})
    try:
        for job_id in alone:
            job = client.wait(job_id, timeout=120)
            assert job["status"] == "succeeded", job
            assert details(client, job)["batched_with"] == 1
    finally:
        batch_stack.stop("worker-off")
    assert redis_client.llen(creation_waiting_key(MODEL_IDENTITY)) == len(alone)  # left to expire, or be read

    # Capped at 5 images: 3 + 2 share a forward, the next 2 do not fit and lead their own with the 1.
    counts = (3, 2, 2, 1)
    capped = [submit(client, count=count, seed=30 + i) for i, count in enumerate(counts)]
    batch_stack.start_worker("inference", name="worker-capped", extra_env={"ARTFORGE_CREATION_BATCH_MAX_IMAGES": "5"})
    try:
        jobs = [client.wait(job_id, timeout=120) for job_id in capped]
        assert [job["status"] for job in jobs] == ["succeeded"] * len(counts), jobs
        facts = [details(client, job) for job in jobs]
        assert [f["batched_with"] for f in facts] == [2, 2, 2, 2], facts
        assert [f["batch_size"] for f in facts] == [5, 5, 3, 3], facts
        assert all(job["attempts"] == 1 for job in jobs)
        # The stale ids of the jobs that ran alone were read and dropped on the way.
        assert redis_client.llen(creation_waiting_key(MODEL_IDENTITY)) == 0
    finally:
        batch_stack.stop("worker-capped")
