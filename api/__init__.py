"""The HTTP API: ``create_app()`` builds a Flask app; gunicorn serves ``api:create_app()``.

The API validates and enqueues; it never imports torch or the workers.
"""

from __future__ import annotations

import http
from typing import Any

from apispec import APISpec, BasePlugin
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask, Request, g, request
from flask_smorest import Api
from flask_swagger_ui import get_swaggerui_blueprint
from werkzeug.wsgi import LimitedStream

from api import admin, observability
from api.errors import ApiError, register_error_handlers
from api.job_kinds import check_every_kind_has_a_validator
from api.json_bodies import refuse_unparseable_json
from api.limits import UNLIMITED_PATHS, install_limits
from api.routes import (
    datasets,
    gallery,
    health,
    jobs,
    keys,
    models,
    protected_works,
    provenance,
    schedules,
    styles,
    tenants,
    uploads,
    verify,
    webhooks,
    works,
)
from api.schemas import ERROR_EXAMPLES, JOB_REQUEST_EXAMPLES, ErrorSchema, JobRequestSchema
from api.services import build_services, services
from shared.contract import get_kind, list_kinds
from shared.images import return_freed_pixels_to_the_os
from shared.logs import configure_logging
from shared.settings import Settings

# Multipart framing around an upload's bytes; the file itself is capped separately.
MULTIPART_OVERHEAD = 64 * 1024
PUBLIC_ENDPOINTS = ("health.", "swagger_ui.", "api-docs.", "gallery.", "metrics.")


class CappedRequest(Request):
    """A body sent without a Content-Length (chunked) and longer than MAX_CONTENT_LENGTH answers
    413 when read whole, as it does when parsed as a form. werkzeug's capped stream hands back
    what it read up to the cap without complaint when read whole, so a JSON body was parsed cut
    short: a 400 "invalid JSON", or a valid prefix followed by what was never read."""

    def get_data(self, cache: bool = True, as_text: bool = False,  # type: ignore[override]
                 parse_form_data: bool = False) -> bytes | str:
        data = (super().get_data(cache=cache, as_text=True, parse_form_data=parse_form_data) if as_text
                else super().get_data(cache=cache, as_text=False, parse_form_data=parse_form_data))
        if isinstance(self.stream, LimitedStream) and self.stream.is_exhausted:
            self.stream.on_exhausted()  # 413 when the limit is the cap, nothing for a declared length
        return data


class ArtForgeApi(Api):  # type: ignore[misc]
    # Document the API's one error shape instead of flask-smorest's default.
    ERROR_SCHEMA = ErrorSchema


