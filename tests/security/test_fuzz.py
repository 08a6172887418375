"""Fuzzing the API with schemathesis against its own ``/openapi.json``, served by gunicorn on a real
Redis and S3: every documented operation gets generated requests, valid ones (positive mode) and
invalid ones (negative mode), sent with an admin key, a tenant key, no key or a bad key. Some
requests name real things (a finished job with results, the caller's uploads, the built-in
dataset, a protected work, a named style) so the fuzzer gets past the 404s into the handlers.

What must hold for every request: no 5xx, and every 4xx answers in the API's one error shape
``{"error": {"code": str, "message": str, "details"?: object}}`` with a JSON content type.

``ARTFORGE_FUZZ_EXAMPLES`` sets the examples per operation and mode (default 20: about 1,700
requests); the run is derandomized, so a failure replays with the same requests.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from PIL import Image
from schemathesis import Case, GenerationMode

from deploy.devstack import Stack
from tests.conftest import OWN_RIGHTS, ApiClient, image_bytes
from tests.security.conftest import stack_with

EXAMPLES = int(os.environ.get("ARTFORGE_FUZZ_EXAMPLES", "20"))
MIN_REQUESTS = 1000
FUZZ_ENV = {
    # No rate limits or quotas: the fuzzer must reach the handlers, not a 429.
    "ARTFORGE_RATE_LIMIT_DEFAULT": "",
    "ARTFORGE_RATE_LIMIT_SUBMIT": "",
    "ARTFORGE_MAX_ACTIVE_JOBS_PER_TENANT": "0",
    "ARTFORGE_MAX_ACTIVE_TRAINING_JOBS_PER_TENANT": "0",
    # The event stream of a live job would otherwise stay open for an hour.
    "ARTFORGE_SSE_MAX_S": "2",
    "ARTFORGE_SSE_HEARTBEAT_S": "1",
}
UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
# Mostly valid keys, so requests get past authentication; negative mode also drops the header now and then.
AUTH_MODES = ("admin", "admin", "admin", "admin", "tenant", "tenant", "tenant", "none", "bad")
# Operations worth more examples than the rest: the submission path and the image decoder.
EXAMPLES_FACTOR = {"POST /v1/jobs": 4, "POST /v1/uploads": 2}


@dataclass
class Seeds:
    """Real things of tenant ``alice`` for the fuzzer to aim at."""

    admin_key: str
    tenant_key: str
    job_id: str
    upload_id: str
    mask_id: str
    work_id: str
    style: str
    spare_key_id: str  # a key of alice's the fuzzer may revoke (never the keys it sends)
    tenant: str = "alice"
    dataset_id: str = "procedural"

    def path_parameters(self, path: str, names: set[str]) -> dict[str, Any]:
        known: dict[str, Any] = {"job_id": self.job_id, "dataset_id": self.dataset_id, "work_id": self.work_id,
                                 "tenant": self.tenant, "index": 0, "upload_id": self.upload_id,
                                 "key_id": self.spare_key_id}
        if path.startswith("/v1/styles/"):
            known["name"] = self.style
        if path.endswith("/artifacts/{name}"):
            known.pop("name", None)
        return {name: value for name, value in known.items() if name in names}

    def headers(self, mode: str) -> dict[str, str]:
        keys = {"admin": self.admin_key, "tenant": self.tenant_key, "bad": "af_not-a-key_" + "0" * 32}
        return {"Authorization": f"Bearer {keys[mode]}"} if mode in keys else {}


@dataclass
class Tally:
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    by_operation: dict[str, Counter[int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def error_shape_problem(response: schemathesis.Response) -> str | None:
    """Why a 4xx is not in the API's one error shape, or None when it is."""
    content_type = (response.headers.get("content-type") or [""])[0]
    if not content_type.startswith("application/json"):
        return f"content type {content_type!r}"
    try:
        body = response.json()
    except ValueError:
        return "a body that is not JSON"
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return "not {'error': {...}}"
    error = body["error"]
    if not isinstance(error.get("code"), str) or not isinstance(error.get("message"), str):
        return "error.code or error.message missing or not a string"
    if not set(error) <= {"code", "message", "details"}:
        return f"unexpected keys {sorted(set(error) - {'code', 'message', 'details'})}"
    if "details" in error and not isinstance(error["details"], dict):
        return "error.details not an object"
    return None


@pytest.fixture(scope="module")
def fuzz_stack(servers: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Seeds]]:
    """The API, Redis and S3 of this module, and real things to aim at: a restoration job run to
    the end by an inference worker (stopped afterwards, so fuzzed submissions only queue), an
    image and a mask uploaded, and a protected work."""
    with stack_with(servers, tmp_path_factory.mktemp("fuzz"), FUZZ_ENV, workers=("inference",)) as stack:
        base = f"http://127.0.0.1:{stack.api_port}"
        admin = ApiClient(base, stack.create_key("alice", admin=True))
        tenant = ApiClient(base, stack.create_key("alice"))
        image = Image.effect_noise((64, 64), 60).convert("RGB")
        upload = admin.upload_image(image, rights=OWN_RIGHTS)
        mask = admin.upload_image(Image.new("L", (64, 64), 0).convert("RGB"), rights=OWN_RIGHTS)
        response = admin.submit({"kind": "restoration", "inputs": {"image": upload["id"]},
                                 "params": {"operations": ["defade"], "method": "classical"}})
        assert response.status_code == 202, response.text
        job = admin.wait(response.json()["id"], timeout=300)
        assert job["status"] == "succeeded", job
        stack.stop("worker-inference")
        work = Image.linear_gradient("L").resize((96, 96)).convert("RGB")
        response = admin.post("/v1/protected-works", files={"file": ("work.png", image_bytes(work))},
                              data={"title": "A protected gradient", "rights_holder": "Someone"})
        assert response.status_code == 201, response.text
        style = admin.get("/v1/styles").json()["items"][0]["name"]
        spare_key_id = stack.create_key("alice").removeprefix("af_").partition("_")[0]
        yield stack, Seeds(admin.key, tenant.key, job["id"], upload["id"], mask["id"], response.json()["id"], style,
                           spare_key_id)


