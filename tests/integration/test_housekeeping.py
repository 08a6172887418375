"""Housekeeping on real servers: results past a tenant's retention are deleted from S3 by beat
and the job says so; keys of expired job records are pruned; object lock holds results back
without breaking the sweep; two sweeps at once expire each job once; the admin policy API.

One stack for the module: Redis, S3, the API, an inference worker and beat, with housekeeping
every second and job records kept ``RECORD_TTL_S`` after they finish. Tests that call the
housekeeping functions directly use Redis database 1, out of reach of that beat.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from api import create_app
from deploy.devstack import Stack
from shared.contract import TASK_EXPIRE_RESULTS
from shared.jobs import IDEMPOTENCY_TTL_S, JobStatus, new_job_id
from shared.objects import ObjectStore
from shared.settings import Settings
from shared.tenants import TenantPolicyStore
from tests.conftest import ApiClient, eventually, image_bytes, stack_on, tasks_done
from workers.housekeeping import ResultsLedger, expire_results, prune_expired_job_keys
from workers.runtime import Runtime

RECORD_TTL_S = 10
RETENTION_S = 2.0
DAY_S = 86400


@pytest.fixture(scope="module")
def service(servers: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"ARTFORGE_HOUSEKEEPING_INTERVAL_S": "1", "ARTFORGE_FINISHED_JOB_TTL_S": str(RECORD_TTL_S)}
    stack = stack_on(servers, tmp_path_factory.mktemp("housekeeping"), env)
    try:
        stack.start_api(workers=1, threads=4)
        stack.start_worker("inference")
        stack.start_beat()
        yield stack
    finally:
        stack.stop_all()


def api_client(stack: Stack, tenant: str, admin: bool = False) -> ApiClient:
    return ApiClient(f"http://127.0.0.1:{stack.api_port}", stack.create_key(tenant, admin=admin))


def put_policy(client: ApiClient, tenant: str, body: Any) -> requests.Response:
    return requests.put(f"{client.base}/v1/tenants/{tenant}/policy", json=body, timeout=30,
                        headers={"Authorization": f"Bearer {client.key}"})


def direct_runtime(servers: Stack, workdir: Path, **overrides: Any) -> Runtime:
    """Stores in a namespace of their own (``stack_on``): no beat sweeps there."""
    stack = stack_on(servers, workdir)
    return Runtime.from_settings(Settings.from_env(dict(stack.env), **overrides))


def small_job(client: ApiClient, **extra: Any) -> str:
    photo = Image.effect_mandelbrot((64, 64), (-2.0, -1.5, 1.0, 1.5), 100).convert("RGB")
    response = client.upload(image_bytes(photo), "photo.png")
    assert response.status_code == 201, response.text
    body = {"kind": "style_transfer", "inputs": {"content": response.json()["id"]},
            "params": {"style": "starry-swirl", "max_side": 64}}
    response = client.submit(body, **extra)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


# -- the admin API and CLI ---------------------------------------------------------------------


def test_only_admin_keys_read_or_set_a_tenant_policy(service: Stack) -> None:
    admin, tenant = api_client(service, "ops", admin=True), api_client(service, "dora")
    assert admin.get("/v1/tenants/dora/policy").json() == {
        "tenant": "dora", "results_retention_days": None, "effective_results_retention_days": 0.0}
    for response in (tenant.get("/v1/tenants/dora/policy"), put_policy(tenant, "dora", {"results_retention_days": 1}),
                     put_policy(tenant, "dora", {"results_retention_days": -1})):
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "forbidden"

    response = put_policy(admin, "dora", {"results_retention_days": 1.5})
    assert response.status_code == 200, response.text
    assert response.json()["effective_results_retention_days"] == 1.5
    assert admin.get("/v1/tenants/dora/policy").json()["results_retention_days"] == 1.5
    # null hands the tenant back to the service default.
    assert put_policy(admin, "dora", {"results_retention_days": None}).json()["results_retention_days"] is None


@pytest.mark.parametrize("body", [{"results_retention_days": -1}, {"results_retention_days": "2"},
                                  {"results_retention_days": True}, {}, {"results_retention_days": 1, "x": 1}])
def test_policy_that_is_not_a_number_from_zero_is_refused(service: Stack, body: dict[str, Any]) -> None:
    admin = api_client(service, "ops", admin=True)
    response = put_policy(admin, "erin", body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_parameters"
    assert admin.get("/v1/tenants/erin/policy").json()["results_retention_days"] is None


def test_policy_of_a_malformed_tenant_name_is_refused(service: Stack) -> None:
    admin = api_client(service, "ops", admin=True)
    assert put_policy(admin, "a:b", {"results_retention_days": 1}).status_code == 422


def test_admin_cli_sets_retention(service: Stack) -> None:
    cli = create_app(service.settings()).test_cli_runner()
    done = cli.invoke(args=["tenants", "set-retention", "--tenant", "fay", "--days", "0.25"])
    assert done.exit_code == 0, done.output
    assert "fay: results_retention_days=0.25" in done.output
    assert api_client(service, "ops", admin=True).get("/v1/tenants/fay/policy").json()[
        "results_retention_days"] == 0.25
    refused = cli.invoke(args=["tenants", "set-retention", "--tenant", "fay", "--days", "-1"])
    assert refused.exit_code == 2 and "between 0" in refused.output


# -- through beat --------------------------------------------------------------------------------


def test_results_past_retention_are_deleted_and_the_job_says_so(service: Stack) -> None:
    admin = api_client(service, "ops", admin=True)
    alice, bob = api_client(service, "alice"), api_client(service, "bob")
    assert put_policy(admin, "alice", {"results_retention_days": RETENTION_S / DAY_S}).status_code == 200
    expiring, kept = small_job(alice), small_job(bob)  # bob has no policy: the default keeps forever
    objects = ObjectStore(service.settings())
    bucket = service.settings().bucket_results

    job = alice.wait(expiring, timeout=180)
    assert job["status"] == "succeeded" and len(job["results"]) == 1 and job["results_expired_at"] is None
    stored = objects.list_keys(bucket, f"alice/{expiring}/")
    assert {key.rsplit("/", 1)[1] for key in stored} == {"0.png", "0.c2pa", "0.provenance.json"}, stored

    eventually(lambda: not objects.list_keys(bucket, f"alice/{expiring}/"), 60, "alice's results deleted")
    gone_at = time.time()
    finished_at = alice.get(f"/v1/jobs/{expiring}").json()["finished_at"]
    due_at = datetime.fromisoformat(finished_at).timestamp() + RETENTION_S
    print(f"\nresults deleted {gone_at - due_at:.2f}s after the retention ran out", file=sys.stderr)
    assert gone_at > due_at - 0.25  # the ledger entry is written a moment before the job's transition
    assert gone_at - due_at < 30

    eventually(lambda: alice.get(f"/v1/jobs/{expiring}").json()["results_expired_at"], 10, "job marked")
    job = alice.get(f"/v1/jobs/{expiring}").json()
    assert job["status"] == "succeeded" and job["results"] == [] and job["results_expired_at"]
    assert alice.get(f"/v1/jobs/{expiring}/results/0").status_code == 404

    other = bob.wait(kept, timeout=60)
    assert other["status"] == "succeeded"
    # Two sweeps after bob's results would have been due under alice's retention: still there.
    due = datetime.fromisoformat(other["finished_at"]).timestamp() + RETENTION_S
    worker_log = Path(service.processes["worker-inference"].log)
    eventually(lambda: tasks_done(worker_log, TASK_EXPIRE_RESULTS, after=due) >= 2, 60,
               "two results sweeps past alice's retention")
    other = bob.get(f"/v1/jobs/{kept}").json()
    assert len(other["results"]) == 1 and other["results_expired_at"] is None
    assert objects.list_keys(bucket, f"bob/{kept}/")
    assert bob.get(f"/v1/jobs/{kept}/results/0").status_code == 200


def test_expired_job_record_leaves_no_index_entry_or_idempotency_key(service: Stack) -> None:
    client = api_client(service, "gina")
    job_id = small_job(client, headers={"Idempotency-Key": "order-7"})
    assert client.wait(job_id, timeout=180)["status"] == "succeeded"
    rt = Runtime.from_settings(service.settings())
    index = rt.jobs.tenant_index("gina")
    assert rt.jobs.redis.zscore(index, job_id) is not None

    eventually(lambda: rt.jobs.get(job_id) is None, RECORD_TTL_S + 10, "record expired")
    eventually(lambda: rt.jobs.redis.zscore(index, job_id) is None, 10, "index entry pruned")
    # Beat keeps young Idempotency-Keys a while (a key is claimed before its job is written).
    assert prune_expired_job_keys(rt, idempotency_grace_s=0)["idempotency"] == 1
    assert not rt.jobs.redis.exists("af:idem:gina:order-7")
    assert not list(rt.jobs.redis.scan_iter(match=f"af:prov:wmjob:{job_id}:*"))
    # The key is free again: the same request makes a new job.
    assert small_job(client, headers={"Idempotency-Key": "order-7"}) != job_id


# -- called directly ---------------------------------------------------------------------------


def finished_job(rt: Runtime, tenant: str, ttl_s: int | None = None) -> str:
    job_id = new_job_id()
    rt.jobs.create(job_id=job_id, tenant=tenant, key_id="k", kind="style_transfer", params={}, inputs={})
    rt.jobs.begin_attempt(job_id, "w", lease_s=60)
    rt.jobs.finish(job_id, JobStatus.SUCCEEDED, results=[{"index": 0, "key": f"{tenant}/{job_id}/0.png"}])
    return job_id


def stored_results(rt: Runtime, tenant: str, finished_days_ago: float, retain: bool = False) -> str:
    job_id = finished_job(rt, tenant)
    bucket = rt.settings.bucket_results
    for name in ("0.png", "0.c2pa", "0.provenance.json"):
        rt.objects.put_bytes(bucket, f"{tenant}/{job_id}/{name}", b"result", retain=retain)
    rt.objects.put_bytes(bucket, f"{tenant}/{job_id}/artifacts/grid.png", b"sample")
    ResultsLedger(rt.jobs.redis).record(tenant, job_id, time.time() - finished_days_ago * DAY_S)
    return job_id


def test_locked_results_stay_listed_and_are_retried_later(servers: Stack, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    rt = direct_runtime(servers, tmp_path, bucket_results="housekeeping-locked", results_retention_days=1,
                        results_retention_mode="GOVERNANCE")
    rt.objects.ensure_buckets()
    TenantPolicyStore(rt.jobs.redis).set_results_retention("hana", 1)
    locked = stored_results(rt, "hana", finished_days_ago=2, retain=True)

    with caplog.at_level(logging.WARNING, logger="workers.housekeeping"):
        assert expire_results(rt) == []
    assert "object lock" in caplog.text and locked in caplog.text
    assert ResultsLedger(rt.jobs.redis).contains("hana", locked)
    assert len(rt.jobs.get(locked).results) == 1 and rt.jobs.get(locked).results_expired_at is None
    remaining = rt.objects.list_keys(rt.settings.bucket_results, f"hana/{locked}/")
    assert sorted(key.rsplit("/", 1)[1] for key in remaining) == ["0.c2pa", "0.png", "0.provenance.json"]


def test_each_run_is_bounded_and_tenants_that_keep_forever_are_left_alone(servers: Stack, tmp_path: Path) -> None:
    rt = direct_runtime(servers, tmp_path)
    policies = TenantPolicyStore(rt.jobs.redis)
    policies.set_results_retention("ivy", 1)
    policies.set_results_retention("jo", 0)
    due = [stored_results(rt, "ivy", finished_days_ago=3) for _ in range(5)]
    recent = stored_results(rt, "ivy", finished_days_ago=0.5)
    forever = [stored_results(rt, "jo", finished_days_ago=400) for _ in range(3)]

    first = expire_results(rt, batch=2)
    assert first == [f"ivy/{job_id}" for job_id in due[:2]]  # oldest first
    rest = expire_results(rt, batch=100)
    assert sorted(first + rest) == sorted(f"ivy/{job_id}" for job_id in due)
    assert expire_results(rt) == []
    bucket = rt.settings.bucket_results
    for job_id in due:
        assert not rt.objects.list_keys(bucket, f"ivy/{job_id}/")
        assert rt.jobs.get(job_id).results == [] and rt.jobs.get(job_id).results_expired_at
    for tenant, job_id in [("ivy", recent)] + [("jo", j) for j in forever]:
        assert len(rt.objects.list_keys(bucket, f"{tenant}/{job_id}/")) == 4
        assert ResultsLedger(rt.jobs.redis).contains(tenant, job_id)


def test_results_default_expiry_applies_to_tenants_without_a_policy(servers: Stack, tmp_path: Path) -> None:
    rt = direct_runtime(servers, tmp_path, results_expire_days=1)
    old = stored_results(rt, "kim", finished_days_ago=2)
    assert expire_results(rt) == [f"kim/{old}"]


def test_two_sweeps_at_once_expire_each_job_once(servers: Stack, tmp_path: Path) -> None:
    rt = direct_runtime(servers, tmp_path)
    TenantPolicyStore(rt.jobs.redis).set_results_retention("lee", 1)
    jobs = {f"lee/{stored_results(rt, 'lee', finished_days_ago=2)}" for _ in range(12)}
    runtimes = [Runtime.from_settings(rt.settings) for _ in range(2)]
    outcomes: list[list[str]] = [[], []]
    start = threading.Barrier(2)

    def sweep(i: int) -> None:
        start.wait()
        outcomes[i] = expire_results(runtimes[i])

    threads = [threading.Thread(target=sweep, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not set(outcomes[0]) & set(outcomes[1])
    assert set(outcomes[0]) | set(outcomes[1]) == jobs
    assert len(outcomes[0]) + len(outcomes[1]) == len(jobs)


def test_keys_of_expired_records_are_pruned_and_live_ones_kept(servers: Stack, tmp_path: Path) -> None:
    rt = direct_runtime(servers, tmp_path, finished_job_ttl_s=1)
    r = rt.jobs.redis
    expired = finished_job(rt, "max")
    r.set(rt.jobs.idempotency_key("max", "k1"), f"{expired} hash", ex=IDEMPOTENCY_TTL_S)
    r.set(f"af:prov:wmjob:{expired}:0", "123")
    r.sadd("af:jobs:running", expired)  # a leftover the transition script would never leave
    live = new_job_id()
    rt.jobs.create(job_id=live, tenant="max", key_id="k", kind="style_transfer", params={}, inputs={})
    r.zadd(rt.jobs.tenant_index("max"), {live: 1000})  # created long ago, still queued
    r.set(rt.jobs.idempotency_key("max", "k2"), f"{live} hash", ex=IDEMPOTENCY_TTL_S)
    r.set(f"af:prov:wmjob:{live}:0", "456")
    eventually(lambda: rt.jobs.get(expired) is None, 5, "record expired")
    later = time.time() + 1  # the expired job is then surely older than the record TTL

    assert prune_expired_job_keys(rt, now=later, idempotency_grace_s=0) == {
        "index": 1, "running": 1, "idempotency": 1, "watermark": 1}
    assert r.zscore(rt.jobs.tenant_index("max"), live) is not None
    assert r.zscore(rt.jobs.tenant_index("max"), expired) is None
    assert r.exists("af:idem:max:k2", f"af:prov:wmjob:{live}:0") == 2
    assert not r.exists("af:idem:max:k1", f"af:prov:wmjob:{expired}:0")
    assert prune_expired_job_keys(rt, now=later, idempotency_grace_s=0) == {
        "index": 0, "running": 0, "idempotency": 0, "watermark": 0}
