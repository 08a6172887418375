"""Housekeeping run by beat: keys that outlive their job records, and results past retention.

A finished job's record expires by TTL (``shared.jobs``); ``prune_expired_job_keys`` then
removes what still points at it: its tenant index entry, a stray running-set entry, its
Idempotency-Key and its watermark allocations.

Results expire per tenant. A job that stored results is entered in its tenant's ledger
(``af:tenant:{t}:results``, job ids scored by finish time; the tenants with a ledger are in
``af:results:tenants``). ``expire_results`` deletes every version of every object under
``{tenant}/{job_id}/`` of jobs older than the tenant's retention (``shared.tenants``), marks the
job record if it still exists, and drops the entry. A ledger per tenant, not one for all: the
oldest entries of a tenant that keeps results forever would otherwise fill every bounded run.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import cast

import redis
from minio.deleteobjects import DeleteObject

from shared.jobs import IDEMPOTENCY_TTL_S, PREFIX, RUNNING_SET, JobStore
from shared.tenants import TenantPolicyStore
from shared.works_index import WorksIndex
from workers.runtime import Runtime

log = logging.getLogger(__name__)

LEDGER_TENANTS = f"{PREFIX}results:tenants"
# At most this many ledger entries are looked at per run; the next run goes on.
SWEEP_BATCH = 100
# A sweep holds a job's entry this long; two sweeps at once never work on the same job.
CLAIM_S = 600
# An Idempotency-Key is claimed a moment before its job's record is written: younger keys are left.
IDEMPOTENCY_GRACE_S = 60
# What S3 answers for a version that object lock still protects (SeaweedFS, MinIO, AWS).
LOCKED_CODES = frozenset({"AccessDenied", "ObjectLocked"})
CHUNK = 500

# Delete a key only if it still holds the value read before: a sweep's claim only while it is ours,
# an Idempotency-Key only while it names the expired job.
_DELETE_IF_UNCHANGED_LUA = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0")


class ResultsLedger:
    """Which jobs of a tenant stored results, and when they finished."""

    def __init__(self, client: redis.Redis):
        self.redis = client

    @staticmethod
    def key(tenant: str) -> str:
        return f"{PREFIX}tenant:{tenant}:results"

    def record(self, tenant: str, job_id: str, finished_at: float) -> None:
        # Tenants stay in LEDGER_TENANTS for good: there are few, and removing one safely
        # (only while its ledger is empty) would need a script for little gain.
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self.key(tenant), {job_id: finished_at})
            pipe.sadd(LEDGER_TENANTS, tenant)
            pipe.execute()

    def tenants(self) -> list[str]:
        return sorted(cast(set[str], self.redis.smembers(LEDGER_TENANTS)))

    def finished_before(self, tenant: str, cutoff: float, limit: int) -> list[str]:
        """Oldest first."""
        return cast(list[str], self.redis.zrangebyscore(self.key(tenant), "-inf", cutoff, start=0, num=limit))

    def contains(self, tenant: str, job_id: str) -> bool:
        return self.redis.zscore(self.key(tenant), job_id) is not None

    def claim(self, tenant: str, job_id: str, token: str) -> bool:
        return bool(self.redis.set(self._claim_key(tenant, job_id), token, nx=True, ex=CLAIM_S))

    def release(self, tenant: str, job_id: str, token: str) -> None:
        self.redis.eval(_DELETE_IF_UNCHANGED_LUA, 1, self._claim_key(tenant, job_id), token)

    def remove(self, tenant: str, job_id: str) -> None:
        self.redis.zrem(self.key(tenant), job_id)

    @staticmethod
    def _claim_key(tenant: str, job_id: str) -> str:
        return f"{PREFIX}results:claim:{tenant}:{job_id}"


# -- results past retention ------------------------------------------------------------------


def expire_results(rt: Runtime, now: float | None = None, batch: int = SWEEP_BATCH) -> list[str]:
    """Delete the results of jobs that finished longer ago than their tenant's retention.
    Looks at no more than ``batch`` ledger entries. Returns "tenant/job_id" of each job done.

    Objects that object lock still protects stay, and so does their entry: a warning is logged
    and the tenant is left until the next run (its newer results were stored later, with the
    same lock, so they are protected too). Any other failure to delete is logged the same way."""
    now = time.time() if now is None else now
    ledger, policies = ResultsLedger(rt.jobs.redis), TenantPolicyStore(rt.jobs.redis)
    token = uuid.uuid4().hex
    tenants = ledger.tenants()
    random.shuffle(tenants)  # no tenant's backlog comes first in every run
    left, done = batch, []
    for tenant in tenants:
        if left <= 0:
            break
        days = policies.get(tenant).effective_results_retention_days(rt.settings.results_expire_days)
        if days <= 0:
            continue  # kept forever
        due = ledger.finished_before(tenant, now - days * 86400, left)
        left -= len(due)
        for job_id in due:
            if not ledger.claim(tenant, job_id, token):
                continue  # another sweep is on it
            try:
                # Claimed after reading: another sweep may have finished it in between.
                if not ledger.contains(tenant, job_id) or _rerunning(rt.jobs, job_id):
                    continue
                try:
                    locked = delete_job_objects(rt, tenant, job_id)
                except Exception:
                    log.exception("could not delete the results of job %s (tenant %s); retrying on a later run",
                                  job_id, tenant)
                    break
                if locked:
                    log.warning("results of job %s (tenant %s) are past retention but %d object versions are "
                                "still under object lock (e.g. %s); retrying on a later run",
                                job_id, tenant, len(locked), locked[0])
                    break
                rt.jobs.expire_results(job_id, time.time())
                WorksIndex(rt.jobs.redis).forget_job(tenant, job_id)  # no similar work points at them
                ledger.remove(tenant, job_id)
                done.append(f"{tenant}/{job_id}")
            finally:
                ledger.release(tenant, job_id, token)
    if done:
        log.info("expired the results of %d jobs", len(done))
    return done


def _rerunning(jobs: JobStore, job_id: str) -> bool:
    """A job that stored results and then lost its worker runs again and writes them anew."""
    job = jobs.get(job_id)
    return job is not None and not job.status.is_terminal


def delete_job_objects(rt: Runtime, tenant: str, job_id: str) -> list[str]:
    """Delete every version of every object under ``{tenant}/{job_id}/`` in the results bucket
    (results, sidecars, provenance copies, artifacts): with object lock the bucket is versioned,
    and a plain delete would only hide them. Returns the keys object lock still protects; any
    other failure raises."""
    client, bucket = rt.objects.client, rt.settings.bucket_results
    listed = client.list_objects(bucket, prefix=f"{tenant}/{job_id}/", recursive=True, include_version=True)
    versions = [DeleteObject(o.object_name, o.version_id) for o in listed if o.object_name]
    if not versions:
        return []
    locked = []
    for error in client.remove_objects(bucket, versions):
        if error.code not in LOCKED_CODES:
            raise RuntimeError(f"could not delete {bucket}/{error.name}: {error.code} {error.message}")
        locked.append(str(error.name))
    return locked


# -- keys of expired job records ---------------------------------------------------------------


def prune_expired_job_keys(rt: Runtime, now: float | None = None,
                           idempotency_grace_s: float = IDEMPOTENCY_GRACE_S) -> dict[str, int]:
    """Remove keys that point at job records that no longer exist. Returns counts by kind."""
    now = time.time() if now is None else now
    r = rt.jobs.redis
    return {
        "index": _prune_tenant_indexes(r, now - rt.settings.finished_job_ttl_s),
        "running": _prune_running_set(r),
        "idempotency": _prune_idempotency_keys(r, idempotency_grace_s),
        "watermark": _prune_watermark_allocations(r),
    }


def _prune_tenant_indexes(r: redis.Redis, created_before: float) -> int:
    """A record expires ``finished_job_ttl_s`` after its job finished, so never sooner after the
    job was created: index entries newer than that are not looked at."""
    pruned = 0
    for index in r.scan_iter(match=JobStore.tenant_index("*"), count=CHUNK):
        offset = 0
        while True:
            job_ids = cast(list[str], r.zrangebyscore(index, "-inf", int(created_before * 1000),
                                                      start=offset, num=CHUNK))
            gone = _missing_jobs(r, job_ids)
            if gone:
                pruned += cast(int, r.zrem(index, *gone))
            if len(job_ids) < CHUNK:
                break
            offset += len(job_ids) - len(gone)
    return pruned


def _prune_running_set(r: redis.Redis) -> int:
    # The transition script adds a job here only while its record exists, and removes it when
    # the job leaves ``running``; an entry without a record is a leftover.
    gone = _missing_jobs(r, cast(set[str], r.smembers(RUNNING_SET)))
    return cast(int, r.srem(RUNNING_SET, *gone)) if gone else 0


def _prune_idempotency_keys(r: redis.Redis, grace_s: float) -> int:
    pruned = 0
    for names in _chunks(r.scan_iter(match=f"{PREFIX}idem:*", count=CHUNK)):
        with r.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.get(name)
                pipe.ttl(name)
            replies = pipe.execute()
        claims = {}
        for name, value, ttl in zip(names, replies[::2], replies[1::2], strict=True):
            age = IDEMPOTENCY_TTL_S - ttl
            if value and ttl >= 0 and age >= grace_s:
                claims[name] = str(value)
        gone = set(_missing_jobs(r, [value.partition(" ")[0] for value in claims.values()]))
        for name, value in claims.items():
            if value.partition(" ")[0] in gone:
                pruned += cast(int, r.eval(_DELETE_IF_UNCHANGED_LUA, 1, name, value))
    return pruned


def _prune_watermark_allocations(r: redis.Redis) -> int:
    # ``af:prov:wmjob:{job}:{index}`` (shared.provenance_index) lets a retried attempt reuse its
    # payload; once the record is gone no attempt can come. The payload itself stays taken.
    pruned = 0
    for names in _chunks(r.scan_iter(match=f"{PREFIX}prov:wmjob:*", count=CHUNK)):
        job_of = {name: name.split(":")[3] for name in names}
        gone = set(_missing_jobs(r, list(job_of.values())))
        doomed = [name for name, job_id in job_of.items() if job_id in gone]
        if doomed:
            pruned += cast(int, r.delete(*doomed))
    return pruned


def _missing_jobs(r: redis.Redis, job_ids: Iterable[str]) -> list[str]:
    job_ids = list(job_ids)
    with r.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.exists(JobStore.job_key(job_id))
        found = pipe.execute()
    return [job_id for job_id, exists in zip(job_ids, found, strict=True) if not exists]


def _chunks(names: Iterable[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    for name in names:
        chunk.append(name)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
