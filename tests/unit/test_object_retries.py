"""One retry budget per S3 call: ``RetryPolicy`` retries, the HTTP client under it does not.

A loopback HTTP server answers every request 503 and counts them: the count is exactly the
policy's tries (with urllib3's own retries layered under it, it would be three times that)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import tenacity
import urllib3

from shared.objects import ObjectStore, RetryPolicy, StorageUnavailable
from shared.settings import Settings


class Unavailable(BaseHTTPRequestHandler):
    requests = 0

    def _answer(self) -> None:
        type(self).requests += 1
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PUT = do_HEAD = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def down_s3() -> Iterator[tuple[Settings, type[Unavailable]]]:
    handler = type("Counting", (Unavailable,), {"requests": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Settings(s3_endpoint=f"127.0.0.1:{server.server_address[1]}"), handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_worker_store_tries_exactly_its_budget(down_s3: tuple[Settings, type[Unavailable]]) -> None:
    settings, handler = down_s3
    store = ObjectStore(settings).with_retries(RetryPolicy(attempts=4, backoff_s=0.01, max_backoff_s=0.02))
    with pytest.raises(StorageUnavailable, match="after 4 tries"):
        store.get_bytes("bucket", "key")
    assert handler.requests == 4


def test_the_api_store_tries_twice_without_waiting(down_s3: tuple[Settings, type[Unavailable]]) -> None:
    settings, handler = down_s3
    with pytest.raises(StorageUnavailable):
        ObjectStore(settings).put_bytes("bucket", "key", b"data")
    assert handler.requests == 2


def test_a_single_try_policy_raises_the_original_error() -> None:
    calls = []

    def refused() -> None:
        calls.append(1)
        raise urllib3.exceptions.NewConnectionError(None, "refused")  # type: ignore[arg-type]

    with pytest.raises(urllib3.exceptions.NewConnectionError):
        RetryPolicy(attempts=1).call(refused, "reading b/k")
    assert len(calls) == 1


def test_what_is_not_an_outage_is_never_retried() -> None:
    calls = []

    def broken() -> None:
        calls.append(1)
        raise KeyError("a bug, not an outage")

    with pytest.raises(KeyError):
        RetryPolicy(attempts=5).call(broken, "reading b/k")
    assert len(calls) == 1


def test_backoff_doubles_up_to_its_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(tenacity.nap.time, "sleep", waits.append)  # tenacity's sleep, recorded

    def flaky() -> str:
        if len(waits) < 4:
            raise ConnectionResetError("dropped")
        return "ok"

    assert RetryPolicy(attempts=5, backoff_s=0.5, max_backoff_s=1.5).call(flaky, "reading b/k") == "ok"
    assert waits == [0.5, 1.0, 1.5, 1.5]
