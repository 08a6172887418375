"""How a job record looks over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api.services import Services
from shared.jobs import Job


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts else None


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
                       "url": f"{base}/v1/jobs/{job.id}/artifacts/{a['name']}"} for a in job.artifacts],
        "params": job.params,
        "inputs": job.inputs,
        "priority": job.priority,
        "results_expired_at": iso(job.results_expired_at),
    }