def aim_at_uploads(case: Case, seeds: Seeds) -> None:
    """A job request whose inputs look like upload ids gets the caller's real uploads instead."""
    body = case.body
    if case.operation.label != "POST /v1/jobs" or not isinstance(body, dict):
        return
    inputs = body.get("inputs")
    if isinstance(inputs, dict):
        for role, value in inputs.items():
            if isinstance(value, str) and UPLOAD_ID.match(value):
                inputs[role] = seeds.mask_id if role == "mask" else seeds.upload_id


def fuzz_operation(operation: Any, mode: GenerationMode, base: str, seeds: Seeds, tally: Tally) -> None:
    label = operation.label
    path = operation.path
    names = {p.name for p in operation.path_parameters}
    generated = operation.as_strategy(generation_mode=mode)
    fixed = seeds.path_parameters(path, names)
    aimed = operation.as_strategy(generation_mode=mode, path_parameters=fixed) if fixed else generated
    # The spec's own examples (e.g. one job request per kind) too, in positive mode.
    examples = operation.get_strategies_from_examples() if mode == GenerationMode.POSITIVE else []
    session = requests.Session()

    @settings(max_examples=EXAMPLES * EXAMPLES_FACTOR.get(label, 1), deadline=None, derandomize=True,
              database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=st.one_of(generated, aimed, *examples), auth=st.sampled_from(AUTH_MODES), real=st.booleans())
    def run(case: Case, auth: str, real: bool) -> None:
        if real:
            aim_at_uploads(case, seeds)
        response = case.call(base_url=base, session=session, headers=seeds.headers(auth), timeout=30)
        tally.requests[label] += 1
        tally.statuses[response.status_code] += 1
        tally.by_operation.setdefault(label, Counter())[response.status_code] += 1
        where = f"{label} [{mode.value}, {auth} key] -> {response.status_code}"
        if response.status_code >= 500:
            tally.failures.append(f"{where}: {response.text[:300]}\n    {case.as_curl_command()}")
        elif response.status_code >= 400:
            problem = error_shape_problem(response)
            if problem is not None:
                tally.failures.append(f"{where}: {problem}: {response.text[:300]}\n    {case.as_curl_command()}")

    try:
        run()
    except Unsatisfiable:
        # Negative mode on an operation with nothing to make invalid (GET /healthz takes no input).
        if mode != GenerationMode.NEGATIVE:
            raise


def test_fuzzed_requests_get_no_5xx_and_every_error_has_the_one_shape(fuzz_stack: tuple[Stack, Seeds]) -> None:
    stack, seeds = fuzz_stack
    base = f"http://127.0.0.1:{stack.api_port}"
    schema = schemathesis.openapi.from_url(base + "/openapi.json", timeout=30)
    operations = [result.ok() for result in schema.get_all_operations()]
    tally = Tally()
    started = time.monotonic()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz_operation(operation, mode, base, seeds, tally)
    elapsed = time.monotonic() - started
    total = sum(tally.requests.values())
    print(f"\nfuzzed {len(operations)} operations with {total} requests in {elapsed:.0f}s "
          f"({total / elapsed:.0f}/s); statuses {dict(sorted(tally.statuses.items()))}")
    for label, statuses in tally.by_operation.items():
        print(f"  {label:52} {dict(sorted(statuses.items()))}")
    assert not tally.failures, f"{len(tally.failures)} bad answers:\n" + "\n".join(tally.failures[:40])
    assert set(tally.requests) == {op.label for op in operations}, "some operations got no request"
    assert total >= MIN_REQUESTS, f"only {total} requests sent"
    # The fuzzer reached past authentication and validation into the handlers.
    assert tally.statuses[200] + tally.statuses[201] + tally.statuses[202] > 0


# -- regressions: bodies that once answered 500 ------------------------------------------------

HOSTILE_JSON = {
    # json.loads raises RecursionError, which the body parser did not catch.
    "array nested 100,000 deep": "[" * 100_000 + "]" * 100_000,
    "object nested 50,000 deep": '{"a":' * 50_000 + "1" + "}" * 50_000,
    # An integer literal over sys.get_int_max_str_digits() (4,300) digits: a plain ValueError.
    "integer of 5,000 digits": '{"kind": "restoration", "priority": 1' + "0" * 5_000 + "}",
}
JSON_OPERATIONS = [("POST", "/v1/jobs"), ("PUT", "/v1/schedules/nightly"), ("PUT", "/v1/tenants/alice/policy"),
                   ("POST", "/v1/models/abstract/promote"), ("POST", "/v1/tenants/alice/keys")]


@pytest.mark.parametrize("body", list(HOSTILE_JSON.values()), ids=list(HOSTILE_JSON))
def test_json_bodies_the_parser_cannot_read_get_400_not_500(fuzz_stack: tuple[Stack, Seeds], body: str) -> None:
    stack, seeds = fuzz_stack
    for method, path in JSON_OPERATIONS:
        response = requests.request(method, f"http://127.0.0.1:{stack.api_port}{path}", data=body, timeout=30,
                                    headers={**seeds.headers("admin"), "Content-Type": "application/json"})
        assert response.status_code == 400, (method, path, response.text)
        assert response.json()["error"]["code"] == "malformed_request"
        assert error_shape_problem(schemathesis.Response.from_requests(response, verify=True)) is None
