"""How a job record looks over HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from api.services import Services
from api.webhooks import webhook_view
from shared.job_events import JobEvent
from shared.jobs import Job


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts else None


def artifact_url(base_url: str, job_id: str, name: str) -> str:
    return f"{base_url.rstrip('/')}/v1/jobs/{job_id}/artifacts/{name}"


def job_to_json(job: Job, base_url: str, svc: Services) -> dict[str, Any]:
    base = base_url.rstrip("/")
    results = []
    for result in job.results:
        index = result["index"]
        results.append({
            "index": index,
            "url": f"{base}/v1/jobs/{job.id}/results/{index}",
            "provenance_url": f"{base}/v1/jobs/{job.id}/results/{index}/provenance",
            "download_url": svc.objects.presigned_get(svc.settings.bucket_results, result["key"]),
            "sha256": result["sha256"],
            "width": result["width"],
            "height": result["height"],
            "content_type": result.get("content_type") or "image/png",
            "role": result.get("role") or "result",
            **({"describes": result["describes"]} if result.get("describes") is not None else {}),
        })
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status.value,
        "progress": job.progress,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "attempts": job.attempts,
        "error": job.error,
        "results": results,
        "artifacts": [{"name": a["name"], "content_type": a.get("content_type", ""),
                       "url": artifact_url(base, job.id, a["name"])} for a in job.artifacts],
        "params": job.params,
        "inputs": job.inputs,
        "priority": job.priority,
        "results_expired_at": iso(job.results_expired_at),
        "webhook": webhook_view(job),
    }


def job_event_to_json(event: JobEvent, job_id: str, base_url: str) -> dict[str, Any]:
    """The ``data`` of one server-sent job event (documented on ``GET /v1/jobs/{id}/events``)."""
    data: dict[str, Any] = {
        "job_id": job_id,
        "type": event.type,
        "status": event.status,
        "stage": event.progress.get("stage"),
        "fraction": event.progress.get("fraction"),
        "message": event.progress.get("message") or "",
        "eta_s": event.eta_s,
        "preview_url": artifact_url(base_url, job_id, event.preview) if event.preview else None,
        "at": iso(event.at),
    }
    if event.previous_status:
        data["previous_status"] = event.previous_status
    if event.error:
        data["error"] = event.error
    if event.artifact:
        data["artifact"] = {**event.artifact, "url": artifact_url(base_url, job_id, event.artifact["name"])}
    return data


def server_sent_event(data: dict[str, Any], event: str, event_id: str = "") -> str:
    """One event in text/event-stream framing; the JSON has no newlines, so it is one data line."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
