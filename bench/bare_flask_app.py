"""The baseline of ``bench.api_submit``: the least a submit endpoint can do.

One POST route parses the JSON body and sends the job task with Celery's ``send_task`` to
the service's broker and queue, with the service's Celery configuration; no auth, no
validation, no job record. Served like the API: ``gunicorn 'bench.bare_flask_app:create_app()'``.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Flask, jsonify, request

from shared.contract import MAX_PRIORITY, QUEUE_INFERENCE, TASK_RUN_JOB, job_payload
from shared.queue import make_celery
from shared.settings import Settings


def create_app() -> Flask:
    settings = Settings.from_env()
    celery = make_celery(settings, main="bench-bare")
    app = Flask(__name__)

    @app.post("/v1/jobs")
    def submit() -> Any:
        body = request.get_json()
        job_id = uuid.uuid4().hex
        celery.send_task(TASK_RUN_JOB, kwargs=job_payload(job_id), queue=QUEUE_INFERENCE,
                         priority=MAX_PRIORITY - int(body.get("priority", 0)))
        return jsonify({"id": job_id, "status": "queued"}), 202

    return app
