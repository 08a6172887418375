"""The API's one error shape, produced in one place:

    {"error": {"code": "...", "message": "...", "details": {...}}}

Dependency outages (Redis, the broker, S3) become 503 with Retry-After; anything
unexpected becomes a 500 without internals in the body.
"""

from __future__ import annotations

import logging
from typing import Any

import kombu.exceptions
import redis.exceptions
import urllib3.exceptions
from flask import Flask, current_app, jsonify
from minio.error import S3Error
from werkzeug.exceptions import HTTPException

from shared.images import ImageRejected
from shared.objects import StorageUnavailable

log = logging.getLogger(__name__)

# Default codes for plain HTTP errors raised by Flask, werkzeug or flask-smorest.
_HTTP_CODES = {
    400: "malformed_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    417: "expectation_failed",
    422: "invalid_parameters",
    429: "rate_limited",
    431: "headers_too_large",
    500: "internal_error",
    501: "not_implemented",
    503: "unavailable",
}

DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    kombu.exceptions.OperationalError,
    urllib3.exceptions.HTTPError,
    S3Error,
    OSError,
)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or {}
        self.headers = headers or {}


def code_for_status(status: int) -> str:
    """The error code of a plain HTTP error that no handler gave a code of its own."""
    return _HTTP_CODES.get(status, "http_error")


def error_document(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> Any:
    response = jsonify(error_document(code, message, details))
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def unavailable(what: str) -> Any:
    retry = str(current_app.config["ARTFORGE_SETTINGS"].retry_after_s)
    return error_response(503, "dependency_unavailable", f"{what} is unavailable; try again shortly",
                          headers={"Retry-After": retry})


def _is_out_of_memory(exc: BaseException) -> bool:
    """Redis at maxmemory (noeviction) refused a write. redis-py raises OutOfMemoryError for a
    command's "-OOM" answer (its message no longer starts with "OOM"); a write refused inside a
    Lua script comes back as a ResponseError that quotes that answer."""
    return isinstance(exc, redis.exceptions.OutOfMemoryError) or (
        isinstance(exc, redis.exceptions.ResponseError) and "OOM command not allowed" in str(exc))


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Any:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.errorhandler(ImageRejected)
    def _image_rejected(exc: ImageRejected) -> Any:
        return error_response(exc.status, exc.code, str(exc))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        details: dict[str, Any] = {}
        data = getattr(exc, "data", None)
        if isinstance(data, dict) and "messages" in data:
            # flask-smorest/webargs validation errors: {"json": {"field": ["msg"]}}
            details = {"fields": data["messages"]}
        message = exc.description or exc.name
        if status == 422 and details:
            message = "the request's parameters are invalid"
        if status == 413:
            message = "the request body is larger than the server accepts"
        return error_response(status, code_for_status(status), message, details)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        if _is_out_of_memory(exc):
            return unavailable("job storage (out of memory)")
        if isinstance(exc, redis.exceptions.RedisError) and isinstance(exc, DEPENDENCY_ERRORS):
            return unavailable("Redis")
        if isinstance(exc, kombu.exceptions.OperationalError):
            return unavailable("the job queue")
        if isinstance(exc, S3Error | urllib3.exceptions.HTTPError | StorageUnavailable):
            return unavailable("object storage")
        if isinstance(exc, DEPENDENCY_ERRORS):
            return unavailable("a dependency")
        log.exception("unhandled error")
        return error_response(500, "internal_error", "an unexpected error occurred")
