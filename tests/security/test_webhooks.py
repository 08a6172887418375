"""Webhooks through the real service: API -> Redis -> Celery worker -> a receiver on loopback.

The stack here allows private addresses (the receiver listens on 127.0.0.1); the SSRF guard's
defaults are tested on an app with default settings."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from deploy.devstack import Stack
from shared.webhooks import verify_signature
from tests.conftest import ApiClient, eventually, image_bytes, stack_on
from tests.security.conftest import stack_with
from tests.security.receiver import Receiver, closed_port

MAX_ATTEMPTS = 4
BACKOFF_S = 0.25
WEBHOOK_ENV = {
    "ARTFORGE_WEBHOOK_ALLOW_PRIVATE": "true",
    "ARTFORGE_WEBHOOK_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    "ARTFORGE_WEBHOOK_BACKOFF_S": str(BACKOFF_S),
    "ARTFORGE_WEBHOOK_CONNECT_TIMEOUT_S": "1",
    "ARTFORGE_WEBHOOK_READ_TIMEOUT_S": "2",
}


@pytest.fixture(scope="module")
def hook_stack(servers: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack_with(servers, tmp_path_factory.mktemp("webhooks"), WEBHOOK_ENV, workers=("inference",)) as stack:
        yield stack


@pytest.fixture(scope="module")
def alice(hook_stack: Stack) -> ApiClient:
    return ApiClient(f"http://127.0.0.1:{hook_stack.api_port}", hook_stack.create_key("alice"))


@pytest.fixture(scope="module")
def content_id(alice: ApiClient, photo: Image.Image) -> str:
    return str(alice.upload_image(photo.resize((96, 96)))["id"])


def submit_with_webhook(client: ApiClient, content_id: str, url: str) -> dict[str, Any]:
    response = client.submit({"kind": "style_transfer", "inputs": {"content": content_id},
                              "params": {"style": "sepia-drawing", "max_side": 96}, "webhook_url": url})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["webhook"] == {"url": url, "state": "pending", "deliveries": []}
    return dict(job)


def wait_for_webhook(client: ApiClient, job_id: str, timeout: float = 90) -> dict[str, Any]:
    def sent() -> dict[str, Any] | None:
        job = dict(client.get(f"/v1/jobs/{job_id}").json())
        return job if job["webhook"]["state"] != "pending" else None

    return eventually(sent, timeout, f"the webhook of job {job_id} sent")


def test_finished_job_is_posted_once_signed_with_the_tenants_secret(alice: ApiClient, content_id: str) -> None:
    secret = alice.get("/v1/webhooks/secret").json()["secret"]
    with Receiver() as receiver:
        job = submit_with_webhook(alice, content_id, receiver.url("/hooks/artforge?source=test"))
        done = wait_for_webhook(alice, job["id"])
        # Nothing more arrives for it: a later job's delivery, on the same queue, comes after any repeat.
        wait_for_webhook(alice, submit_with_webhook(alice, content_id, receiver.url("/hooks/later"))["id"])
    assert done["status"] == "succeeded"
    assert done["webhook"]["state"] == "delivered"
    [delivery] = done["webhook"]["deliveries"]
    assert delivery["attempt"] == 1 and delivery["status_code"] == 200 and "error" not in delivery
    assert delivery["duration_ms"] >= 0 and delivery["at"]

    [request, later] = receiver.received
    assert request.path == "/hooks/artforge?source=test" and later.path == "/hooks/later"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["ArtForge-Event"] == "job.finished"
    assert request.headers["ArtForge-Delivery"] == job["id"] and request.headers["ArtForge-Attempt"] == "1"
    assert verify_signature(secret, request.headers["ArtForge-Signature"], request.body)
    assert not verify_signature(secret, request.headers["ArtForge-Signature"], request.body.replace(b"}", b" }", 1))
    body = json.loads(request.body)
    assert body["event"] == "job.finished"
    assert body["job"]["id"] == job["id"] and body["job"]["status"] == "succeeded" and body["job"]["error"] is None
    assert [r["sha256"] for r in body["job"]["results"]] == [r["sha256"] for r in done["results"]]
    assert body["job"]["results"][0]["url"] == done["results"][0]["url"]


def test_failing_receiver_is_retried_with_backoff_until_it_accepts(alice: ApiClient, content_id: str) -> None:
    with Receiver([(500, {}), (500, {}), (200, {})]) as receiver:
        job = submit_with_webhook(alice, content_id, receiver.url())
        done = wait_for_webhook(alice, job["id"])
    assert done["status"] == "succeeded" and done["webhook"]["state"] == "delivered"
    deliveries = done["webhook"]["deliveries"]
    assert [d["attempt"] for d in deliveries] == [1, 2, 3]
    assert [d.get("status_code") for d in deliveries] == [500, 500, 200]
    assert [r.headers["ArtForge-Attempt"] for r in receiver.received] == ["1", "2", "3"]
    gaps = [b.at - a.at for a, b in zip(receiver.received, receiver.received[1:], strict=False)]
    print(f"gaps between attempts: {[round(g, 3) for g in gaps]} s (backoff {BACKOFF_S}, x2)")
    assert gaps[0] >= BACKOFF_S * 0.9 and gaps[1] >= 2 * BACKOFF_S * 0.9


def test_unreachable_receiver_ends_failed_and_the_job_still_succeeds(alice: ApiClient, content_id: str) -> None:
    job = submit_with_webhook(alice, content_id, f"http://127.0.0.1:{closed_port()}/hook")
    done = wait_for_webhook(alice, job["id"])
    assert done["status"] == "succeeded" and done["error"] is None and done["results"]
    assert done["webhook"]["state"] == "failed"
    deliveries = done["webhook"]["deliveries"]
    assert [d["attempt"] for d in deliveries] == list(range(1, MAX_ATTEMPTS + 1))
    assert all("status_code" not in d and "connect" in d["error"] for d in deliveries), deliveries


def test_redirects_are_not_followed(alice: ApiClient, content_id: str) -> None:
    with Receiver() as elsewhere, Receiver() as receiver:
        receiver.responses = [(307, {"Location": elsewhere.url("/stolen")})]
        job = submit_with_webhook(alice, content_id, receiver.url())
        done = wait_for_webhook(alice, job["id"])
    assert done["webhook"]["state"] == "failed"
    assert {d["status_code"] for d in done["webhook"]["deliveries"]} == {307}
    assert len(receiver.received) == MAX_ATTEMPTS and elsewhere.received == []


def test_job_without_webhook_shows_none(alice: ApiClient, content_id: str) -> None:
    response = alice.submit({"kind": "style_transfer", "inputs": {"content": content_id},
                             "params": {"style": "sepia-drawing", "max_side": 64}})
    assert response.status_code == 202 and response.json()["webhook"] is None


# -- the SSRF guard with default settings ------------------------------------------------------


@pytest.fixture(scope="module")
def default_app(servers: Stack, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Stack]:
    """The API with default webhook settings, in process, on a namespace of the session's real Redis
    and S3 that no worker serves: no delivery is ever attempted."""
    from api import create_app

    stack = stack_on(servers, tmp_path_factory.mktemp("default-webhooks"))
    settings = stack.settings()
    assert not settings.webhook_allow_private and not settings.webhook_allowed_hosts
    return create_app(settings), stack


REFUSED = [
    "http://127.0.0.1:8080/hook", "http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook", "http://localhost:9000/hook", "http://[::ffff:127.0.0.1]/", "http://2130706433/",
    "http://0177.0.0.1/", "http://192.168.0.10/", "http://[fd00::1]/", "http://0.0.0.0/", "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL", "https://u:p@example.com/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_default_settings_refuse_non_public_webhook_urls(default_app: tuple[Any, Stack], url: str) -> None:
    app, stack = default_app
    headers = {"Authorization": f"Bearer {stack.create_key('mallory')}"}
    client = app.test_client()
    response = client.post("/v1/jobs", headers=headers, json={
        "kind": "style_transfer", "inputs": {"content": "0" * 32}, "params": {"style": "sepia-drawing"},
        "webhook_url": url})
    assert response.status_code == 422, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "invalid_webhook_url" and error["details"] == {"field": "webhook_url"}
    assert "webhook_url" in error["message"]
    assert client.get("/v1/jobs", headers=headers).get_json()["items"] == []


def test_default_settings_accept_a_public_address(default_app: tuple[Any, Stack], photo: Image.Image) -> None:
    app, stack = default_app
    headers = {"Authorization": f"Bearer {stack.create_key('mallory')}"}
    client = app.test_client()
    upload = client.post("/v1/uploads", headers=headers,
                         data={"file": (io.BytesIO(image_bytes(photo.resize((64, 64)))), "p.png")})
    assert upload.status_code == 201, upload.get_data(as_text=True)
    response = client.post("/v1/jobs", headers=headers, json={
        "kind": "style_transfer", "inputs": {"content": upload.get_json()["id"]},
        "params": {"style": "sepia-drawing"}, "webhook_url": "https://93.184.215.14/hook"})
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json()["webhook"]["url"] == "https://93.184.215.14/hook"
