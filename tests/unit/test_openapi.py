"""The OpenAPI document at /openapi.json: a valid OpenAPI 3.0 spec, every operation documents the
errors it can answer with in the one error shape, and its examples are requests and errors the
API really accepts and sends. The app is built without Redis or S3: nothing connects until a
request needs it, and the requests here that do meet a closed port."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from marshmallow import ValidationError
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate as validate_spec

from api import create_app
from api.errors import _HTTP_CODES
from api.job_kinds import (
    ANALYSIS_INPUTS,
    ANALYSIS_PARAMS,
    CREATION_PARAMS,
    RESTORATION_INPUTS,
    RESTORATION_PARAMS,
    STYLE_TRANSFER_INPUTS,
    STYLE_TRANSFER_PARAMS,
    TRAINING_PARAMS,
    TRAINING_TARGET,
)
from api.limits import UNLIMITED_PATHS
from api.schemas import ERROR_EXAMPLES, JOB_REQUEST_EXAMPLES, ErrorSchema, JobRequestSchema
from shared.contract import get_kind, list_kinds
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
HTTP_METHODS = ("get", "put", "post", "delete", "patch")
# The statuses the API's contract names (README.md, "Errors always look like ...").
CONTRACT_ERROR_STATUSES = (400, 401, 403, 404, 409, 413, 415, 422, 429, 503)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def app() -> Iterator[Flask]:
    port = closed_port()  # Redis and S3 "down": requests that need them get 503
    settings = Settings(redis_url=f"redis://127.0.0.1:{port}/0", s3_endpoint=f"127.0.0.1:{port}", retry_after_s=7)
    yield create_app(settings, test_config={"TESTING": True})


@pytest.fixture(scope="module")
def spec(app: Flask) -> dict[str, Any]:
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.get_json()
    return document


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


def resolve(spec: dict[str, Any], node: Any) -> Any:
    """``node`` with every local $ref replaced by what it points at (the schemas have no cycles)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return resolve(spec, target)
        return {key: resolve(spec, value) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(spec, item) for item in node]
    return node


def assert_matches_schema(spec: dict[str, Any], instance: Any, schema: dict[str, Any]) -> None:
    OAS30Validator(resolve(spec, schema)).validate(instance)


