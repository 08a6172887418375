"""The lease reaper on a real Redis: expired leases are requeued or, out of attempts, failed."""

from __future__ import annotations

import time

import pytest

from deploy.devstack import Stack
from shared.jobs import JobStatus, new_job_id
from workers.maintenance import reap_expired_leases
from workers.runtime import Runtime


@pytest.fixture(scope="module")
def rt(servers: Stack) -> Runtime:
    return Runtime.from_settings(servers.settings())


def running_job(rt: Runtime, attempts: int, lease_left_s: float) -> str:
    job_id = new_job_id()
    rt.jobs.create(job_id=job_id, tenant="t", key_id="k", kind="style_transfer", params={}, inputs={}, priority=3)
    for _ in range(attempts):
        rt.jobs.redis.hset(rt.jobs.job_key(job_id), "lease_until", "0")
        rt.jobs.begin_attempt(job_id, "w", lease_s=60)
    rt.jobs.redis.hset(rt.jobs.job_key(job_id), "lease_until", repr(time.time() + lease_left_s))
    return job_id


def test_expired_lease_is_requeued_and_resent(rt: Runtime) -> None:
    sent = []
    alive = running_job(rt, attempts=1, lease_left_s=30)
    dead = running_job(rt, attempts=1, lease_left_s=-1)
    acted = reap_expired_leases(rt, lambda *args: sent.append(args))
    assert dead in acted and alive not in acted
    assert (dead, "style_transfer", 3) in sent
    assert rt.jobs.get(dead).status == JobStatus.QUEUED
    assert rt.jobs.get(alive).status == JobStatus.RUNNING


def test_job_out_of_attempts_fails_instead_of_looping(rt: Runtime) -> None:
    sent = []
    job_id = running_job(rt, attempts=rt.settings.max_attempts, lease_left_s=-1)
    reap_expired_leases(rt, lambda *args: sent.append(args))
    job = rt.jobs.get(job_id)
    assert job.status == JobStatus.FAILED and job.error["code"] == "worker_lost"
    assert not [s for s in sent if s[0] == job_id]
