"""Redis or S3 down: the API answers 503 with Retry-After, and recovers by itself."""

from __future__ import annotations

import requests
from PIL import Image

from deploy.devstack import Stack
from tests.conftest import ApiClient, image_bytes


def assert_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    assert response.json()["error"]["code"] in ("dependency_unavailable", "not_ready")


def test_redis_down_gives_503_then_recovers(own_stack: Stack, photo: Image.Image) -> None:
    client = ApiClient(f"http://127.0.0.1:{own_stack.api_port}", own_stack.create_key("ops"))
    upload = client.upload_image(photo.resize((64, 64)))
    body = {"kind": "style_transfer", "inputs": {"content": upload["id"]}, "params": {"style": "bold-ink"}}
    assert client.submit(body).status_code == 202

    own_stack.stop("redis")
    assert_unavailable(requests.get(client.base + "/readyz", timeout=10))
    assert_unavailable(client.submit(body))
    assert_unavailable(client.get("/v1/jobs"))
    assert requests.get(client.base + "/healthz", timeout=10).status_code == 200

    own_stack.start_redis(port=own_stack.redis_port)  # same port, same AOF folder
    assert requests.get(client.base + "/readyz", timeout=10).status_code == 200
    assert client.submit(body).status_code == 202
    # The job queued before the outage survived it (appendonly).
    assert len(client.get("/v1/jobs").json()["items"]) == 2


def test_s3_down_gives_503_for_uploads_then_recovers(own_stack: Stack, photo: Image.Image) -> None:
    client = ApiClient(f"http://127.0.0.1:{own_stack.api_port}", own_stack.create_key("ops"))
    png = image_bytes(photo.resize((64, 64)))
    own_stack.stop("s3")
    assert_unavailable(requests.get(client.base + "/readyz", timeout=10))
    assert_unavailable(client.upload(png))
    own_stack.start_s3(port=own_stack.s3_port)
    assert client.upload(png).status_code == 201
