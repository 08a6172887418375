"""A job's live progress as server-sent events, over the real stack: replay from the start for a
late client, live events for an early one, resumption after Last-Event-ID, tenant isolation,
keep-alives, a bounded stream lifetime, and a stream that stops when its client goes away."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from PIL import Image

from client.sdk import parse_sse, sse_lines
from deploy.devstack import Stack
from shared.connections import redis_client
from shared.jobs import JobStatus, JobStore, new_job_id
from tests.conftest import ApiClient, eventually

TERMINAL = ("succeeded", "failed", "canceled")


@dataclass
class Event:
    name: str
    id: str | None
    data: dict[str, Any]


def open_stream(client: ApiClient, job_id: str, last_event_id: str | None = None,
                base: str | None = None) -> requests.Response:
    headers = {"Accept": "text/event-stream", **({"Last-Event-ID": last_event_id} if last_event_id else {})}
    return requests.get(f"{base or client.base}/v1/jobs/{job_id}/events", stream=True, timeout=60,
                        headers={"Authorization": f"Bearer {client.key}", **headers})


def events_of(response: requests.Response) -> Iterator[Event]:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    for sse in parse_sse(response.iter_content(chunk_size=None)):
        if sse.data:  # the leading "retry:" carries no data
            yield Event(sse.event, sse.id, json.loads(sse.data))


def read_all(client: ApiClient, job_id: str, last_event_id: str | None = None) -> list[Event]:
    with open_stream(client, job_id, last_event_id) as response:
        return list(events_of(response))


def entry_order(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq)


def submit_style_job(client: ApiClient, image: Image.Image, max_side: int) -> str:
    upload = client.upload_image(image, "JPEG")
    response = client.submit({"kind": "style_transfer", "inputs": {"content": upload["id"]},
                              "params": {"style": "starry-swirl", "max_side": max_side}})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


@pytest.fixture(scope="module")
def finished_job(client: ApiClient, photo: Image.Image) -> dict[str, Any]:
    job = client.wait(submit_style_job(client, photo, 256))
    assert job["status"] == "succeeded", job
    return job


@pytest.fixture(scope="module")
def store(stack: Stack) -> JobStore:
    return JobStore(redis_client(stack.settings()), stack.settings().finished_job_ttl_s)


def make_job(store: JobStore, tenant: str = "alice") -> str:
    """A job that only this test moves: it is never enqueued, so no worker takes it."""
    job_id = new_job_id()
    store.create(job_id=job_id, tenant=tenant, key_id="test", kind="style_transfer", params={}, inputs={})
    return job_id


def test_a_late_client_gets_every_event_from_queued_to_the_terminal_one(
        client: ApiClient, finished_job: dict[str, Any]) -> None:
    events = read_all(client, finished_job["id"])

    *job_events, end = events
    assert end.name == "end" and end.id is None
    assert end.data["id"] == finished_job["id"] and end.data["status"] == "succeeded"
    assert [r["sha256"] for r in end.data["results"]] == [r["sha256"] for r in finished_job["results"]]

    assert [e.data["status"] for e in job_events if e.name == "status"] == ["queued", "running", "succeeded"]
    assert job_events[0].name == "status" and job_events[0].data["status"] == "queued"
    assert job_events[-1].name == "status" and job_events[-1].data["status"] == "succeeded"
    assert job_events[-1].data["fraction"] == 1.0
    # In the order they happened, each with its own stream id.
    ids = [entry_order(str(e.id)) for e in job_events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [e.data["at"] for e in job_events] == sorted(e.data["at"] for e in job_events)
    stages = [e.data["stage"] for e in job_events if e.name == "progress"]
    assert {"loading inputs", "stylizing", "storing"} <= set(stages)
    fractions = [e.data["fraction"] for e in job_events if e.data["status"] == "running"]
    assert fractions == sorted(fractions)
    for event in job_events:
        assert event.data["job_id"] == finished_job["id"] and event.data["type"] == event.name
        assert set(event.data) >= {"status", "stage", "fraction", "message", "eta_s", "preview_url", "at"}


def test_last_event_id_resumes_after_that_id(client: ApiClient, finished_job: dict[str, Any]) -> None:
    everything = read_all(client, finished_job["id"])
    *job_events, _ = everything

    resumed = read_all(client, finished_job["id"], last_event_id=job_events[1].id)
    assert [e.id for e in resumed] == [e.id for e in job_events[2:]] + [None]
    assert resumed[-1].name == "end"

    # After the terminal event there is nothing left to replay: only the end.
    after_last = read_all(client, finished_job["id"], last_event_id=job_events[-1].id)
    assert [e.name for e in after_last] == ["end"]

    # The query parameter does the same, for clients that cannot set headers.
    response = client.get(f"/v1/jobs/{finished_job['id']}/events", params={"last_event_id": job_events[-2].id})
    assert [e.event for e in parse_sse([response.content]) if e.data] == ["status", "end"]

    bad = client.get(f"/v1/jobs/{finished_job['id']}/events", headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "malformed_request"


def test_a_live_client_sees_progress_and_the_stream_ends_with_the_terminal_state(
        client: ApiClient, photo: Image.Image) -> None:
    # A 1024 px job takes seconds on a CPU: the client is connected before it finishes.
    job_id = submit_style_job(client, photo.resize((1024, 1024)), 1024)
    with open_stream(client, job_id) as response:
        connected_at = time.time()
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] not in TERMINAL
        events = list(events_of(response))

    *job_events, end = events
    assert end.name == "end" and end.data["status"] == "succeeded" and len(end.data["results"]) == 1
    assert job_events[-1].name == "status" and job_events[-1].data["status"] == "succeeded"
    assert [e.data["status"] for e in job_events if e.name == "status"] == ["queued", "running", "succeeded"]

    def at(event: Event) -> float:
        return datetime_of(event.data["at"])

    live = [e for e in job_events if e.name == "progress" and at(e) > connected_at]
    assert live, "no progress event happened while the client listened"
    running = [e for e in job_events if e.name == "progress" and 0 < (e.data["fraction"] or 0) < 1]
    assert running and all(isinstance(e.data["eta_s"], int) and e.data["eta_s"] >= 0 for e in running)


def datetime_of(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def test_another_tenants_job_is_404_json_never_a_stream(
        client: ApiClient, other_client: ApiClient, finished_job: dict[str, Any]) -> None:
    for who, job_id in ((other_client, finished_job["id"]), (client, new_job_id())):
        response = who.get(f"/v1/jobs/{job_id}/events", headers={"Accept": "text/event-stream"})
        assert response.status_code == 404
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["error"]["code"] == "not_found"


def test_progress_events_are_thinned_and_carry_preview_and_eta(client: ApiClient, store: JobStore) -> None:
    job_id = make_job(store)
    store.begin_attempt(job_id, "test-worker", 30)
    for step in range(200):  # a training loop reports every step
        store.set_progress(job_id, step / 400, "training", f"step {step}/400 eta 120s")
    store.record_artifact(job_id, {"name": "samples-step-000200.png", "key": "k", "content_type": "image/png"})
    store.record_artifact(job_id, {"name": "losses.json", "key": "l", "content_type": "application/json"})
    store.set_progress(job_id, 0.9, "evaluating", "held-out images")
    store.finish(job_id, JobStatus.SUCCEEDED, results=[])

    *job_events, end = read_all(client, job_id)
    assert end.name == "end"
    training = [e for e in job_events if e.name == "progress" and e.data["stage"] == "training"]
    assert 1 <= len(training) < 10  # the first of the stage, then at most about two a second
    assert training[0].data["eta_s"] == 120 and training[0].data["preview_url"] is None
    artifacts = [e.data["artifact"]["name"] for e in job_events if e.name == "artifact"]
    assert artifacts == ["samples-step-000200.png", "losses.json"]
    preview = f"{client.base}/v1/jobs/{job_id}/artifacts/samples-step-000200.png"
    after_grid = job_events[[e.name for e in job_events].index("artifact"):]
    assert all(e.data["preview_url"] == preview for e in after_grid)  # the json artifact is no preview
    assert [e.data["stage"] for e in job_events if e.name == "progress"][-1] == "evaluating"

    # The stream expires with the record.
    ttl = store.redis.ttl(store.events_key(job_id))
    assert 0 < ttl <= store.redis.ttl(store.job_key(job_id)) + 1


# -- stream lifetime, keep-alives, disconnects: an API of its own with short limits ----------------


@pytest.fixture(scope="module")
def short_api(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second API on the same Redis and S3, whose streams last 6 s with keep-alives every 0.5 s."""
    own = Stack(tmp_path_factory.mktemp("short-api"),
                env={**stack.env, "ARTFORGE_SSE_MAX_S": "6", "ARTFORGE_SSE_HEARTBEAT_S": "0.5"})
    try:
        yield own.start_api(workers=1, threads=4)
    finally:
        own.stop_all()


