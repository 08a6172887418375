"""Jobs that break their worker: a poison job fails after max_attempts instead of looping; running
out of device memory is reported as ``out_of_memory``, after one retry at a smaller batch where
the job allows it (creation of several images).

The faults are injected by the worker's test-only ``ARTFORGE_FAULT_INJECTION`` (workers.faults):
restoration jobs kill their pool process as they start; style_transfer jobs raise
torch.OutOfMemoryError; creation raises it for batches above 2 images, like a GPU that holds
two at a time. Real Redis, S3, Celery worker and beat (the reaper) throughout.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deploy.devstack import Stack
from shared.contract import TASK_REAP_LEASES
from tests.conftest import OWN_RIGHTS, ApiClient, eventually, stack_on, tasks_done

pytestmark = pytest.mark.slow

FAULTS = "crash:restoration,oom:style_transfer,oom:creation:2"
TENANT = "faults"
MODEL = "untrained"
MAX_ATTEMPTS = 2  # the smallest limit that still tells 'after max_attempts' from 'after one'


def publish_untrained_gan(stack: Stack, tenant: str, name: str, labels: tuple[str, ...] = ("red", "blue"),
                          ngf: int = 32) -> None:
    """A randomly initialised 32 px generator (``ngf`` channels wide), registered for ``tenant``
    like a trained one (weights and card in S3, index in Redis): creation runs it for real; what
    it paints does not matter here."""
    from safetensors.torch import save

    from workers.data.attributes import ATTRIBUTE_NAMES
    from workers.models.gan import ARCHITECTURE, GanConfig, Generator
    from workers.runtime import Runtime

    config = GanConfig(n_classes=len(labels), resolution=32, ngf=ngf)
    weights = save({k: v.contiguous() for k, v in Generator(config).state_dict().items()})
    card = {"task": "creation", "architecture": ARCHITECTURE, "gan_config": config.to_dict(),
            "resolution": 32, "labels": list(labels), "label_descriptions": {label: label for label in labels},
            "attributes": list(ATTRIBUTE_NAMES),
            "attribute_samples": {label: [[0.5] * len(ATTRIBUTE_NAMES)] for label in labels},
            "created_at": time.time()}
    Runtime.from_settings(stack.settings()).registry.for_tenant(tenant).publish(name, weights, card)


@pytest.fixture(scope="module")
def faulty_stack(servers: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = stack_on(servers, tmp_path_factory.mktemp("faulty"), {"ARTFORGE_MAX_ATTEMPTS": str(MAX_ATTEMPTS)})
    try:
        stack.start_api(workers=1, threads=2)
        stack.start_beat()  # the reaper: a crashed attempt's lease expires, the job is requeued
        stack.start_worker("inference", extra_env={"ARTFORGE_FAULT_INJECTION": FAULTS})
        publish_untrained_gan(stack, TENANT, MODEL)
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture(scope="module")
def client(faulty_stack: Stack) -> ApiClient:
    return ApiClient(f"http://127.0.0.1:{faulty_stack.api_port}", faulty_stack.create_key(TENANT))


def submitted(client: ApiClient, body: dict) -> str:
    response = client.submit(body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_poison_job_fails_after_max_attempts_and_does_not_loop(client: ApiClient, faulty_stack: Stack,
                                                              photo: Image.Image) -> None:
    upload = client.upload_image(photo.resize((128, 128)), rights=OWN_RIGHTS)
    started = time.monotonic()
    job_id = submitted(client, {"kind": "restoration", "inputs": {"image": upload["id"]},
                                "params": {"operations": ["defade"]}})
    job = client.wait(job_id, timeout=180)
    took_s = time.monotonic() - started
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "worker_lost", job
    assert str(MAX_ATTEMPTS) in job["error"]["message"]
    assert job["attempts"] == MAX_ATTEMPTS and job["results"] == []

    # No loop: the reaper sweeps twice more (its lease long expired) and nothing runs the job again,
    # and the worker (a fresh pool process) serves other jobs.
    worker_log = Path(faulty_stack.processes["worker-inference"].log)
    failed_at = time.time()
    eventually(lambda: tasks_done(worker_log, TASK_REAP_LEASES, after=failed_at) >= 2, 60,
               "two reaper sweeps after the job failed")
    assert client.get(f"/v1/jobs/{job_id}").json()["attempts"] == MAX_ATTEMPTS
    assert faulty_stack.is_alive("worker-inference")
    fine = client.wait(submitted(client, {"kind": "creation", "params": {"model": MODEL, "count": 2, "seed": 3}}))
    assert fine["status"] == "succeeded", fine
    print(f"poison job failed after {job['attempts']} attempts in {took_s:.1f}s: {job['error']['message']}")


def test_out_of_memory_without_a_smaller_batch_fails_with_its_own_code(client: ApiClient,
                                                                       photo: Image.Image) -> None:
    upload = client.upload_image(photo.resize((128, 128)))
    job = client.wait(submitted(client, {"kind": "style_transfer", "inputs": {"content": upload["id"]},
                                         "params": {"style": "bold-ink"}}))
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "out_of_memory" and "out of memory" in job["error"]["message"]
    assert job["attempts"] == 1  # deterministic: another attempt would run out of memory again

    single = client.wait(submitted(client, {"kind": "creation", "params": {"model": MODEL, "count": 3, "seed": 1}}))
    assert single["status"] == "succeeded", single  # 3 -> batches of 1: fits


def test_creation_out_of_memory_retries_once_at_a_smaller_batch(client: ApiClient, faulty_stack: Stack) -> None:
    from shared.job_params import CreationParams
    from workers.models.builders import generator_from_card
    from workers.models.gan import generate
    from workers.pipelines.creation import choose_conditions
    from workers.runtime import Runtime

    job = client.wait(submitted(client, {"kind": "creation",
                                         "params": {"model": MODEL, "count": 8, "seed": 42, "style": "red"}}))
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 1 and len(job["results"]) == 8
    record = json.loads(client.get(job["results"][0]["provenance_url"]).content)
    assert '"batch_size": 2' in json.dumps(record), "the batch that worked is in the provenance record"

    # The pixels are those one batch of 8 makes (generate draws all noise up front).
    models = Runtime.from_settings(faulty_stack.settings()).registry.for_tenant(TENANT)
    model = models.resolve(job["params"]["model"])
    labels, attrs = choose_conditions(model.card, CreationParams.from_dict(job["params"]), {}, {})
    expected = generate(models.load(model, generator_from_card), labels, attrs, seed=42, batch_size=8)
    pixels = np.stack([np.asarray(Image.open(io.BytesIO(client.get(r["url"]).content)).convert("RGB"))
                       for r in job["results"]])
    # Up to float rounding: a batch of 2 and one of 8 may sum a convolution in another order.
    difference = np.abs(pixels.astype(int) - expected.astype(int))
    assert difference.max() <= 1 and difference.mean() < 0.05, (difference.max(), difference.mean())
