"""A job's events as a reader follows them, from the stream ``JobStore`` writes beside the record
(``af:job:{id}:events``): every state transition, progress update (thinned) and listed artifact.

A stream entry's fields: ``type`` (status | progress | artifact), ``status`` (the job's status then),
``progress`` (the record's progress JSON then), ``at`` (epoch seconds); status entries add
``previous`` (the status before) and ``error`` (JSON, failed jobs); artifact entries add
``artifact`` (JSON ``{"name", "content_type"}``).

Following adds what the stream says so far: when the current attempt started (for an ETA) and the
newest image artifact (a training run's sample grid, as a preview).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from shared.jobs import Job, JobStatus, JobStore

START = "0-0"
ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
# Training progress says "... eta 42s": measured over the attempt's own steps, so better than
# an estimate from the overall fraction.
ETA_IN_MESSAGE = re.compile(r"\beta (\d+(?:\.\d+)?)s\b")


@dataclass(frozen=True)
class JobEvent:
    id: str  # the stream entry's id; "" for a snapshot made from a record that has no events
    type: str  # status | progress | artifact
    status: str
    progress: dict[str, Any]
    at: float
    previous_status: str | None = None
    error: dict[str, Any] | None = None
    artifact: dict[str, Any] | None = None
    eta_s: int | None = None
    preview: str | None = None  # name of the newest image artifact, as of this event

    @property
    def ends_job(self) -> bool:
        return self.type == "status" and JobStatus(self.status).is_terminal


def estimate_eta(status: str, progress: dict[str, Any], attempt_started_at: float | None, at: float) -> int | None:
    """Seconds left while running: the progress message's own ``eta Ns``, else the time elapsed in
    this attempt scaled by the fraction still to do; None when neither says anything."""
    if status != JobStatus.RUNNING:
        return None
    stated = ETA_IN_MESSAGE.search(progress.get("message") or "")
    if stated:
        return round(float(stated.group(1)))
    fraction = progress.get("fraction")
    if attempt_started_at is None or not isinstance(fraction, int | float) or not 0 < fraction < 1:
        return None
    elapsed = at - attempt_started_at
    return round(elapsed * (1 - fraction) / fraction) if elapsed > 0 else None


def is_image(artifact: dict[str, Any]) -> bool:
    return str(artifact.get("content_type") or "").startswith("image/")


def latest_preview(job: Job) -> str | None:
    images = [a["name"] for a in job.artifacts if is_image(a)]
    return images[-1] if images else None


def follow_job_events(store: JobStore, job: Job, after: str = START, max_s: float = 3600.0,
                      heartbeat_s: float = 15.0, block_s: float = 2.0) -> Iterator[JobEvent | None]:
    """The job's events after stream entry ``after``, oldest first, then new ones as they come;
    ``None`` after each ``heartbeat_s`` without one (time for a keep-alive).

    Ends after the event of the terminal state, when the record is gone (expired), or after
    ``max_s``. A finished job whose stream holds no events (recorded before streams existed)
    gets one snapshot event made from its record, when followed from the start.
    ``block_s`` must stay below the Redis client's socket timeout.
    """
    from_start = after == START
    attempt_started = None if from_start else job.started_at
    preview = None if from_start else latest_preview(job)
    deadline = time.monotonic() + max_s
    last_sign = time.monotonic()
    while (now := time.monotonic()) < deadline:
        # Read the record before the stream: when it is terminal, its terminal event is already there.
        current = store.get(job.id)
        if current is None:
            return
        until_sign = heartbeat_s - (now - last_sign)
        wait = None if current.status.is_terminal else max(1, int(1000 * min(block_s, deadline - now, until_sign)))
        entries = store.read_events(job.id, after, block_ms=wait)
        if not entries and current.status.is_terminal:
            if after == START:
                yield snapshot(current)
            return
        for entry_id, fields in entries:
            event = parse_entry(entry_id, fields)
            if event.type == "status" and event.status == JobStatus.RUNNING:
                attempt_started = event.at
            if event.type == "artifact" and event.artifact and is_image(event.artifact):
                preview = event.artifact["name"]
            after = entry_id
            last_sign = time.monotonic()
            yield replace(event, preview=preview,
                          eta_s=estimate_eta(event.status, event.progress, attempt_started, event.at))
            if event.ends_job:
                return
        if time.monotonic() - last_sign >= heartbeat_s:
            last_sign = time.monotonic()
            yield None


def parse_entry(entry_id: str, fields: dict[str, str]) -> JobEvent:
    def loaded(name: str) -> Any:
        return json.loads(fields[name]) if fields.get(name) else None

    return JobEvent(id=entry_id, type=fields.get("type", "status"), status=fields["status"],
                    progress=loaded("progress") or {}, at=float(fields.get("at") or 0),
                    previous_status=fields.get("previous") or None, error=loaded("error"), artifact=loaded("artifact"))


def snapshot(job: Job) -> JobEvent:
    return JobEvent(id="", type="status", status=job.status.value, progress=job.progress,
                    at=job.finished_at or job.started_at or job.created_at, error=job.error,
                    preview=latest_preview(job))
