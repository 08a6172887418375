"""The HTTP API: ``create_app()`` builds a Flask app; gunicorn serves ``api:create_app()``.

The API validates and enqueues; it never imports torch or the workers.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, g, request
from flask_smorest import Api
from flask_swagger_ui import get_swaggerui_blueprint

from api.errors import ApiError, register_error_handlers
from api.job_kinds import check_every_kind_has_a_validator
from api.routes import (
    datasets,
    health,
    jobs,
    models,
    protected_works,
    provenance,
    schedules,
    styles,
    tenants,
    uploads,
    verify,
)
from api.schemas import ErrorSchema
from api.services import build_services, services
from shared.settings import Settings

# Multipart framing around an upload's bytes; the file itself is capped separately.
MULTIPART_OVERHEAD = 64 * 1024
PUBLIC_ENDPOINTS = ("health.", "swagger_ui.", "api-docs.")


class ArtForgeApi(Api):  # type: ignore[misc]
    # Document the API's one error shape instead of flask-smorest's default.
    ERROR_SCHEMA = ErrorSchema


def create_app(settings: Settings | None = None, test_config: dict[str, Any] | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config.update(
        ARTFORGE_SETTINGS=settings,
        MAX_CONTENT_LENGTH=settings.max_upload_bytes + MULTIPART_OVERHEAD,
        # Spool large multipart files to disk instead of holding them in memory.
        MAX_FORM_MEMORY_SIZE=512 * 1024,
        API_TITLE="ArtForge",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}],
            "info": {"description": "Asynchronous machine-art jobs: creation, restoration, style conversion."},
        },
        JSON_SORT_KEYS=False,
    )
    app.config.update(test_config or {})
    check_every_kind_has_a_validator()
    app.extensions["artforge"] = build_services(settings)

    api = ArtForgeApi(app)
    for module in (health, uploads, jobs, styles, models, datasets, verify, provenance, protected_works,
                   schedules, tenants):
        api.register_blueprint(module.blp)
    app.register_blueprint(get_swaggerui_blueprint("/docs", "/openapi.json", config={"app_name": "ArtForge API"}))
    # Registered after flask-smorest's own handlers, so every error has our one shape.
    register_error_handlers(app)
    app.before_request(_authenticate)
    return app


def _authenticate() -> None:
    endpoint = request.endpoint or ""
    if request.endpoint is None or endpoint.startswith(PUBLIC_ENDPOINTS):
        return
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <api key>'")
    who = services().keys.verify(token.strip())
    if who is None:
        raise ApiError(401, "unauthorized", "the API key is not valid")
    g.principal = who
