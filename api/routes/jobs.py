"""Jobs: submit, poll, list, cancel, and fetch results."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from typing import Any

from flask import Response, jsonify, request, stream_with_context
from flask_smorest import Blueprint

from api.errors import ApiError
from api.job_kinds import validate_job
from api.limits import admit_submission, release_job_slot
from api.observability import current_request_id
from api.representations import job_event_to_json, job_to_json, server_sent_event
from api.schemas import JobListQuerySchema, JobListSchema, JobRequestSchema, JobSchema
from api.services import Services, principal, services
from api.webhooks import checked_webhook_url
from shared.contract import get_kind
from shared.job_events import ENTRY_ID, START, follow_job_events
from shared.jobs import Job, JobStatus, NewJob, TransitionRefused, new_job_id
from shared.models import identity_of
from shared.objects import ObjectNotFound
from shared.queue import CREATION_KIND, enqueue_job

log = logging.getLogger(__name__)

blp = Blueprint("jobs", __name__, url_prefix="/v1/jobs", description="Asynchronous jobs")

MAX_IDEMPOTENCY_KEY = 255
# Built once: given the class, webargs would build the schema (deep copies of every field) anew
# for every submission. Loading keeps no state in the schema, so the threads share it.
JOB_REQUEST_SCHEMA = JobRequestSchema()


def base_url(svc: Services) -> str:
    return svc.settings.public_url or request.host_url


def own_job(job_id: str) -> Job:
    job = services().jobs.get_for_tenant(job_id, principal().tenant)
    if job is None:
        raise ApiError(404, "not_found", f"no job {job_id}")
    return job


def idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise ApiError(400, "malformed_request", f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable "
                                                 "characters")
    return key


@blp.route("", methods=["POST"])
@blp.arguments(JOB_REQUEST_SCHEMA)
@blp.response(202, JobSchema)
@blp.alt_response(409, description="the Idempotency-Key was used with a different body, the model is not trained, "
                                   "or the public model version asked for is no longer served")
@blp.alt_response(422, description="invalid kind, parameters, inputs or webhook_url")
@blp.alt_response(429, description="rate limited, or too many of the tenant's jobs are active; see Retry-After")
@blp.alt_response(503, description="Redis or the queue is unavailable; see Retry-After")
def submit_job(body: dict[str, Any]) -> Any:
    who, svc = principal(), services()
    kind = get_kind(body["kind"])
    if kind.admin_only and not who.admin:
        raise ApiError(403, "forbidden", f"{kind.name} jobs need an admin key")
    webhook_url = checked_webhook_url(body.get("webhook_url"), svc.settings)
    params, inputs = validate_job(kind.name, body["params"], body["inputs"], who, svc)

    key = idempotency_key()
    body_hash = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest() if key is not None else ""
    new = NewJob.of(job_id=new_job_id(), tenant=who.tenant, key_id=who.key_id, kind=kind.name, params=params,
                    inputs=inputs, priority=body["priority"], request_id=current_request_id(),
                    webhook_url=webhook_url)
    admission = admit_submission(new, kind.name, key, body_hash)  # 429 rate_limited, quota_exceeded
    if admission.outcome == "replay":
        if admission.earlier_body_sha256 != body_hash:
            raise ApiError(409, "idempotency_conflict", "this Idempotency-Key was used with a different request body")
        return accepted(idempotent_job(svc, who.tenant, admission.earlier_job_id), svc, replayed=True)
    try:
        enqueue_job(svc.celery, svc.settings, new.id, kind.name, body["priority"],
                    model_identity=identity_of(who.tenant, params["model"]) if kind.name == CREATION_KIND else None,
                    redis_client=svc.jobs.redis)
    except Exception:
        # Leave nothing half-created: no record without a message, no key without a job.
        _forget(svc, new.id, who.tenant, key)
        raise
    return accepted(Job.from_hash(new.record), svc)


def idempotent_job(svc: Services, tenant: str, job_id: str) -> Job:
    """The job an earlier request with the same Idempotency-Key made. Its admission wrote the key
    and the record together, so a key without a record belongs to a request whose enqueue failed
    (it is giving the key back) or to a job that expired: 409, send the request again."""
    job = svc.jobs.get_for_tenant(job_id, tenant)
    if job is None:
        raise ApiError(409, "idempotency_conflict", "this Idempotency-Key's job does not exist (any more); "
                                                    "send the request again")
    return job


def accepted(job: Job, svc: Services, replayed: bool = False) -> Response:
    """202 with the job. Built directly: job_to_json already has JobSchema's shape, and
    dumping it through marshmallow again would double the cost of the hot path."""
    response = jsonify(job_to_json(job, base_url(svc), svc))
    response.status_code = 202
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _forget(svc: Services, job_id: str, tenant: str, key: str | None) -> None:
    try:
        svc.jobs.delete(job_id, tenant)
        release_job_slot(tenant, job_id)
        if key is not None:
            svc.jobs.release_idempotency_key(tenant, key)
    except Exception:  # Redis itself is down: the record was not written either
        log.warning("could not remove job %s after a failed enqueue", job_id, exc_info=True)


@blp.route("", methods=["GET"])
@blp.arguments(JobListQuerySchema, location="query")
@blp.response(200, JobListSchema)
def list_jobs(query: dict[str, Any]) -> dict[str, Any]:
    who, svc = principal(), services()
    cursor = int(query["cursor"]) if "cursor" in query else None
    jobs, next_cursor = svc.jobs.list_for_tenant(who.tenant, status=query.get("status"), kind=query.get("kind"),
                                                 limit=query["limit"], before_ms=cursor)
    base = base_url(svc)
    return {"items": [job_to_json(j, base, svc) for j in jobs],
            "next_cursor": str(next_cursor) if next_cursor is not None else None}


@blp.route("/<job_id>", methods=["GET"])
@blp.response(200, JobSchema)
@blp.alt_response(404, description="unknown, expired, or another tenant's job")
def get_job(job_id: str) -> dict[str, Any]:
    svc = services()
    return job_to_json(own_job(job_id), base_url(svc), svc)


@blp.route("/<job_id>/cancel", methods=["POST"])
@blp.response(202, JobSchema)
@blp.alt_response(409, description="the job has already finished")
def cancel_job(job_id: str) -> dict[str, Any]:
    svc = services()
    job = own_job(job_id)
    if job.status == JobStatus.QUEUED:
        try:
            svc.jobs.finish(job.id, JobStatus.CANCELED, message="canceled before it started")
        except TransitionRefused:
            pass  # a worker took it this instant: ask the running attempt to stop instead
    job = own_job(job_id)
    if job.status == JobStatus.RUNNING:
        svc.jobs.request_cancel(job.id)
    elif job.status != JobStatus.CANCELED:
        raise ApiError(409, "already_finished", f"the job has already {job.status.value}")
    return job_to_json(own_job(job_id), base_url(svc), svc)


def _result(job: Job, index: int) -> dict[str, Any]:
    for result in job.results:
        if result["index"] == index:
            return result
    raise ApiError(404, "not_found", f"job {job.id} has no result {index}")


@blp.route("/<job_id>/results/<int:index>", methods=["GET"])
@blp.response(200, description="the result: an image (PNG), or a document such as an analysis report (JSON)")
def get_result(job_id: str, index: int) -> Response:
    result = _result(own_job(job_id), index)
    return _stream(result["key"], result.get("content_type") or "image/png")


@blp.route("/<job_id>/results/<int:index>/provenance", methods=["GET"])
@blp.response(200, description="the result's provenance record (JSON)")
def get_provenance(job_id: str, index: int) -> Response:
    return _stream(_result(own_job(job_id), index)["provenance_key"], "application/json")


@blp.route("/<job_id>/artifacts/<name>", methods=["GET"])
@blp.response(200, description="an artifact listed on the job")
def get_artifact(job_id: str, name: str) -> Response:
    job = own_job(job_id)
    for artifact in job.artifacts:
        if artifact["name"] == name:
            return _stream(artifact["key"], artifact.get("content_type") or "application/octet-stream")
    raise ApiError(404, "not_found", f"job {job_id} has no artifact {name}")


def _stream(key: str, mimetype: str) -> Response:
    svc = services()
    try:
        chunks = svc.objects.stream(svc.settings.bucket_results, key)
    except ObjectNotFound:
        raise ApiError(404, "not_found", "the result is no longer stored") from None
    return Response(stream_with_context(chunks), mimetype=mimetype)


EVENTS_DESCRIPTION = """Live progress of a job as server-sent events (`text/event-stream`).