class ErrorDocsPlugin(BasePlugin):  # type: ignore[misc]
    """Spec hook: every operation documents the errors any request of its kind can get (401 and 503
    when authenticated: the key check reads Redis; 400 and 413 with a body; 404 with path
    parameters; 429 unless never rate limited), each error response shows the one error shape
    with an example, POST /v1/jobs shows a request of each job kind (and 403 for the admin-only
    kinds), and multipart form fields are documented in the request body (OpenAPI 3 has no
    formData parameters)."""

    def init_spec(self, spec: APISpec) -> None:
        super().init_spec(spec)
        self.spec = spec
        resolve = next(p for p in spec.plugins if isinstance(p, MarshmallowPlugin)).schema_name_resolver
        self.error_schema, self.job_request_schema = resolve(ErrorSchema), resolve(JobRequestSchema)
        for status, example in ERROR_EXAMPLES.items():
            spec.components.example(f"Error{status}", example)
        for name, example in JOB_REQUEST_EXAMPLES.items():
            spec.components.example(f"JobRequest_{name}", example)

    def operation_helper(self, path: str | None = None, operations: dict[str, Any] | None = None,
                         **kwargs: Any) -> None:
        for operation in (operations or {}).values():
            if isinstance(operation, dict) and "responses" in operation:
                self._fold_form_fields(operation)
                self._document_errors(path or "", operation)
                self._document_job_requests(operation)

    def _document_errors(self, path: str, operation: dict[str, Any]) -> None:
        responses = {str(code): response for code, response in operation["responses"].items()}
        expected: dict[str, str] = {}
        if operation.get("security") != []:
            expected |= {"401": "no API key, or not a valid one",
                         "503": "Redis, the queue or object storage is unavailable; retry after Retry-After"}
        if "requestBody" in operation:
            expected |= {"400": "malformed request (e.g. not JSON, a bad header)",
                         "413": "the request body is larger than the server accepts"}
        if "{" in path:
            expected["404"] = "no such resource, or another tenant's"
        if path not in UNLIMITED_PATHS:
            expected["429"] = "rate limited (per tenant; per address without a valid key); retry after Retry-After"
        for code, description in expected.items():
            responses.setdefault(code, {"description": description})
        for code, response in responses.items():
            if code.isdigit() and int(code) >= 400:
                responses[code] = self._error_response(int(code), response)
        operation["responses"] = responses

    def _error_response(self, status: int, response: Any) -> dict[str, Any]:
        # A bare name refers to flask-smorest's per-status component: inline it with the example.
        documented = dict(response) if isinstance(response, dict) else {"description": http.HTTPStatus(status).phrase}
        media: dict[str, Any] = {"schema": self.error_schema}
        if status in ERROR_EXAMPLES:
            media["examples"] = {ERROR_EXAMPLES[status]["value"]["error"]["code"]: {
                "$ref": f"#/components/examples/Error{status}"}}
        documented["content"] = {"application/json": media}
        if status in (429, 503):
            documented["headers"] = {"Retry-After": {"description": "seconds to wait before retrying",
                                                     "schema": {"type": "integer"}}}
        return documented

    def _document_job_requests(self, operation: dict[str, Any]) -> None:
        media = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
        ref = {"$ref": f"#/components/schemas/{self.job_request_schema}"}
        if media.get("schema") not in (self.job_request_schema, ref):
            return
        media["examples"] = {name: {"$ref": f"#/components/examples/JobRequest_{name}"}
                             for name in JOB_REQUEST_EXAMPLES}
        admin_kinds = [kind for kind in list_kinds() if get_kind(kind).admin_only]
        if admin_kinds:
            operation["responses"].setdefault("403", self._error_response(
                403, {"description": f"{', '.join(admin_kinds)} jobs need an admin key"}))

    def _fold_form_fields(self, operation: dict[str, Any]) -> None:
        form = [p for p in operation.get("parameters", []) if isinstance(p, dict) and p.get("in") == "formData"]
        media = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data")
        if not form or media is None:
            return
        documented = self._schema_properties(media["schema"])
        missing = {p["name"]: {**p["schema"], **({"description": p["description"]} if "description" in p else {})}
                   for p in form if p["name"] not in documented}
        if missing:
            extra: dict[str, Any] = {"type": "object", "properties": missing}
            required = sorted(p["name"] for p in form if p["name"] in missing and p.get("required"))
            if required:
                extra["required"] = required
            media["schema"] = {"allOf": [media["schema"], extra]}
        operation["parameters"] = [p for p in operation["parameters"] if p not in form]
        if not operation["parameters"]:
            del operation["parameters"]

    def _schema_properties(self, schema: Any) -> set[str]:
        if isinstance(schema, dict) and "$ref" in schema:
            schema = schema["$ref"].rsplit("/", 1)[-1]
        if isinstance(schema, str):
            schema = self.spec.components.schemas.get(schema, {})
        return set(schema.get("properties", {}))


def create_app(settings: Settings | None = None, test_config: dict[str, Any] | None = None) -> Flask:
    settings = settings or Settings.from_env()
    configure_logging(settings)
    # Threads decoding untrusted images must not each keep a near-cap image's worth of memory.
    return_freed_pixels_to_the_os()
    # No app-wide static folder: the gallery blueprint serves api/static/ at /static.
    app = Flask(__name__, static_folder=None)
    app.request_class = CappedRequest
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

    api = ArtForgeApi(app, spec_kwargs={"extra_plugins": [ErrorDocsPlugin()]})
    for module in (health, uploads, jobs, styles, models, datasets, verify, provenance, protected_works,
                   schedules, tenants, keys, webhooks, works):
        api.register_blueprint(module.blp)
    app.register_blueprint(get_swaggerui_blueprint("/docs", "/openapi.json", config={"app_name": "ArtForge API"}))
    app.register_blueprint(gallery.blp)
    # `flask --app api keys ...`: the server-side admin commands (api/admin.py).
    app.cli.add_command(admin.keys_cli)
    app.cli.add_command(admin.tenants_cli)
    # Registered after flask-smorest's own handlers, so every error has our one shape.
    register_error_handlers(app)
    # Order matters: the request id is bound before authentication, the tenant after it.
    observability.install(app)
    # Before authentication, so that requests with bad keys are rate limited too.
    install_limits(app, settings)
    app.before_request(_authenticate)
    app.before_request(observability.bind_tenant)
    # JSON bodies json.loads cannot read without crashing the parser (too deep, too long a number): 400.
    app.before_request(refuse_unparseable_json)
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
