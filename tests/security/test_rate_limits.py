"""Rate limits and active-job quotas per tenant, through gunicorn on a real Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from PIL import Image

from deploy.devstack import Stack
from tests.conftest import ApiClient
from tests.security.conftest import stack_with

DEFAULT_LIMIT, SUBMIT_LIMIT = 10, 3


def assert_429(response: requests.Response, code: str) -> dict[str, Any]:
    assert response.status_code == 429, response.text
    assert set(response.json()) == {"error"}
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    return dict(error)


# -- rate limits --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(servers: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"ARTFORGE_RATE_LIMIT_DEFAULT": f"{DEFAULT_LIMIT}/minute",
           "ARTFORGE_RATE_LIMIT_SUBMIT": f"{SUBMIT_LIMIT}/minute"}
    with stack_with(servers, tmp_path_factory.mktemp("limited"), env) as stack:
        yield stack


def client_of(stack: Stack, tenant: str, admin: bool = False) -> ApiClient:
    return ApiClient(f"http://127.0.0.1:{stack.api_port}", stack.create_key(tenant, admin=admin))


def test_tenant_over_its_limit_gets_429_and_other_tenants_do_not(limited: Stack) -> None:
    alice, bob = client_of(limited, "alice"), client_of(limited, "bob")
    statuses = [alice.get("/v1/jobs").status_code for _ in range(DEFAULT_LIMIT)]
    assert statuses == [200] * DEFAULT_LIMIT
    error = assert_429(alice.get("/v1/jobs"), "rate_limited")
    assert error["details"] == {"limit": f"{DEFAULT_LIMIT} per 1 minute"}
    assert_429(alice.get("/v1/styles"), "rate_limited")  # the limit is the tenant's, not the route's
    # A second key of the same tenant shares it; another tenant has its own.
    assert_429(client_of(limited, "alice").get("/v1/jobs"), "rate_limited")
    assert bob.get("/v1/jobs").status_code == 200


def test_health_readiness_and_metrics_are_never_limited(limited: Stack) -> None:
    base = f"http://127.0.0.1:{limited.api_port}"
    for _ in range(3 * DEFAULT_LIMIT):
        assert requests.get(base + "/healthz", timeout=10).status_code == 200
        assert requests.get(base + "/readyz", timeout=10).status_code == 200
        assert requests.get(base + "/metrics", timeout=10).status_code != 429


def test_submissions_have_their_own_smaller_limit(limited: Stack) -> None:
    carol = client_of(limited, "carol")
    invalid = {"kind": "style_transfer", "params": {"style": "no-such-style"}, "inputs": {}}
    assert [carol.submit(invalid).status_code for _ in range(SUBMIT_LIMIT)] == [422] * SUBMIT_LIMIT
    error = assert_429(carol.submit(invalid), "rate_limited")
    assert "submissions" in error["message"]
    assert carol.get("/v1/jobs").status_code == 200  # other routes still answer


def test_accepted_submissions_count_in_the_tenant_limit_with_its_other_requests(
        limited: Stack, photo: Image.Image) -> None:
    """Admissions count a tenant's submissions in the very windows flask-limiter counts its other
    requests in: one budget, whichever way a request was counted."""
    ivy = client_of(limited, "ivy")
    content = ivy.upload_image(photo.resize((64, 64)))["id"]  # request 1
    body = {"kind": "style_transfer", "inputs": {"content": content}, "params": {"style": "bold-ink"}}
    assert [ivy.submit(body).status_code for _ in range(SUBMIT_LIMIT)] == [202] * SUBMIT_LIMIT  # 2-4
    assert "submissions" in assert_429(ivy.submit(body), "rate_limited")["message"]  # 5
    assert [ivy.get("/v1/jobs").status_code for _ in range(DEFAULT_LIMIT - 5)] == [200] * (DEFAULT_LIMIT - 5)
    error = assert_429(ivy.get("/v1/jobs"), "rate_limited")
    assert error["details"] == {"limit": f"{DEFAULT_LIMIT} per 1 minute"}
    assert_429(ivy.submit(body), "rate_limited")


def test_requests_without_a_valid_key_are_limited_by_address(limited: Stack) -> None:
    base = f"http://127.0.0.1:{limited.api_port}"
    bad = {"Authorization": "Bearer af_0000000000000000_not-a-key"}
    answers = [requests.get(base + "/v1/jobs", headers=bad if i % 2 else {}, timeout=10).status_code
               for i in range(DEFAULT_LIMIT)]
    assert answers == [401] * DEFAULT_LIMIT
    assert_429(requests.get(base + "/v1/jobs", timeout=10), "rate_limited")
    assert client_of(limited, "dave").get("/v1/jobs").status_code == 200


# -- quotas -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quota_stack(servers: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"ARTFORGE_MAX_ACTIVE_JOBS_PER_TENANT": "2", "ARTFORGE_MAX_ACTIVE_TRAINING_JOBS_PER_TENANT": "1"}
    with stack_with(servers, tmp_path_factory.mktemp("quota"), env) as stack:  # no worker: jobs stay queued
        yield stack


def style_job(content_id: str) -> dict[str, Any]:
    return {"kind": "style_transfer", "inputs": {"content": content_id},
            "params": {"style": "sepia-drawing", "max_side": 64}}


def test_active_jobs_are_capped_exactly_under_concurrency_and_freed_when_they_finish(
        quota_stack: Stack, photo: Image.Image) -> None:
    erin, frank = client_of(quota_stack, "erin"), client_of(quota_stack, "frank")
    content = erin.upload_image(photo.resize((64, 64)))["id"]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: erin.submit(style_job(content)), range(8)))
    accepted = [r for r in answers if r.status_code == 202]
    refused = [r for r in answers if r.status_code != 202]
    assert len(accepted) == 2 and len(refused) == 6, [r.status_code for r in answers]
    for response in refused:
        error = assert_429(response, "quota_exceeded")
        assert error["details"] == {"active": 2, "limit": 2, "pool": "jobs"}
    assert len(erin.get("/v1/jobs").json()["items"]) == 2  # refused submissions left nothing behind
    # Another tenant's quota is its own.
    other = frank.upload_image(photo.resize((64, 64)))["id"]
    assert frank.submit(style_job(other)).status_code == 202

    # Jobs that finish free their slots, whatever finished them: a cancel ...
    canceled = accepted[0].json()["id"]
    assert erin.post(f"/v1/jobs/{canceled}/cancel").json()["status"] == "canceled"
    third = erin.submit(style_job(content))
    assert third.status_code == 202, third.text
    assert_429(erin.submit(style_job(content)), "quota_exceeded")
    # ... or a worker.
    started = time.monotonic()
    quota_stack.start_worker("inference")
    for job_id in (accepted[1].json()["id"], third.json()["id"]):
        assert erin.wait(job_id, timeout=180)["status"] == "succeeded"
    print(f"worker started and ran both jobs in {time.monotonic() - started:.1f} s")
    again = erin.submit(style_job(content))
    assert again.status_code == 202, again.text
    assert erin.wait(again.json()["id"], timeout=120)["status"] == "succeeded"


def test_training_jobs_have_their_own_cap(quota_stack: Stack) -> None:
    admin = client_of(quota_stack, "gina", admin=True)
    training = {"kind": "training", "params": {"target": "gan", "model": "quota-test", "steps": 1}}
    assert admin.submit(training).status_code == 202  # no training worker: it stays queued
    error = assert_429(admin.submit(training), "quota_exceeded")
    assert error["details"] == {"active": 1, "limit": 1, "pool": "training"}


def test_quota_counts_only_live_jobs_and_a_submission_in_flight(servers: Stack) -> None:
    """The claim script on its own: finished jobs free their slot without any decrement, a claim
    whose record is not written yet holds its slot for the grace period, and no longer."""
    from shared.connections import Stores
    from shared.jobs import JobStatus, new_job_id
    from shared.quotas import PENDING_GRACE_S, ActiveJobQuota

    jobs = Stores.from_settings(servers.settings()).jobs
    quota, tenant = ActiveJobQuota(jobs.redis, {"jobs": 2, "training": 1}), f"t{new_job_id()[:8]}"

    def submit() -> tuple[bool, str]:
        job_id = new_job_id()
        decision = quota.claim(tenant, "style_transfer", job_id)
        if decision.granted:
            jobs.create(job_id=job_id, tenant=tenant, key_id="k", kind="style_transfer", params={}, inputs={})
        return decision.granted, job_id

    (first_ok, first), (second_ok, _) = submit(), submit()
    assert first_ok and second_ok and not submit()[0]
    jobs.finish(first, JobStatus.CANCELED, message="canceled before it started")
    assert submit()[0] and not submit()[0]

    tenant = f"t{new_job_id()[:8]}"
    assert quota.claim(tenant, "style_transfer", "in-flight").granted  # its record comes a moment later
    assert submit()[0] and not submit()[0]
    stale = int((time.time() - PENDING_GRACE_S - 1) * 1000)
    jobs.redis.zadd(quota.key(tenant, "jobs"), {"in-flight": stale})  # ... or never: that submission died
    assert submit()[0]
    quota.release(tenant, "never-claimed")  # harmless
