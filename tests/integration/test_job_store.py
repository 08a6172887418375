"""The job store on a real Redis: the transition table is enforced atomically."""

from __future__ import annotations

import itertools
import time

import pytest

from deploy.devstack import Stack
from shared.connections import redis_client
from shared.jobs import (
    ALLOWED_TRANSITIONS,
    QUEUED_INDEX,
    RUNNING_SET,
    TERMINAL,
    JobStatus,
    JobStore,
    TransitionRefused,
    new_job_id,
)


@pytest.fixture(scope="module")
def store(servers: Stack) -> JobStore:
    return JobStore(redis_client(servers.settings()), finished_ttl_s=60)


def make_job(store: JobStore, status: JobStatus = JobStatus.QUEUED, tenant: str = "t1") -> str:
    job_id = new_job_id()
    store.create(job_id=job_id, tenant=tenant, key_id="k", kind="style_transfer", params={"a": 1}, inputs={})
    if status != JobStatus.QUEUED:
        store.redis.hset(store.job_key(job_id), mapping={"status": status.value, "lease_until": "0"})
    return job_id


def test_terminal_states_have_no_way_out() -> None:
    for status in TERMINAL:
        assert ALLOWED_TRANSITIONS[status] == frozenset()


@pytest.mark.parametrize("source,target", list(itertools.product(JobStatus, JobStatus)))
def test_every_transition_follows_the_table(store: JobStore, source: JobStatus, target: JobStatus) -> None:
    job_id = make_job(store, source)
    if target in ALLOWED_TRANSITIONS[source]:
        assert store.transition(job_id, target) == source
        assert store.get(job_id).status == target
    else:
        with pytest.raises(TransitionRefused) as refused:
            store.transition(job_id, target)
        assert refused.value.reason == "illegal"
        assert store.get(job_id).status == source  # unchanged


def test_transition_of_a_missing_job_is_refused(store: JobStore) -> None:
    with pytest.raises(TransitionRefused) as refused:
        store.transition(new_job_id(), JobStatus.RUNNING)
    assert refused.value.reason == "missing"


def test_a_live_lease_keeps_a_second_attempt_out(store: JobStore) -> None:
    job_id = make_job(store)
    first = store.begin_attempt(job_id, "w1", lease_s=30)
    assert first.status == JobStatus.RUNNING and first.attempts == 1
    assert job_id in store.running_job_ids()
    with pytest.raises(TransitionRefused) as refused:
        store.begin_attempt(job_id, "w2", lease_s=30)
    assert refused.value.reason == "leased"
    store.redis.hset(store.job_key(job_id), "lease_until", repr(time.time() - 1))  # the worker died
    second = store.begin_attempt(job_id, "w2", lease_s=30)
    assert second.attempts == 2 and second.worker == "w2"


def test_finished_jobs_leave_the_running_set_and_expire(store: JobStore) -> None:
    job_id = make_job(store)
    store.begin_attempt(job_id, "w", lease_s=30)
    store.finish(job_id, JobStatus.SUCCEEDED, results=[{"index": 0}])
    assert job_id not in store.redis.smembers(RUNNING_SET)
    assert 0 < store.redis.ttl(store.job_key(job_id)) <= 60
    job = store.get(job_id)
    assert job.results == [{"index": 0}] and job.progress["fraction"] == 1.0 and job.finished_at


def test_queued_index_holds_exactly_the_queued_jobs(store: JobStore) -> None:
    def queued_at(job_id: str) -> float | None:
        return store.redis.zscore(QUEUED_INDEX, job_id)

    job_id = make_job(store)
    created = queued_at(job_id)
    assert created is not None and created <= time.time()
    store.begin_attempt(job_id, "w", lease_s=60)
    assert queued_at(job_id) is None
    store.redis.hset(store.job_key(job_id), "lease_until", "0")
    store.requeue(job_id)
    requeued = queued_at(job_id)
    assert requeued is not None and requeued > created
    assert job_id in store.queued_unchecked_since(requeued, limit=10_000)
    assert job_id not in store.queued_unchecked_since(created, limit=10_000)
    store.restart_queued_clock([job_id])
    assert queued_at(job_id) > requeued
    store.finish(job_id, JobStatus.CANCELED)
    assert queued_at(job_id) is None
    store.restart_queued_clock([job_id])  # never puts a job that left the index back
    assert queued_at(job_id) is None

    never_sent = make_job(store)
    store.delete(never_sent, "t1")
    assert queued_at(never_sent) is None


def test_requeue_needs_an_expired_lease(store: JobStore) -> None:
    job_id = make_job(store)
    store.begin_attempt(job_id, "w", lease_s=30)
    with pytest.raises(TransitionRefused):
        store.requeue(job_id)
    store.redis.hset(store.job_key(job_id), "lease_until", "1")
    store.requeue(job_id)
    assert store.get(job_id).status == JobStatus.QUEUED


def test_tenants_see_only_their_own_jobs(store: JobStore) -> None:
    mine = make_job(store, tenant="alpha")
    assert store.get_for_tenant(mine, "alpha") is not None
    assert store.get_for_tenant(mine, "beta") is None
    assert mine not in {j.id for j in store.list_for_tenant("beta")[0]}


def test_cancel_flag_is_seen_by_the_worker(store: JobStore) -> None:
    job_id = make_job(store)
    assert not store.cancel_requested(job_id)
    store.request_cancel(job_id)
    assert store.cancel_requested(job_id)
