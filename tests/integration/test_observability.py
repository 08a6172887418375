"""Metrics and logs of the real stack: the API's /metrics, a worker's metrics endpoint, and the
JSON log files each process writes (``{workdir}/logs/NAME.log``), traced by request id."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import requests
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from deploy.devstack import Stack, wait_for
from shared.connections import redis_client
from shared.queue import enqueue_job, make_celery
from tests.conftest import OWN_RIGHTS, ApiClient, eventually, stack_on
from workers.telemetry import QueueDepthCollector, queue_lists


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def json_lines(path: str | Path) -> list[dict[str, Any]]:
    """The log records of a file. Celery's startup banner and shutdown notes are printed, not
    logged, so a worker's file holds a few lines that are not records; every record is JSON."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.startswith("{")]


def worker_metrics_url(stack: Stack, name: str = "worker-inference") -> str:
    """The worker's metrics endpoint, once it answers (the worker serves it when it is ready)."""
    port = stack.processes[name].metrics_port
    assert port, f"{name} serves no metrics"
    url = f"http://127.0.0.1:{port}/metrics"
    wait_for(lambda: requests.get(url, timeout=2).ok, 90, f"{name} metrics", interval=0.25)
    return url


def test_api_metrics_count_requests_by_route_template(client: ApiClient) -> None:
    metrics = client.base + "/metrics"
    labels = {"method": "GET", "route": "/v1/jobs/<job_id>", "status": "404"}
    before = scrape(metrics)  # no API key: /metrics is for the scraper
    unknown = [uuid.uuid4().hex for _ in range(3)]
    for job_id in unknown:
        assert client.get(f"/v1/jobs/{job_id}").status_code == 404

    after = scrape(metrics)
    # Several gunicorn workers answered; the scrape adds up all of them.
    assert value(after, "artforge_http_requests_total", **labels) - value(
        before, "artforge_http_requests_total", **labels) == 3
    assert value(after, "artforge_http_request_duration_seconds_count", **labels) - value(
        before, "artforge_http_request_duration_seconds_count", **labels) == 3
    text = requests.get(metrics, timeout=10).text
    assert not any(job_id in text for job_id in unknown), "raw paths must not become label values"


def test_request_id_is_echoed_or_replaced_by_a_safe_one(client: ApiClient) -> None:
    sent = "trace-" + uuid.uuid4().hex
    assert client.get("/v1/jobs", headers={"X-Request-ID": sent}).headers["X-Request-ID"] == sent
    for unsafe in ("a" * 129, "two words", "quote\"d", "caf\xe9", "<script>", ""):
        echoed = client.get("/v1/jobs", headers={"X-Request-ID": unsafe}).headers["X-Request-ID"]
        assert echoed != unsafe and len(echoed) == 32 and echoed.isalnum()
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert len(generated) == 32


def test_a_job_is_counted_timed_and_traced_by_its_request_id(stack: Stack, client: ApiClient) -> None:
    worker = worker_metrics_url(stack)
    labels = {"kind": "style_transfer", "outcome": "succeeded"}
    before = scrape(worker)

    request_id = "obs-" + uuid.uuid4().hex
    content = client.upload_image(Image.linear_gradient("L").convert("RGB").resize((96, 96)), "JPEG",
                                  rights=OWN_RIGHTS)
    response = client.submit({"kind": "style_transfer", "inputs": {"content": content["id"]},
                              "params": {"style": "starry-swirl", "max_side": 96}},
                             headers={"X-Request-ID": request_id})
    assert response.status_code == 202, response.text
    assert response.headers["X-Request-ID"] == request_id
    job_id = response.json()["id"]
    job = client.wait(job_id)
    assert job["status"] == "succeeded" and job["attempts"] == 1

    # The attempt is recorded after the job's final transition: give the worker a moment.
    def moved() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        after = scrape(worker)
        count = value(after, "artforge_job_duration_seconds_count", **labels)
        return after if count > value(before, "artforge_job_duration_seconds_count", **labels) else None

    after = eventually(moved, 15, "the worker's job duration histogram moved")
    assert value(after, "artforge_job_duration_seconds_count", **labels) - value(
        before, "artforge_job_duration_seconds_count", **labels) == 1
    assert value(after, "artforge_job_duration_seconds_sum", **labels) > value(
        before, "artforge_job_duration_seconds_sum", **labels)
    # At least this job's attempt: the session's worker may finish attempts of earlier tests' jobs
    # (requeued, canceled) in the same window, and the counter does not say whose they are.
    assert value(after, "artforge_job_attempts_total", kind="style_transfer") - value(
        before, "artforge_job_attempts_total", kind="style_transfer") >= 1
    assert ("artforge_queue_depth", frozenset({("queue", "inference")})) in after

    # The API's log: every line a JSON record; the submission's line carries our id and the tenant.
    api_records = json_lines(stack.processes["api"].log)
    assert len(api_records) == len(Path(stack.processes["api"].log).read_text().splitlines())
    assert all({"timestamp", "level", "logger", "message"} <= set(r) for r in api_records)
    submitted = [r for r in api_records if r.get("request_id") == request_id]
    assert any(r["message"].startswith("POST /v1/jobs 202") and r.get("tenant") == "alice" for r in submitted)

    # The worker's log: the job's lines carry the same request id, its id and tenant.
    def job_lines() -> list[dict[str, Any]]:
        lines = [r for r in json_lines(stack.processes["worker-inference"].log) if r.get("job_id") == job_id]
        return lines if any("succeeded" in r["message"] for r in lines) else []

    lines = eventually(job_lines, 15, "the worker's lines about the job")
    assert all(r.get("request_id") == request_id and r.get("tenant") == "alice" for r in lines)

    # No secret in any log line of any process.
    secrets = [client.key, client.key.split("_", 2)[2], stack.env["ARTFORGE_S3_SECRET_KEY"]]
    for log in (stack.workdir / "logs").glob("*.log"):
        text = log.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, f"{log.name} holds a secret"


def test_queue_depth_counts_every_priority_list(servers: Stack, tmp_path: Path) -> None:
    # A namespace no worker consumes, so the messages stay where kombu put them.
    settings = stack_on(servers, tmp_path).settings()
    app = make_celery(settings)
    client = redis_client(settings)
    try:
        for priority in (0, 5, 9, 9):
            enqueue_job(app, settings, uuid.uuid4().hex, "style_transfer", priority)
        enqueue_job(app, settings, uuid.uuid4().hex, "training", 0)

        lists = queue_lists(app)
        # Every list kombu made is one the collector reads.
        made = {str(key) for key in client.keys("*") if client.type(key) == "list"}
        assert made <= {name for names in lists.values() for name in names}
        assert len(made) > 2, "the priorities should spread over several lists"

        [family] = QueueDepthCollector(client, lists).collect()
        depths = {sample.labels["queue"]: sample.value for sample in family.samples}
        assert depths == {"inference": 4, "training": 1, "maintenance": 0}
    finally:
        client.flushdb()
        app.close()

