"""The works index on a real Redis: entries, the in-process matrix, loss, rebuild tokens, expiry."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import redis

from deploy.devstack import Stack
from shared.connections import redis_client
from shared.works_index import WorkEntry, WorkRef, WorksIndex


@pytest.fixture(scope="module")
def client(servers: Stack) -> redis.Redis:
    return redis_client(servers.settings())


def entry(ref: WorkRef, seed: int) -> WorkEntry:
    vector = np.random.default_rng(seed).normal(size=100).astype(np.float32)
    return WorkEntry(ref, vector / np.linalg.norm(vector), seed * 7919)


def test_each_process_sees_new_works_and_only_its_tenants(client: redis.Redis) -> None:
    tenant, other = f"t-{uuid.uuid4().hex[:8]}", f"o-{uuid.uuid4().hex[:8]}"
    api, worker = WorksIndex(client), WorksIndex(client)  # two processes' indexes
    assert not api.is_built(tenant)
    worker.mark_built(tenant)
    assert api.is_built(tenant) and api.similar(tenant, np.ones(100, np.float32) / 10, 0, 5) == []
    works = [entry(WorkRef("upload", f"{i:032x}"), i) for i in range(5)]
    for work in works[:3]:
        worker.add(tenant, work)
    worker.add(other, entry(WorkRef("upload", "e" * 32), 99))
    assert [w.ref for w in api.similar(tenant, works[1].embedding, works[1].phash, 1)] == [works[1].ref]
    for work in works[3:]:  # read incrementally by the process that already holds the first three
        worker.add(tenant, work)
    found = api.similar(tenant, works[4].embedding, works[4].phash, 10, exclude=works[4].ref)
    assert {w.ref for w in found} == {w.ref for w in works[:4]}
    assert found[0].score <= 1.0 and api.count(tenant) == 5 and api.count(other) == 1


def test_a_corrupt_entry_is_reported_and_a_partial_loss_means_not_built(client: redis.Redis) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    index = WorksIndex(client)
    index.mark_built(tenant)
    good, bad = WorkRef("upload", "a" * 32), WorkRef("upload", "b" * 32)
    index.add(tenant, entry(good, 1))
    client.hset(f"af:works:{tenant}", str(bad), "not an entry")
    client.rpush(f"af:works:{tenant}:log", str(bad))
    assert index.corrupt(tenant) == {str(bad)} and index.get(tenant, bad) is None
    assert [w.ref for w in index.similar(tenant, entry(good, 1).embedding, 7919, 5)] == [good]
    client.delete(f"af:works:{tenant}")  # the entries lost, the log left
    assert not index.is_built(tenant)


def test_an_expired_jobs_results_leave_the_index_and_every_cache(client: redis.Redis) -> None:
    tenant, job = f"t-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    index = WorksIndex(client)
    index.mark_built(tenant)
    kept = entry(WorkRef("upload", "c" * 32), 3)
    expiring = [entry(WorkRef("result", job, i), 10 + i) for i in range(2)]
    for work in (kept, *expiring):
        index.add(tenant, work)
    assert len(index.similar(tenant, kept.embedding, kept.phash, 10)) == 3  # cached here now
    assert WorksIndex(client).forget_job(tenant, job) == 2
    assert [w.ref for w in index.similar(tenant, kept.embedding, kept.phash, 10)] == [kept.ref]
    assert index.is_built(tenant) and WorksIndex(client).forget_job(tenant, job) == 0