def test_openapi_document_is_a_valid_openapi_3_spec(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.0")
    validate_spec(spec)


def test_no_operation_has_form_parameters_outside_its_request_body(spec: dict[str, Any]) -> None:
    for path, method, operation in operations(spec):
        locations = {p["in"] for p in operation.get("parameters", [])}
        assert locations <= {"path", "query", "header", "cookie"}, (method, path, locations)


def test_every_operation_documents_the_errors_it_can_answer_with(spec: dict[str, Any]) -> None:
    for path, method, operation in operations(spec):
        responses = operation["responses"]
        where = f"{method.upper()} {path}"
        assert "default" in responses, where
        expected = set()
        if operation.get("security") != []:
            expected |= {"401", "503"}  # the key check reads Redis
        if "requestBody" in operation:
            expected |= {"400", "413"}
        if "{" in path:
            expected.add("404")
        if path not in UNLIMITED_PATHS:
            expected.add("429")
        if "requestBody" in operation:
            expected.add("422")
        assert expected <= set(responses), f"{where} lacks {sorted(expected - set(responses))}"
        if any(p["in"] == "query" for p in operation.get("parameters", [])):
            assert {"400", "422"} & set(responses), f"{where} documents no answer to a bad query parameter"
        for code, response in responses.items():
            if code.isdigit() and int(code) >= 400:
                media = response["content"]["application/json"]
                assert media["schema"] == {"$ref": "#/components/schemas/Error"}, (where, code)
                if int(code) in ERROR_EXAMPLES:
                    assert media["examples"], (where, code)
                if code in ("429", "503"):
                    assert "Retry-After" in response["headers"], (where, code)


def test_every_contract_error_status_has_an_example_of_the_error_shape(spec: dict[str, Any]) -> None:
    examples = spec["components"]["examples"]
    error_schema = {"$ref": "#/components/schemas/Error"}
    source = "\n".join(p.read_text() for p in [*ROOT.glob("api/**/*.py"), ROOT / "shared" / "images.py"])
    for status in CONTRACT_ERROR_STATUSES:
        value = examples[f"Error{status}"]["value"]
        ErrorSchema().load(value)
        assert_matches_schema(spec, value, error_schema)
        code = value["error"]["code"]
        # The example's code is one the API really sends: a default code or one raised somewhere.
        assert code in _HTTP_CODES.values() or re.search(rf"[\"']{code}[\"']", source), (status, code)


def test_post_jobs_shows_a_valid_request_of_every_job_kind(spec: dict[str, Any]) -> None:
    media = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    assert set(media["examples"]) == set(JOB_REQUEST_EXAMPLES)
    if any(get_kind(kind).admin_only for kind in list_kinds()):
        assert "403" in spec["paths"]["/v1/jobs"]["post"]["responses"]
    examples = {name: resolve(spec, ref)["value"] for name, ref in media["examples"].items()}
    assert {e["kind"] for e in examples.values()} == set(list_kinds())
    for name, body in examples.items():
        assert_matches_schema(spec, body, media["schema"])
        loaded = JobRequestSchema().load(body)
        try:
            check_kind_params(loaded["kind"], loaded["params"], loaded["inputs"])
        except ValidationError as exc:
            raise AssertionError(f"example {name}: {exc.messages}") from None


def check_kind_params(kind: str, params: dict[str, Any], inputs: dict[str, Any]) -> None:
    """The part of each kind's validator that needs no stored uploads, models or datasets."""
    if kind == "style_transfer":
        loaded_params, loaded_inputs = STYLE_TRANSFER_PARAMS.load(params), STYLE_TRANSFER_INPUTS.load(inputs)
        assert ("style" in loaded_params) != ("style" in loaded_inputs), "exactly one style"
    elif kind == "creation":
        CREATION_PARAMS.load(params)
        assert not inputs
    elif kind == "restoration":
        loaded_params, loaded_inputs = RESTORATION_PARAMS.load(params), RESTORATION_INPUTS.load(inputs)
        assert "mask" in loaded_inputs or loaded_params["auto_mask"] or "inpaint" not in loaded_params["operations"]
    elif kind == "analysis":
        ANALYSIS_PARAMS.load(params)
        loaded_inputs = ANALYSIS_INPUTS.load(inputs)
        assert ("image" in loaded_inputs) != ({"job", "result"} <= set(loaded_inputs)), "one work"
    elif kind == "training":
        TRAINING_PARAMS[TRAINING_TARGET.load(params)["target"]].load(params)
        assert not inputs
    else:
        raise AssertionError(f"no example check for job kind {kind}")


def test_error_examples_match_what_the_api_answers(app: Flask, spec: dict[str, Any]) -> None:
    client = app.test_client()
    examples = spec["components"]["examples"]

    no_key = client.get("/v1/jobs")
    assert no_key.status_code == 401
    assert no_key.get_json() == examples["Error401"]["value"]

    unknown = client.get("/v1/no-such-thing")
    assert unknown.status_code == 404
    assert unknown.get_json()["error"]["code"] == examples["Error404"]["value"]["error"]["code"]

    redis_down = client.get("/v1/jobs", headers={"Authorization": "Bearer af_key_secret"})
    assert redis_down.status_code == 503
    assert redis_down.get_json() == examples["Error503"]["value"]
    assert redis_down.headers["Retry-After"] == "7"
    for response in (no_key, unknown, redis_down):
        assert_matches_schema(spec, response.get_json(), {"$ref": "#/components/schemas/Error"})


def test_swagger_ui_is_served_at_docs_and_points_at_the_spec(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/docs/")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert b"/openapi.json" in page.data
    assert client.get("/docs").status_code in (301, 308)
