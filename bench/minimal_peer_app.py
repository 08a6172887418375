"""The peer of ``bench.api_submit``: a minimal but honest submit endpoint (issue 22's baseline).

What any job service must do to accept a job, written as plainly as Flask allows:

- auth: the API key's record from Redis (one HGETALL), its secret's digest compared in constant time;
- validation: a marshmallow schema of the body, built once;
- an ownership check of the upload the job names (one GET of its record);
- a job record (one HSET);
- ``send_task`` to the service's broker and queue, with the service's Celery configuration.

No rate limit, quota, idempotency, event stream, lost-message index or request log: those are the
service's promises, and what they cost is what the comparison shows. It reads the service's own
key and upload records, so the same API key and upload work against both. Served like the API:
``gunicorn 'bench.minimal_peer_app:create_app()'``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any, cast

from flask import Flask, jsonify, request
from marshmallow import Schema, ValidationError, fields, validate

from shared.connections import redis_client
from shared.contract import MAX_PRIORITY, QUEUE_INFERENCE, TASK_RUN_JOB, job_payload, list_kinds
from shared.jobs import PREFIX
from shared.queue import make_celery
from shared.settings import Settings


class JobBody(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(list_kinds()))
    params = fields.Dict(load_default=dict)
    inputs = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    priority = fields.Integer(load_default=0, validate=validate.Range(0, MAX_PRIORITY))


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    celery = make_celery(settings, main="bench-peer")
    redis = redis_client(settings)
    schema = JobBody()
    app = Flask(__name__)

    def tenant_of(authorization: str) -> str | None:
        key_id, _, secret = authorization.removeprefix("Bearer af_").partition("_")
        record = cast(dict[str, str], redis.hgetall(f"{PREFIX}apikey:{key_id}"))
        digest = hashlib.sha256(secret.encode()).hexdigest()
        if record and hmac.compare_digest(record.get("secret_sha256", ""), digest):
            return record["tenant"]
        return None

    @app.post("/v1/jobs")
    def submit() -> Any:
        tenant = tenant_of(request.headers.get("Authorization", ""))
        if tenant is None:
            return jsonify({"error": {"code": "unauthorized"}}), 401
        try:
            body = schema.load(request.get_json())
        except ValidationError as err:
            return jsonify({"error": {"code": "validation_failed", "details": err.messages}}), 422
        for upload_id in body["inputs"].values():
            raw = redis.get(f"{PREFIX}upload:{upload_id}")
            if raw is None or json.loads(raw)["tenant"] != tenant:
                return jsonify({"error": {"code": "not_found", "message": f"no upload {upload_id}"}}), 422
        job_id = uuid.uuid4().hex
        redis.hset(f"{PREFIX}peer-job:{job_id}", mapping={
            "id": job_id, "tenant": tenant, "kind": body["kind"], "status": "queued",
            "params": json.dumps(body["params"]), "inputs": json.dumps(body["inputs"]),
            "priority": body["priority"], "created_at": repr(time.time())})
        celery.send_task(TASK_RUN_JOB, kwargs=job_payload(job_id), queue=QUEUE_INFERENCE,
                         priority=MAX_PRIORITY - body["priority"])
        return jsonify({"id": job_id, "status": "queued"}), 202

    return app
