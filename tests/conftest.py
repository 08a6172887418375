"""Fixtures that start real servers: Redis, S3 (SeaweedFS), the API under gunicorn, and
Celery worker processes, each on free loopback ports in a temporary folder, stopped at
the end of the session. Nothing here is mocked."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from deploy.devstack import Stack

# Short leases so a dead worker's job is requeued within seconds in tests.
TEST_ENV = {
    "ARTFORGE_LEASE_S": "6",
    "ARTFORGE_HEARTBEAT_S": "1",
    "ARTFORGE_MAX_UPLOAD_BYTES": str(12 * 1024 * 1024),
}


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Redis and S3 only."""
    stack = Stack(tmp_path_factory.mktemp("stack"), env=dict(TEST_ENV))
    try:
        stack.start_redis()
        stack.start_s3()
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[Stack]:
    """Redis, S3 and the API of this test alone, for tests that kill, stop or restart parts
    of the service; the test starts the workers (and beat, for the reaper) it needs."""
    stack = Stack(tmp_path, env=dict(TEST_ENV))
    try:
        stack.start_redis()
        stack.start_s3()
        stack.start_api(workers=1, threads=4)
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture(scope="session")
def stack(servers: Stack) -> Iterator[Stack]:
    """The whole service: servers, API, an inference and a training worker, beat."""
    try:
        servers.start_api()
        servers.start_worker("inference")
        servers.start_worker("training")
        servers.start_beat()
        yield servers
    finally:
        for name in ("beat", "worker-training", "worker-inference", "api"):
            servers.stop(name)


# The rights declaration of an image the requester holds the rights to (style references and
# images to restore need one).
OWN_RIGHTS = {"requester_holds_rights": "true"}


@dataclass
class ApiClient:
    """A thin requests wrapper holding one tenant's key."""

    base: str
    key: str

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", **(extra or {})}

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self._url(path), headers=self._headers(kw.pop("headers", None)), timeout=30, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return requests.post(self._url(path), headers=self._headers(kw.pop("headers", None)), timeout=60, **kw)

    def put(self, path: str, **kw: Any) -> requests.Response:
        return requests.put(self._url(path), headers=self._headers(kw.pop("headers", None)), timeout=60, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return requests.delete(self._url(path), headers=self._headers(kw.pop("headers", None)), timeout=30, **kw)

    def _url(self, path: str) -> str:
        return path if path.startswith("http") else self.base + path

    def upload(self, data: bytes, filename: str = "image.png",
               rights: dict[str, str] | None = None) -> requests.Response:
        """``rights``: the upload's rights declaration form fields, e.g. ``OWN_RIGHTS``."""
        return self.post("/v1/uploads", files={"file": (filename, data)}, data=rights or {})

    def upload_image(self, image: Image.Image, fmt: str = "PNG",
                     rights: dict[str, str] | None = None) -> dict[str, Any]:
        response = self.upload(image_bytes(image, fmt), f"image.{fmt.lower()}", rights)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def submit(self, body: dict[str, Any], **kw: Any) -> requests.Response:
        return self.post("/v1/jobs", json=body, **kw)

    def wait(self, job_id: str, statuses: tuple[str, ...] = ("succeeded", "failed", "canceled"),
             timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in statuses:
                return dict(job)
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s: {job}")
            time.sleep(0.1)


def train_model(admin: ApiClient, params: dict[str, Any], timeout: float = 1500) -> dict[str, Any]:
    """Run a training job through the queue; its job, the model and the new version's card."""
    response = admin.submit({"kind": "training", "params": params})
    assert response.status_code == 202, response.text
    job = admin.wait(response.json()["id"], timeout=timeout)
    assert job["status"] == "succeeded", job
    model = admin.get(f"/v1/models/{params['model']}").json()
    return {"job": job, "model": model, "card": model["cards"][-1]}


def image_bytes(image: Image.Image, fmt: str = "PNG", **save: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def client(stack: Stack) -> ApiClient:
    return ApiClient(f"http://127.0.0.1:{stack.api_port}", stack.create_key("alice"))


@pytest.fixture(scope="session")
def admin_client(stack: Stack) -> ApiClient:
    return ApiClient(f"http://127.0.0.1:{stack.api_port}", stack.create_key("alice", admin=True))


@pytest.fixture(scope="session")
def other_client(stack: Stack) -> ApiClient:
    return ApiClient(f"http://127.0.0.1:{stack.api_port}", stack.create_key("bob"))


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


@pytest.fixture(scope="session")
def painting() -> Image.Image:
    """A painting-like style reference: thick blue and yellow strokes, seeded."""
    import random

    from PIL import ImageDraw

    rng = random.Random(7)
    canvas = Image.new("RGB", (384, 384), (20, 40, 120))
    draw = ImageDraw.Draw(canvas)
    palette = [(30, 60, 170), (250, 210, 40), (10, 20, 70), (120, 170, 240), (240, 150, 20)]
    for _ in range(160):
        x, y = rng.randrange(384), rng.randrange(384)
        dx, dy = rng.randint(-60, 60), rng.randint(-60, 60)
        draw.line([(x, y), (x + dx, y + dy)], fill=rng.choice(palette), width=rng.randint(4, 14))
    return canvas
