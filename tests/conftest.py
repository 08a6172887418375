"""Fixtures that start real servers: Redis, S3 (SeaweedFS), the API under gunicorn, and
Celery worker processes, each on free loopback ports in a temporary folder, stopped at
the end of the session. Nothing here is mocked.

One Redis and one S3 server serve the whole session (``servers``). A test module (or test) that
needs settings of its own, or workers it may kill, gets a stack of its own on them
(``stack_on``): its own Redis database and its own buckets, so nothing of another module's is
seen, and its own API and workers. Only tests that stop, restart or reconfigure Redis or S3
themselves start servers of their own (``own_stack``).
"""

from __future__ import annotations

import io
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from PIL import Image

from deploy.devstack import Stack

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Call ``check`` until it returns something truthy, and return that. An exception it raises
    counts as "not yet" (a file not written, a server still starting), but an AssertionError fails
    at once. After ``timeout`` seconds: an AssertionError naming ``what`` and the last answer.
    The one way the tests wait for a positive signal."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except AssertionError:  # the check found something wrong, not something missing
            raise
        except Exception as exc:  # not there yet
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:.0f}s (last: {last!r})"[:2000])
        time.sleep(interval)


def tasks_done(log: Path, task: str, after: float = 0.0) -> int:
    """How many runs of the Celery task named ``task`` a worker's log says succeeded after Unix time
    ``after``: a positive signal that, say, the reaper has swept since something happened."""
    done = 0
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{") or f"Task {task}[" not in line or " succeeded in " not in line:
            continue
        at = datetime.fromisoformat(json.loads(line)["timestamp"]).timestamp()
        done += at > after
    return done


# Short leases so a dead worker's job is requeued within seconds in tests.
TEST_ENV = {
    "ARTFORGE_LEASE_S": "6",
    "ARTFORGE_HEARTBEAT_S": "1",
    "ARTFORGE_MAX_UPLOAD_BYTES": str(12 * 1024 * 1024),
    # A session's tenant stands for every test at once, not for one user: the per-tenant limits
    # that protect a service throttled the suite (a 429 on a gallery page's login). The limiter
    # still runs; tests/security/test_rate_limits.py tests the limits at values of its own.
    "ARTFORGE_RATE_LIMIT_DEFAULT": "100000/minute",
    "ARTFORGE_RATE_LIMIT_SUBMIT": "10000/minute",
    # The machine's debian-images corpus (make datasets) is never seen: the tests' workers are
    # workers without it, wherever they run.
    "ARTFORGE_DEBIAN_IMAGES_MANIFEST": "/nonexistent/artforge/debian-images.json",
}


# Database 0 and the default bucket names are the session stack's; each stack_on takes the next.
REDIS_DATABASES = 100
_namespaces = itertools.count(1)


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Redis and S3 only."""
    stack = Stack(tmp_path_factory.mktemp("stack"), env=dict(TEST_ENV))
    try:
        stack.start_redis(extra_args=["--databases", str(REDIS_DATABASES)])
        stack.start_s3()
        yield stack
    finally:
        stack.stop_all()


def stack_on(servers: Stack, workdir: Path, env: dict[str, str] | None = None) -> Stack:
    """A stack in ``workdir`` on the session's Redis and S3, with settings ``env`` on top of the test
    settings: a Redis database and buckets of its own, so it sees nothing of any other stack's and
    no other stack sees its things. It starts no process: the caller starts the API and workers it
    needs, and stops them with ``stop_all`` (which leaves the shared servers alone)."""
    number = next(_namespaces)
    assert number < REDIS_DATABASES, "more stacks than Redis databases: raise REDIS_DATABASES"
    shared = {name: value for name, value in servers.env.items() if name.startswith("ARTFORGE_S3_")}
    own = {"ARTFORGE_REDIS_URL": f"redis://127.0.0.1:{servers.redis_port}/{number}",
           **{f"ARTFORGE_BUCKET_{kind.upper()}": f"ns{number:02d}-{kind}"
              for kind in ("uploads", "results", "models", "datasets")}}
    stack = Stack(workdir, env={**TEST_ENV, **shared, **(env or {}), **own}, redis_port=servers.redis_port,
                  s3_port=servers.s3_port)
    stack.ensure_buckets(timeout=30)
    return stack


@pytest.fixture
def isolated_stack(servers: Stack, tmp_path: Path) -> Iterator[Stack]:
    """The API of this test alone, in a namespace of its own on the session's servers, for tests that
    kill or stop workers; the test starts the workers (and beat, for the reaper) it needs."""
    stack = stack_on(servers, tmp_path)
    try:
        stack.start_api(workers=1, threads=4)
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[Stack]:
    """Redis, S3 and the API of this test alone, for tests that stop, restart or reconfigure Redis
    or S3; the test starts the workers (and beat, for the reaper) it needs."""
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
        last: list[dict[str, Any]] = [{}]

        def ended() -> dict[str, Any] | None:
            last[0] = dict(self.get(f"/v1/jobs/{job_id}").json())
            return last[0] if last[0].get("status") in statuses else None

        try:
            return eventually(ended, timeout, f"job {job_id} in {statuses}", interval=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the job: {last[0]}") from None


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