def raw_lines(response: requests.Response) -> Iterator[tuple[float, str]]:
    started = time.monotonic()
    for line in sse_lines(response.iter_content(chunk_size=None)):
        yield time.monotonic() - started, line


def test_a_stream_ends_after_its_lifetime_with_keep_alives_and_resumes(
        client: ApiClient, store: JobStore, short_api: str) -> None:
    job_id = make_job(store)
    with open_stream(client, job_id, base=short_api) as response:
        lines = list(raw_lines(response))
    closed_after = lines[-1][0]
    assert 5 <= closed_after < 10
    keep_alives = [at for at, line in lines if line == ": keep-alive"]
    assert len(keep_alives) >= 6
    ids = [line.removeprefix("id: ") for _, line in lines if line.startswith("id: ")]
    assert len(ids) == 1  # the queued event; no end, the job goes on
    assert not any(line == "event: end" for _, line in lines)

    # The client comes back with Last-Event-ID and sees what happened since.
    with open_stream(client, job_id, last_event_id=ids[0], base=short_api) as response:
        events = events_of(response)
        store.finish(job_id, JobStatus.CANCELED, message="canceled by the test")
        rest = list(events)
    assert [(e.name, e.data["status"]) for e in rest] == [("status", "canceled"), ("end", "canceled")]


