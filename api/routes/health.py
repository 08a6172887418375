"""Liveness and readiness: /healthz says the process is up, /readyz that Redis and S3 answer."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from flask_smorest import Blueprint

from api.errors import DEPENDENCY_ERRORS, error_response
from api.services import services

blp = Blueprint("health", __name__, description="Liveness and readiness")


@blp.route("/healthz")
@blp.doc(security=[])
def healthz() -> Any:
    return jsonify({"status": "ok"})


@blp.route("/readyz")
@blp.doc(security=[])
def readyz() -> Any:
    svc = services()
    checks: dict[str, str] = {}
    for name, probe in (("redis", svc.jobs.redis.ping), ("s3", svc.objects.ping)):
        try:
            probe()
            checks[name] = "ok"
        except DEPENDENCY_ERRORS as exc:
            checks[name] = f"unavailable: {type(exc).__name__}"
    if all(v == "ok" for v in checks.values()):
        return jsonify({"status": "ready", "checks": checks})
    return error_response(503, "not_ready", "a dependency is unavailable", {"checks": checks},
                          headers={"Retry-After": str(svc.settings.retry_after_s)})
