"""Oversize bodies, with a Content-Length and chunked without one, through gunicorn (gthread):
413 in the API's error shape, early, without the body being read into memory.

How the cap works: Flask's ``MAX_CONTENT_LENGTH`` is the upload limit plus multipart framing
(``api.create_app``). A declared Content-Length over it is refused from the headers, before a
byte of the body is read. gunicorn marks chunked bodies ``wsgi.input_terminated``, so werkzeug
reads them through a stream that raises 413 the moment the cap is passed; a file part is spooled
to a temporary file past 500 KB and other form fields are capped at ``MAX_FORM_MEMORY_SIZE``, so
what the process holds stays small. The route then reads at most limit + 1 bytes of the file.
After answering, gunicorn drains at most 64 KB of the rest and closes the connection; the client
sees the 413 (or, at worst, a reset) instead of sending 200 MB.

The 12 MiB body that test_bad_input sends in one piece is the plain case; these are the slow ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import requests

from deploy.devstack import Stack
from tests.conftest import ApiClient
from tests.integration.test_bad_input import assert_error
from tests.security.conftest import stack_with
from tests.security.process_memory import api_workers_rss_mb

HOSTILE_BYTES = 200 * 1024 * 1024
PIECE = 64 * 1024
PAUSE_S = 0.001  # about 50 MB/s: 200 MB would take seconds; the cap is met in a fraction of one
# What may pass the cap before the 413 reaches the client: the kernel's socket buffers on both
# ends (loopback autotuning: a few MB each way) and gunicorn's 64 KB drain.
SLACK_BYTES = 12 * 1024 * 1024
RSS_GROWTH_MB = 50
BOUNDARY = "artforge-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


@dataclass
class SlowBody:
    """HOSTILE_BYTES of body, produced slowly, counting what was taken from it."""

    head: bytes
    filler: bytes
    taken: int = 0
    finished: bool = False

    def __iter__(self) -> Iterator[bytes]:
        self.taken += len(self.head)
        yield self.head
        while self.taken < HOSTILE_BYTES:
            self.taken += len(self.filler)
            yield self.filler
            time.sleep(PAUSE_S)
        self.finished = True

    def as_file(self) -> SlowFile:
        """The same body as a file of known length: requests then declares its Content-Length
        (a generator would be sent chunked)."""
        return SlowFile(iter(self), HOSTILE_BYTES)


@dataclass
class SlowFile:
    pieces: Iterator[bytes]
    length: int

    def __len__(self) -> int:
        return self.length

    def read(self, size: int = -1) -> bytes:
        return next(self.pieces, b"")


def multipart(field: str = "file", filename: str | None = "huge.png") -> SlowBody:
    disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\nContent-Type: image/png\r\n\r\n".encode()
    return SlowBody(head, b"\x89PNG\r\n\x1a\n".ljust(PIECE, b"\0"))


def json_document() -> SlowBody:
    return SlowBody(b'{"kind": "style_transfer", "params": {"note": "', b"a" * PIECE)


@pytest.fixture(scope="module")
def capped(servers: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack_with(servers, tmp_path_factory.mktemp("capped"), {}) as stack:
        yield stack


@pytest.fixture(scope="module")
def client(capped: Stack) -> ApiClient:
    return ApiClient(f"http://127.0.0.1:{capped.api_port}", capped.create_key("capped", admin=True))


def cap_of(stack: Stack) -> int:
    from api import MULTIPART_OVERHEAD

    return int(stack.settings().max_upload_bytes) + MULTIPART_OVERHEAD


def send(client: ApiClient, path: str, body: SlowBody, declared: bool = False,
         content_type: str = MULTIPART) -> tuple[requests.Response, float]:
    """POST ``body``, chunked or with its Content-Length declared; the answer and its seconds."""
    started = time.monotonic()
    data = body.as_file() if declared else iter(body)
    response = client.post(path, data=data, headers={"Content-Type": content_type})
    return response, time.monotonic() - started


def test_declared_oversize_body_is_refused_before_it_is_read(capped: Stack, client: ApiClient) -> None:
    body = multipart()
    response, seconds = send(client, "/v1/uploads", body, declared=True)
    assert_error(response, 413, "too_large")
    assert not body.finished
    print(f"\nContent-Length {HOSTILE_BYTES} B: 413 after {body.taken} B sent, {seconds:.2f} s")
    # Nothing was read: what was sent fits in the socket buffers, far below the cap itself.
    assert body.taken < cap_of(capped), body.taken


# Every route that takes a body, chunked: (path, body, content type)
CHUNKED_ROUTES: dict[str, tuple[str, Callable[[], SlowBody], str]] = {
    "upload": ("/v1/uploads", multipart, MULTIPART),
    # Without a filename the part is a form field, held in memory: capped at MAX_FORM_MEMORY_SIZE.
    "upload_as_a_form_field": ("/v1/uploads", lambda: multipart(filename=None), MULTIPART),
    "verify": ("/v1/verify", multipart, MULTIPART),
    "dataset": ("/v1/datasets", lambda: multipart(filename="huge.zip"), MULTIPART),
    "protected_work": ("/v1/protected-works", multipart, MULTIPART),
    "job_json": ("/v1/jobs", json_document, "application/json"),
}


@pytest.mark.parametrize("name", sorted(CHUNKED_ROUTES))
def test_chunked_oversize_body_is_refused_once_past_the_cap(capped: Stack, client: ApiClient, name: str) -> None:
    path, make_body, content_type = CHUNKED_ROUTES[name]
    body = make_body()
    response, seconds = send(client, path, body, content_type=content_type)
    assert_error(response, 413)
    assert not body.finished
    print(f"\nchunked {name}: 413 after {body.taken / 2**20:.1f} MiB taken from the body "
          f"(cap {cap_of(capped) / 2**20:.1f} MiB), {seconds:.2f} s")
    assert body.taken <= cap_of(capped) + SLACK_BYTES, body.taken


def test_api_memory_stays_bounded_under_oversize_bodies(capped: Stack, client: ApiClient) -> None:
    assert client.get("/v1/jobs").status_code == 200  # warm
    before = api_workers_rss_mb(capped)
    for _ in range(2):
        assert send(client, "/v1/uploads", multipart(), declared=True)[0].status_code == 413
        for name in ("upload", "upload_as_a_form_field", "job_json"):
            path, make_body, content_type = CHUNKED_ROUTES[name]
            assert send(client, path, make_body(), content_type=content_type)[0].status_code == 413
    after = api_workers_rss_mb(capped)
    print(f"\nAPI worker RSS MB before {before}, after 8 oversize bodies {after}")
    for pid, start in before.items():
        assert after[pid] - start <= RSS_GROWTH_MB, (pid, start, after[pid])
    assert requests.get(client.base + "/readyz", timeout=10).status_code == 200
