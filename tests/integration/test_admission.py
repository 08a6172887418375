"""The admission script on a real Redis (shared.admission): what an admitted submission writes, and
that a refused one writes nothing but its rate-limit counts. The HTTP contract on top of it is held
by tests/security/test_rate_limits.py and test_idempotency.py."""

from __future__ import annotations

import json
import uuid

import pytest
import redis

from deploy.devstack import Stack
from shared.admission import Admissions, Window
from shared.connections import redis_client
from shared.jobs import QUEUED_INDEX, JobStatus, JobStore, NewJob, new_job_id
from shared.quotas import ActiveJobQuota


@pytest.fixture(scope="module")
def r(servers: Stack) -> redis.Redis:
    return redis_client(servers.settings())


def admissions(r: redis.Redis, cap: int = 0) -> Admissions:
    return Admissions(r, ActiveJobQuota(r, {"jobs": cap, "training": cap}))


def new_job(tenant: str) -> NewJob:
    return NewJob.of(job_id=new_job_id(), tenant=tenant, key_id="k", kind="style_transfer",
                     params={"style": "bold-ink"}, inputs={"content": "u1"}, priority=3, request_id="req")


def windows(*limits: int) -> list[Window]:
    run = uuid.uuid4().hex[:8]
    return [Window(f"test:window:{run}:{i}", limit, 60) for i, limit in enumerate(limits)]


def fresh_tenant() -> str:
    return f"adm-{uuid.uuid4().hex[:8]}"


def test_an_admitted_job_is_written_whole(r: redis.Redis) -> None:
    tenant = fresh_tenant()
    job = new_job(tenant)
    answer = admissions(r, cap=5).admit(job, "style_transfer", windows(10), "key-1", "hash-1")
    assert answer.outcome == "admitted"
    store = JobStore(r)
    stored = store.get(job.id)
    assert stored is not None and stored.status == JobStatus.QUEUED and stored.tenant == tenant
    assert stored.params == {"style": "bold-ink"} and stored.priority == 3
    assert r.zscore(store.tenant_index(tenant), job.id) == int(float(job.record["created_at"]) * 1000)
    assert r.zscore(QUEUED_INDEX, job.id) is not None  # the lost-message sweep will see it
    events = r.xrange(store.events_key(job.id))
    assert [e[1]["status"] for e in events] == ["queued"]
    assert json.loads(events[0][1]["progress"])["stage"] == "queued"
    assert r.get(store.idempotency_key(tenant, "key-1")) == f"{job.id} hash-1"
    assert 0 < r.ttl(store.idempotency_key(tenant, "key-1")) <= 24 * 3600
    assert r.zscore(ActiveJobQuota.key(tenant, "jobs"), job.id) is not None


def test_text_comes_back_as_it_was_sent(r: redis.Redis) -> None:
    tenant = fresh_tenant()
    prompt = "抽象画，色彩鲜艳，有现代感 🎨 \"quoted\" \\ back\u2028slash"
    job = NewJob.of(job_id=new_job_id(), tenant=tenant, key_id="k", kind="creation",
                    params={"prompt": prompt}, inputs={}, webhook_url="https://example.com/hook?a=1&b=é")
    assert admissions(r).admit(job, "creation", []).outcome == "admitted"
    stored = JobStore(r).get(job.id)
    assert stored is not None and stored.params == {"prompt": prompt}
    assert r.hgetall(JobStore.job_key(job.id)) == job.record


def test_a_used_key_replays_the_earlier_job_and_writes_nothing(r: redis.Redis) -> None:
    tenant = fresh_tenant()
    gate = admissions(r)
    first, second = new_job(tenant), new_job(tenant)
    assert gate.admit(first, "style_transfer", [], "k", "hash-1").outcome == "admitted"
    replay = gate.admit(second, "style_transfer", [], "k", "hash-2")
    assert (replay.outcome, replay.earlier_job_id, replay.earlier_body_sha256) == ("replay", first.id, "hash-1")
    assert not r.exists(JobStore.job_key(second.id))
    # Keys belong to their tenant; no key, no replay.
    assert gate.admit(new_job(fresh_tenant()), "style_transfer", [], "k", "hash-2").outcome == "admitted"
    assert gate.admit(new_job(tenant), "style_transfer", [], None).outcome == "admitted"


def test_rate_limits_stop_at_the_first_window_over_and_count_refusals(r: redis.Redis) -> None:
    tenant, gate, limits = fresh_tenant(), admissions(r), windows(5, 2)
    assert [gate.admit(new_job(tenant), "style_transfer", limits).outcome for _ in range(2)] == ["admitted"] * 2
    refused = new_job(tenant)
    answer = gate.admit(refused, "style_transfer", limits, "k", "h")
    assert (answer.outcome, answer.window) == ("rate_limited", 1)
    assert 1 <= answer.retry_after_s <= 60
    assert not r.exists(JobStore.job_key(refused.id), JobStore.idempotency_key(tenant, "k"))
    assert [int(r.get(w.key)) for w in limits] == [3, 3]  # refused requests count, as flask-limiter's do
    # Counting alone (a submission refused before its admission) uses the same windows.
    assert gate.count(limits).outcome == "rate_limited"
    assert gate.count(limits[:1]).outcome == "admitted"  # 5 of 5
    assert gate.count(limits[:1]).outcome == "rate_limited"
    assert 0 < r.ttl(limits[0].key) <= 60


def test_a_full_quota_refuses_and_writes_nothing(r: redis.Redis) -> None:
    tenant, gate = fresh_tenant(), admissions(r, cap=1)
    first = new_job(tenant)
    assert gate.admit(first, "style_transfer", []).outcome == "admitted"
    refused = new_job(tenant)
    answer = gate.admit(refused, "style_transfer", [], "k", "h")
    assert (answer.outcome, answer.pool, answer.active, answer.limit) == ("quota_exceeded", "jobs", 1, 1)
    assert not r.exists(JobStore.job_key(refused.id), JobStore.idempotency_key(tenant, "k"))
    assert r.zscore(ActiveJobQuota.key(tenant, "jobs"), refused.id) is None
    # Training has its own pool; a finished job frees its slot.
    assert gate.admit(new_job(tenant), "training", []).outcome == "admitted"
    JobStore(r).finish(first.id, JobStatus.CANCELED, message="canceled before it started")
    assert gate.admit(new_job(tenant), "style_transfer", []).outcome == "admitted"
