"""Caps on a tenant's active (queued or running) jobs, exact under concurrent submissions.

Each tenant has one sorted set per pool (``af:tenant:{t}:active:{pool}``: job id -> claim time,
ms); the pools are training jobs and all other jobs, each with its own cap. A submission claims a
slot with one Lua script that, atomically, drops the members that are no longer active (their
record says succeeded/failed/canceled, or it is gone), counts the rest and adds the new job only
if that count is under the cap. Nothing has to be decremented when a job finishes, so no path
that finishes a job (worker, reaper, cancel, expiry) can leak or double-free a slot. A member
whose record does not exist yet is the submission in flight between claim and create: it counts
for ``PENDING_GRACE_S``, after which it can only be a submission that died half way.

The script reads the job records by name (``af:job:{id}``), beside its declared key: fine on one
Redis, which is what the service runs on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from shared.contract import QUEUE_TRAINING, get_kind
from shared.jobs import PREFIX, JobStore
from shared.settings import Settings

POOL_JOBS = "jobs"
POOL_TRAINING = "training"
POOLS = (POOL_JOBS, POOL_TRAINING)
PENDING_GRACE_S = 60

# A Lua function, shared by the claim below and a submission's admission (``shared.admission``):
# claim_slot(active set, cap, now (ms), grace (ms), job id, job key prefix) -> granted (0/1), active
# jobs counted (with the new one when granted).
CLAIM_SLOT_LUA = """
local function claim_slot(active_set, cap, now, grace, job_id, job_prefix)
  local members = redis.call('ZRANGE', active_set, 0, -1, 'WITHSCORES')
  local active = 0
  for i = 1, #members, 2 do
    local id, claimed = members[i], tonumber(members[i + 1])
    local status = redis.call('HGET', job_prefix .. id, 'status')
    local live
    if status then
      live = status == 'queued' or status == 'running'
    else
      live = claimed > now - grace
    end
    if live then active = active + 1 else redis.call('ZREM', active_set, id) end
  end
  if active >= cap then return 0, active end
  redis.call('ZADD', active_set, now, job_id)
  return 1, active + 1
end
"""
# KEYS: the tenant's active set.  ARGV: cap, now (ms), grace (ms), job id, job key prefix.
_CLAIM_LUA = CLAIM_SLOT_LUA + """
local granted, active = claim_slot(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5])
return {granted, active}
"""


@dataclass(frozen=True)
class QuotaDecision:
    granted: bool
    pool: str
    active: int
    limit: int


def pool_of(kind: str) -> str:
    return POOL_TRAINING if get_kind(kind).queue == QUEUE_TRAINING else POOL_JOBS


class ActiveJobQuota:
    def __init__(self, client: redis.Redis, limits: dict[str, int]):
        self.redis = client
        self.limits = limits
        self._claim = client.register_script(_CLAIM_LUA)

    @classmethod
    def from_settings(cls, client: redis.Redis, settings: Settings) -> ActiveJobQuota:
        return cls(client, {POOL_JOBS: settings.max_active_jobs_per_tenant,
                            POOL_TRAINING: settings.max_active_training_jobs_per_tenant})

    @staticmethod
    def key(tenant: str, pool: str) -> str:
        return f"{PREFIX}tenant:{tenant}:active:{pool}"

    def claim(self, tenant: str, kind: str, job_id: str) -> QuotaDecision:
        """Take a slot for ``job_id`` (before its record is created), or say why not."""
        pool = pool_of(kind)
        limit = self.limits.get(pool, 0)
        if limit <= 0:
            return QuotaDecision(True, pool, 0, 0)
        granted, active = self._claim(
            keys=[self.key(tenant, pool)],
            args=[limit, int(time.time() * 1000), PENDING_GRACE_S * 1000, job_id, JobStore.job_key("")])
        return QuotaDecision(bool(granted), pool, int(active), limit)

    def release(self, tenant: str, job_id: str) -> None:
        """Give back the slot of a job that was never created or enqueued."""
        with self.redis.pipeline(transaction=False) as pipe:
            for pool in POOLS:
                pipe.zrem(self.key(tenant, pool), job_id)
            pipe.execute()