The stream first replays the job's events from the start (from the queued state on), or from
after the `Last-Event-ID` header (or `last_event_id` query parameter) on a reconnect, then sends
new ones as they happen. Every event has an `id:` (the stream entry id, to resume after) and
`event:` names its type:

- `status`: a state transition (`queued`, `running`, `succeeded`, `failed`, `canceled`; `running`
  again when an attempt takes over, `queued` when a lost attempt is requeued);
- `progress`: a progress update (at most about two a second, at least one per stage);
- `artifact`: an artifact was listed on the job (a training run's sample grid);
- `end` (no id): sent after the terminal state's event; its data is the final job record as
  `GET /v1/jobs/{id}` returns it. The server then closes the stream.

The data of `status`, `progress` and `artifact` events is one JSON object:
`{"job_id", "type", "status", "stage", "fraction" (0..1 or null), "message", "eta_s" (seconds
left, or null), "preview_url" (the newest image artifact, or null), "at" (ISO 8601 UTC)}`;
status events add `previous_status` and, for failed jobs, `error`; artifact events add
`artifact: {"name", "content_type", "url"}`.

A comment line (`: keep-alive`) comes every ~15 s without events. A stream lasts at most
`ARTFORGE_SSE_MAX_S` seconds (default 3600) and then closes without `end`: reconnect with
`Last-Event-ID`. Another tenant's job answers 404 with a JSON error, never a stream.

Each API process keeps a bounded number of streams open (half its threads under gunicorn, or
`ARTFORGE_SSE_STREAMS_PER_PROCESS`); beyond it the answer is 503 `streams_busy` with Retry-After,
and the client polls `GET /v1/jobs/{job_id}` instead."""

EVENTS_EXAMPLE = """retry: 2000

id: 1700000000000-0
event: status
data: {"job_id":"5f0c...","type":"status","status":"queued","stage":"queued","fraction":0.0,"message":"",\
"eta_s":null,"preview_url":null,"at":"2024-11-14T22:13:20+00:00"}

id: 1700000004000-0
event: progress
data: {"job_id":"5f0c...","type":"progress","status":"running","stage":"training","fraction":0.42,\
"message":"step 840/2000 d 0.612 g 1.204 eta 95s","eta_s":95,\
"preview_url":"https://api.example/v1/jobs/5f0c.../artifacts/samples-step-000800.png","at":"..."}

: keep-alive

id: 1700000100000-0
event: status
data: {"job_id":"5f0c...","type":"status","status":"succeeded","previous_status":"running",...}

event: end
data: {"id":"5f0c...","status":"succeeded","results":[...],...}
"""
@blp.route("/<job_id>/events", methods=["GET"])
@blp.doc(description=EVENTS_DESCRIPTION, parameters=[
    {"in": "header", "name": "Last-Event-ID", "required": False, "schema": {"type": "string"},
     "description": "resume after this event id"},
    {"in": "query", "name": "last_event_id", "required": False, "schema": {"type": "string"},
     "description": "the same, for clients that cannot set headers"}])
@blp.response(200, {"type": "string"}, description="the job's events", content_type="text/event-stream",
              example=EVENTS_EXAMPLE)
@blp.alt_response(400, description="Last-Event-ID is not an event id")
@blp.alt_response(404, description="unknown, expired, or another tenant's job")
@blp.alt_response(503, description="this API process holds as many streams as it may (`streams_busy`), or a "
                  "dependency is down; poll the job or retry after Retry-After")
def job_events(job_id: str) -> Response:
    svc = services()
    job = own_job(job_id)
    after = request.headers.get("Last-Event-ID") or request.args.get("last_event_id") or START
    if not ENTRY_ID.fullmatch(after):
        raise ApiError(400, "malformed_request", "Last-Event-ID must be an event id such as 1700000000000-0")
    base, max_s, heartbeat_s = base_url(svc), svc.settings.sse_max_s, svc.settings.sse_heartbeat_s
    if not svc.stream_slots.take():
        raise ApiError(503, "streams_busy", "this server holds all the event streams it can; "
                       f"poll GET /v1/jobs/{job.id} or try the stream again after Retry-After",
                       headers={"Retry-After": str(svc.settings.retry_after_s)})

    def stream() -> Iterator[str]:
        # When the client goes away, the next write fails and the server closes this generator.
        yield "retry: 2000\n\n"
        for event in follow_job_events(svc.jobs, job, after, max_s=max_s, heartbeat_s=heartbeat_s):
            if event is None:
                yield ": keep-alive\n\n"
                continue
            yield server_sent_event(job_event_to_json(event, job.id, base), event.type, event.id)
        # Past the terminal event, or resumed after it: say so. Otherwise the stream ran out of
        # time (the client resumes with Last-Event-ID) or the record expired (it gets a 404).
        final = svc.jobs.get(job.id)
        if final is not None and final.status.is_terminal:
            yield server_sent_event(job_to_json(final, base, svc), "end")

    response = Response(stream_with_context(stream()), mimetype="text/event-stream")
    # The server closes the response when the stream ends or its client is gone, started or not.
    response.call_on_close(svc.stream_slots.give_back)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # no proxy buffering
    return response
