"""Idempotency-Key on POST /v1/jobs, through gunicorn on a real Redis: a repeated request gets the
first one's job, a different body with the key is a conflict, concurrent duplicates make one job,
and keys belong to a tenant.

The admission script's own rules (replay, per-tenant names, nothing written when refused) are tested in
tests/integration/test_admission.py; these tests hold the HTTP contract."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from PIL import Image

from api.auth import KeyStore
from api.schemas import JobRequestSchema
from deploy.devstack import Stack
from shared.connections import Stores
from shared.jobs import new_job_id
from tests.conftest import ApiClient

CONCURRENT = 16


def assert_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code and body["error"]["message"]
    return dict(body["error"])


def tenant(stack: Stack, name: str) -> ApiClient:
    # Tenants of this module alone: their submissions count against nobody else's rate limit.
    return ApiClient(f"http://127.0.0.1:{stack.api_port}", stack.create_key(f"{name}-{uuid.uuid4().hex[:6]}"))


@pytest.fixture(scope="module")
def alice(stack: Stack) -> ApiClient:
    return tenant(stack, "idem-alice")


@pytest.fixture(scope="module")
def bob(stack: Stack) -> ApiClient:
    return tenant(stack, "idem-bob")


def job_body(client: ApiClient, photo: Image.Image, style: str = "bold-ink") -> dict[str, Any]:
    upload = client.upload_image(photo.resize((64, 64)))
    return {"kind": "style_transfer", "inputs": {"content": upload["id"]}, "params": {"style": style}}


def job_ids(client: ApiClient) -> list[str]:
    return [job["id"] for job in client.get("/v1/jobs", params={"limit": 100}).json()["items"]]


def test_repeated_request_with_a_key_returns_the_first_job(alice: ApiClient, photo: Image.Image) -> None:
    body, key = job_body(alice, photo), {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    first = alice.submit(body, headers=key)
    assert first.status_code == 202, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = alice.submit(body, headers=key)
    assert again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"] == f"/v1/jobs/{first.json()['id']}"
    assert job_ids(alice).count(first.json()["id"]) == 1
    # Without the key the same body is a new job.
    assert alice.submit(body).json()["id"] != first.json()["id"]


def test_a_different_body_with_a_used_key_is_409(alice: ApiClient, photo: Image.Image) -> None:
    body, key = job_body(alice, photo), {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    first = alice.submit(body, headers=key)
    assert first.status_code == 202, first.text
    before = job_ids(alice)
    other = {**body, "params": {"style": "sepia-drawing"}}
    assert_error(alice.submit(other, headers=key), 409, "idempotency_conflict")
    assert job_ids(alice) == before, "a refused request makes no job"
    # The key still answers with its first job.
    assert alice.submit(body, headers=key).json()["id"] == first.json()["id"]


def test_concurrent_duplicates_with_one_key_make_one_job(alice: ApiClient, photo: Image.Image) -> None:
    body, key = job_body(alice, photo), {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    before = set(job_ids(alice))
    start = threading.Barrier(CONCURRENT)

    def submit(_: int) -> requests.Response:
        start.wait(timeout=30)
        return alice.submit(body, headers=key)

    with ThreadPoolExecutor(CONCURRENT) as pool:
        responses = list(pool.map(submit, range(CONCURRENT)))
    assert [r.status_code for r in responses] == [202] * CONCURRENT, [r.text for r in responses if r.status_code != 202]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in responses) == 1, "exactly one request made the job"
    assert set(job_ids(alice)) - before == ids


def test_a_key_whose_job_is_gone_is_a_conflict_until_it_is_given_back(
        stack: Stack, alice: ApiClient, photo: Image.Image) -> None:
    """A submission's key and record are written together (shared.admission), so a key without a
    record belongs to a request whose enqueue failed and is giving its key back (or to a job that
    expired): the duplicate is told at once to send again, and the request after the key's release
    makes a job."""
    stores = Stores.from_settings(stack.settings())
    who = KeyStore(stores.jobs.redis).verify(alice.key)
    assert who is not None
    body, key = job_body(alice, photo), f"gone-{uuid.uuid4()}"
    loaded = JobRequestSchema().load(body)  # what the API hashes: the body as its schema loads it
    body_sha256 = hashlib.sha256(json.dumps(loaded, sort_keys=True).encode()).hexdigest()
    stores.jobs.redis.set(stores.jobs.idempotency_key(who.tenant, key), f"{new_job_id()} {body_sha256}")

    started = time.monotonic()
    assert_error(alice.submit(body, headers={"Idempotency-Key": key}), 409, "idempotency_conflict")
    assert time.monotonic() - started < 2  # no waiting for a record that is not coming
    stores.jobs.release_idempotency_key(who.tenant, key)
    again = alice.submit(body, headers={"Idempotency-Key": key})
    assert again.status_code == 202, again.text
    assert "Idempotent-Replayed" not in again.headers
    assert alice.submit(body, headers={"Idempotency-Key": key}).json()["id"] == again.json()["id"]


def test_keys_are_per_tenant(alice: ApiClient, bob: ApiClient, photo: Image.Image) -> None:
    key, body = {"Idempotency-Key": f"shared-{uuid.uuid4()}"}, job_body(alice, photo)
    mine = alice.submit(body, headers=key)
    assert mine.status_code == 202, mine.text
    # Another tenant's request with the same key, and a different body, is a job of its own.
    theirs = bob.submit(job_body(bob, photo, style="sepia-drawing"), headers=key)
    assert theirs.status_code == 202, theirs.text
    assert theirs.json()["id"] != mine.json()["id"]
    assert "Idempotent-Replayed" not in theirs.headers
    # Neither sees the other's job, and each key still answers with its own tenant's job.
    assert bob.get(f"/v1/jobs/{mine.json()['id']}").status_code == 404
    assert alice.get(f"/v1/jobs/{theirs.json()['id']}").status_code == 404
    assert alice.submit(body, headers=key).json()["id"] == mine.json()["id"]
    assert bob.get("/v1/jobs").json()["items"][0]["id"] == theirs.json()["id"]


@pytest.mark.parametrize("value", ["", "x" * 256, "tab\there"])
def test_malformed_keys_are_400(alice: ApiClient, photo: Image.Image, value: str) -> None:
    assert_error(alice.submit(job_body(alice, photo), headers={"Idempotency-Key": value}), 400, "malformed_request")
