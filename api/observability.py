"""Request ids, request logs and Prometheus metrics for the API.

Every request gets an id: the caller's ``X-Request-ID`` when it is 1-128 characters of
``A-Z a-z 0-9 . _ : -``, a fresh one otherwise. It is echoed on the response, bound to every
log record of the request (with the tenant once the key is verified) and stored on the jobs
the request submits, so the worker's log lines for a job carry it too.

``GET /metrics`` serves Prometheus text without authentication: it is for the scraper.
Operators keep it internal (block ``/metrics`` at the ingress or reverse proxy). Requests are
counted and timed by the route's template (``/v1/jobs/<job_id>``), never by the raw path, so
ids don't become label values. Under gunicorn every worker process writes its samples to
``PROMETHEUS_MULTIPROC_DIR`` (see ``deploy/gunicorn_conf.py``) and a scrape adds them up.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from shared.logs import bind_log_context, reset_log_context

log = logging.getLogger("artforge.requests")

REQUEST_ID_HEADER = "X-Request-ID"
MAX_REQUEST_ID = 128
_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:\-]{{1,{MAX_REQUEST_ID}}}")
# Probes and scrapes arrive every few seconds: their request lines are debug level.
_QUIET_ENDPOINTS = ("health.", "metrics.")
UNMATCHED_ROUTE = "<unmatched>"

HTTP_REQUESTS = Counter("artforge_http_requests_total", "HTTP requests answered, by route template and status",
                        ["method", "route", "status"])
HTTP_LATENCY = Histogram("artforge_http_request_duration_seconds",
                         "Time to produce the response, by route template and status",
                         ["method", "route", "status"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))

blp = Blueprint("metrics", __name__)


def request_id_from(header: str | None) -> str:
    """The caller's request id when it is safe to log and echo, else a new one."""
    if header is not None and _REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def current_request_id() -> str:
    return str(g.get("request_id", ""))


def install(app: Flask) -> None:
    """Request ids, log context, request lines and metrics; call before the auth hook, and
    register ``bind_tenant`` after it."""
    app.before_request(_begin)
    app.after_request(_finish)
    app.teardown_request(_forget_context)
    app.register_blueprint(blp)


def _begin() -> None:
    g.request_started = time.perf_counter()
    g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    g.log_token = bind_log_context(request_id=g.request_id)


def bind_tenant() -> None:
    principal = g.get("principal")
    if principal is not None:
        bind_log_context(tenant=principal.tenant)


def _finish(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id is None:  # a request that failed before _begin ran
        return response
    response.headers[REQUEST_ID_HEADER] = request_id
    elapsed = time.perf_counter() - g.request_started
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
    labels = {"method": request.method, "route": route, "status": str(response.status_code)}
    HTTP_REQUESTS.labels(**labels).inc()
    HTTP_LATENCY.labels(**labels).observe(elapsed)
    quiet = (request.endpoint or "").startswith(_QUIET_ENDPOINTS)
    log.log(logging.DEBUG if quiet else logging.INFO, "%s %s %s", request.method, request.path,
            response.status_code, extra={"route": route, "status": response.status_code,
                                         "duration_ms": round(elapsed * 1000, 2)})
    return response


def _forget_context(_: BaseException | None) -> None:
    # gunicorn's threads serve one request after another: nothing may stay bound.
    token = g.pop("log_token", None)
    if token is not None:
        reset_log_context(token)


@blp.route("/metrics")
def metrics() -> Response:
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
