"""Redis at maxmemory (noeviction): submissions are refused with 503, nothing is evicted, nothing
is half-created, and submissions work again once memory is raised. No worker runs, so every job
record must have exactly one queue message and the other way round."""

from __future__ import annotations

import base64
import json
from typing import cast

import pytest
import redis
import requests
from PIL import Image

from deploy.devstack import Stack
from shared.connections import redis_client
from shared.contract import MAX_PRIORITY, QUEUE_INFERENCE
from shared.jobs import PREFIX, JobStore
from tests.conftest import ApiClient

pytestmark = pytest.mark.slow


def queued_message_job_ids(client: redis.Redis) -> list[str]:
    """The job ids of every task message waiting in the inference queue (all priority lists)."""
    ids = []
    for name in [QUEUE_INFERENCE, *(f"{QUEUE_INFERENCE}:{p}" for p in range(1, MAX_PRIORITY + 1))]:
        for raw in cast(list[str], client.lrange(name, 0, -1)):
            message = json.loads(raw)
            _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
            ids.append(kwargs["job_id"])
    return sorted(ids)


def job_record_ids(client: redis.Redis) -> list[str]:
    """Ids of the job records (hashes ``af:job:{id}``; keys beside them, like ``:events``, left out)."""
    ids = (key.removeprefix(f"{PREFIX}job:") for key in client.scan_iter(f"{PREFIX}job:*"))
    return sorted(i for i in ids if ":" not in i)


def test_submissions_at_maxmemory_get_503_and_nothing_is_half_created(own_stack: Stack, photo: Image.Image) -> None:
    client = ApiClient(f"http://127.0.0.1:{own_stack.api_port}", own_stack.create_key("full"))
    upload = client.upload_image(photo.resize((64, 64)))
    body = {"kind": "style_transfer", "inputs": {"content": upload["id"]}, "params": {"style": "bold-ink"}}
    before = [client.submit(body).json()["id"] for _ in range(3)]
    r = redis_client(own_stack.settings())
    assert job_record_ids(r) == queued_message_job_ids(r) == sorted(before)
    keys_before = r.dbsize()

    used = int(r.info("memory")["used_memory"])
    r.config_set("maxmemory", used // 2)  # the test's own Redis: already past its limit
    refused = [client.submit(body) for _ in range(20)]
    refused.append(client.submit(body, headers={"Idempotency-Key": "full-1"}))
    for response in refused:
        assert response.status_code == 503, response.text
        assert int(response.headers["Retry-After"]) > 0
        assert response.json()["error"]["code"] == "dependency_unavailable"
    # Reads still work; nothing was evicted, nothing half-written.
    assert client.get(f"/v1/jobs/{before[0]}").json()["status"] == "queued"
    assert int(r.info("stats")["evicted_keys"]) == 0
    assert r.dbsize() == keys_before
    assert job_record_ids(r) == queued_message_job_ids(r) == sorted(before)
    assert r.get(f"{PREFIX}idem:full:full-1") is None
    # The job store's own write is one script: its first write is refused, and so the whole of it.
    with pytest.raises(redis.exceptions.ResponseError, match="OOM command not allowed"):
        JobStore(r).create(job_id="f" * 32, tenant="full", key_id="k", kind="style_transfer", params={}, inputs={})
    assert not r.exists(JobStore.job_key("f" * 32)) and r.zscore(JobStore.tenant_index("full"), "f" * 32) is None

    r.config_set("maxmemory", 0)
    after = client.submit(body, headers={"Idempotency-Key": "full-1"})
    assert after.status_code == 202, after.text
    assert job_record_ids(r) == queued_message_job_ids(r) == sorted([*before, after.json()["id"]])
    assert requests.get(client.base + "/readyz", timeout=10).status_code == 200