def blocked_stream_readers(store: JobStore) -> int:
    clients = store.redis.client_list()
    return sum(1 for c in clients if c.get("cmd") == "xread" and "b" in c.get("flags", ""))


def test_a_stream_stops_reading_when_its_client_goes_away(
        client: ApiClient, store: JobStore, short_api: str) -> None:
    job_id = make_job(store)
    try:
        response = open_stream(client, job_id, base=short_api)
        first = next(events_of(response))
        assert first.data["status"] == "queued"
        eventually(lambda: blocked_stream_readers(store) > 0, 3, "the stream waiting for events")
        response.close()
        # Well before the 6 s lifetime: a keep-alive finds the socket closed.
        eventually(lambda: blocked_stream_readers(store) == 0, 4.5, "the stream ended after its client left")
    finally:
        store.finish(job_id, JobStatus.CANCELED, message="canceled by the test")


def test_streams_past_half_the_threads_get_503_and_leave_the_rest_of_the_api_answering(
        client: ApiClient, store: JobStore, short_api: str) -> None:
    # short_api runs one gunicorn worker with 4 threads: it keeps at most 2 streams open.
    job_id = make_job(store)
    streams = [open_stream(client, job_id, base=short_api) for _ in range(2)]
    try:
        for stream in streams:
            assert next(events_of(stream)).data["status"] == "queued"
        refused = open_stream(client, job_id, base=short_api)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "streams_busy" and int(refused.headers["Retry-After"]) > 0
        # The threads the streams leave answer everything else at once.
        polled = requests.get(f"{short_api}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {client.key}"},
                              timeout=3)
        assert polled.status_code == 200 and polled.json()["status"] == "queued"
        streams.pop().close()

        def another_stream_opens() -> bool:
            response = open_stream(client, job_id, base=short_api)
            if response.status_code == 200:
                streams.append(response)
                return True
            response.close()
            return False

        # The closed stream's slot comes back once a keep-alive (every 0.5 s) finds its client gone.
        eventually(another_stream_opens, 4, "a stream slot given back")
        assert next(events_of(streams[-1])).data["status"] == "queued"
    finally:
        for stream in streams:
            stream.close()
        store.finish(job_id, JobStatus.CANCELED, message="canceled by the test")


def test_the_openapi_document_describes_the_event_format(client: ApiClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/jobs/{job_id}/events"]["get"]
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    for word in ("Last-Event-ID", "eta_s", "preview_url", "`end`", "keep-alive"):
        assert word in operation["description"]
