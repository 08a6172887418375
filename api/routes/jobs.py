"""Jobs: submit, poll, list, cancel, and fetch results."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from flask import Response, jsonify, request, stream_with_context
from flask_smorest import Blueprint

from api.errors import ApiError
from api.job_kinds import validate_job
from api.representations import job_to_json
from api.schemas import JobListQuerySchema, JobListSchema, JobRequestSchema, JobSchema
from api.services import Services, principal, services
from shared.contract import get_kind
from shared.jobs import IdempotencyConflict, Job, JobStatus, TransitionRefused, new_job_id
from shared.objects import ObjectNotFound
from shared.queue import enqueue_job

log = logging.getLogger(__name__)

blp = Blueprint("jobs", __name__, url_prefix="/v1/jobs", description="Asynchronous jobs")

MAX_IDEMPOTENCY_KEY = 255


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
@blp.arguments(JobRequestSchema)
@blp.response(202, JobSchema)
@blp.alt_response(409, description="the Idempotency-Key was used with a different body")
@blp.alt_response(422, description="invalid kind, parameters or inputs")
@blp.alt_response(503, description="Redis or the queue is unavailable; see Retry-After")
def submit_job(body: dict[str, Any]) -> Any:
    who, svc = principal(), services()
    kind = get_kind(body["kind"])
    if kind.admin_only and not who.admin:
        raise ApiError(403, "forbidden", f"{kind.name} jobs need an admin key")
    params, inputs = validate_job(kind.name, body["params"], body["inputs"], who, svc)

    job_id = new_job_id()
    key = idempotency_key()
    if key is not None:
        body_hash = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        try:
            earlier = svc.jobs.claim_idempotency_key(who.tenant, key, job_id, body_hash)
        except IdempotencyConflict:
            raise ApiError(409, "idempotency_conflict",
                           "this Idempotency-Key was used with a different request body") from None
        if earlier is not None:
            job = svc.jobs.get_for_tenant(earlier, who.tenant)
            if job is None:
                raise ApiError(409, "idempotency_conflict", "this Idempotency-Key's job no longer exists")
            return accepted(job, svc, replayed=True)

    try:
        job = svc.jobs.create(job_id=job_id, tenant=who.tenant, key_id=who.key_id, kind=kind.name,
                              params=params, inputs=inputs, priority=body["priority"])
        enqueue_job(svc.celery, svc.settings, job.id, kind.name, body["priority"])
    except Exception:
        # Leave nothing half-created: no record without a message, no key without a job.
        _forget(svc, job_id, who.tenant, key)
        raise
    return accepted(job, svc)


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
@blp.response(200, description="the result image (PNG)")
def get_result(job_id: str, index: int) -> Response:
    return _stream(_result(own_job(job_id), index)["key"], "image/png")


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
