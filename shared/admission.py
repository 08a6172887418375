"""A submission's admission: every promise of ``POST /v1/jobs`` kept in one Redis round trip.

One Lua script, atomically and in this order:

1. counts the request in the tenant's rate-limit windows (fixed windows: the very counters the API's
   rate limiter keeps for the tenant's other requests) and stops at the first window over its limit;
2. looks up the Idempotency-Key: a key used before answers with the earlier job's id and body hash
   (the caller replays that job, or answers 409 for a different body);
3. claims a slot in the tenant's active-jobs pool (``shared.quotas``' ``claim_slot``);
4. stores the Idempotency-Key and writes the new job (``shared.jobs``' ``write_new_job``: the record,
   the tenant's and the queued index, the first event).

A refusal writes nothing but the rate-limit counts, which count refused requests too. Under
maxmemory the first write (a window's count) is refused, and with it the whole admission. What is
left for the caller is the broker message (``shared.queue.enqueue_job``); should that fail, the
caller removes the job, its slot and its key again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from shared.jobs import IDEMPOTENCY_TTL_S, NEW_JOB_LUA, JobStore, NewJob
from shared.quotas import CLAIM_SLOT_LUA, PENDING_GRACE_S, ActiveJobQuota, pool_of

# A Lua function: count one request in each window (KEYS[1..n]; ARGV[2i-1], ARGV[2i]: the i-th
# window's limit and length in seconds), stopping at the first over its limit: -> that window's
# number and its seconds left, or 0, 0.
HIT_WINDOWS_LUA = """
local function hit_windows(n)
  for i = 1, n do
    local count = redis.call('INCRBY', KEYS[i], 1)
    if count == 1 then redis.call('EXPIRE', KEYS[i], ARGV[2 * i]) end
    if count > tonumber(ARGV[2 * i - 1]) then return i, redis.call('TTL', KEYS[i]) end
  end
  return 0, 0
end
"""

# KEYS: n window keys, then the idempotency key, the active set, and NewJob.keys().
# ARGV: the windows' (limit, seconds) pairs, then the idempotency value ("" for no key) and its TTL,
# the pool's cap (0: none), now (ms), the grace (ms), the job key prefix, then NewJob.args().
# The window count n is the last ARGV. Returns {'rate_limited', window, seconds left},
# {'replay', stored value}, {'quota_exceeded', active} or {'admitted'}.
_ADMIT_LUA = HIT_WINDOWS_LUA + CLAIM_SLOT_LUA + NEW_JOB_LUA + """
local n = tonumber(ARGV[#ARGV])
local window, left = hit_windows(n)
if window > 0 then return {'rate_limited', window, left} end
local k, a = 2 * n, n
local idem_key, idem_value, idem_ttl = KEYS[a + 1], ARGV[k + 1], ARGV[k + 2]
if idem_value ~= '' then
  local earlier = redis.call('GET', idem_key)
  if earlier then return {'replay', earlier} end
end
local cap = tonumber(ARGV[k + 3])
if cap > 0 then
  local granted, active = claim_slot(KEYS[a + 2], cap, tonumber(ARGV[k + 4]), tonumber(ARGV[k + 5]),
                                     ARGV[k + 7], ARGV[k + 6])
  if granted == 0 then return {'quota_exceeded', active} end
end
if idem_value ~= '' then redis.call('SET', idem_key, idem_value, 'EX', idem_ttl) end
local j = k + 7
write_new_job(KEYS[a + 3], KEYS[a + 4], KEYS[a + 5], KEYS[a + 6], ARGV[j], ARGV[j + 1], ARGV[j + 2], ARGV[j + 3],
              ARGV[j + 4], ARGV[j + 5])
return {'admitted'}
"""

# KEYS: n window keys.  ARGV: their (limit, seconds) pairs, then n. Returns {window, seconds left}.
_COUNT_LUA = HIT_WINDOWS_LUA + """
local window, left = hit_windows(tonumber(ARGV[#ARGV]))
return {window, left}
"""


@dataclass(frozen=True)
class Window:
    """One fixed rate-limit window: its counter's key, its limit and its length (seconds)."""

    key: str
    limit: int
    seconds: int


@dataclass(frozen=True)
class Admission:
    """The script's answer. ``outcome``: admitted, rate_limited (``window``: the index in the
    windows given, ``retry_after_s``), replay (``earlier_job_id``, ``earlier_body_sha256``) or
    quota_exceeded (``pool``, ``active``, ``limit``)."""

    outcome: str
    window: int = -1
    retry_after_s: int = 0
    earlier_job_id: str = ""
    earlier_body_sha256: str = ""
    pool: str = ""
    active: int = 0
    limit: int = 0


class Admissions:
    def __init__(self, client: redis.Redis, quota: ActiveJobQuota):
        self.quota = quota
        self._admit = client.register_script(_ADMIT_LUA)
        self._count = client.register_script(_COUNT_LUA)

    def admit(self, job: NewJob, kind: str, windows: list[Window], idempotency_key: str | None = None,
              body_sha256: str = "") -> Admission:
        """Admit ``job`` (of ``kind``) or say why not; see the module's docstring."""
        tenant, pool = job.record["tenant"], pool_of(kind)
        cap = max(self.quota.limits.get(pool, 0), 0)
        idem_key = JobStore.idempotency_key(tenant, idempotency_key) if idempotency_key is not None else ""
        idem_value = f"{job.id} {body_sha256}" if idempotency_key is not None else ""
        now_ms = int(float(job.record["created_at"]) * 1000)
        keys = [*(w.key for w in windows), idem_key, self.quota.key(tenant, pool), *job.keys()]
        args: list[Any] = _window_args(windows)
        args += [idem_value, IDEMPOTENCY_TTL_S, cap, now_ms, PENDING_GRACE_S * 1000, JobStore.job_key(""),
                 *job.args(), len(windows)]
        answer = self._admit(keys=keys, args=args)
        outcome = _text(answer[0])
        if outcome == "rate_limited":
            return Admission(outcome, window=int(answer[1]) - 1, retry_after_s=max(1, int(answer[2])))
        if outcome == "replay":
            earlier_id, _, earlier_hash = _text(answer[1]).partition(" ")
            return Admission(outcome, earlier_job_id=earlier_id, earlier_body_sha256=earlier_hash)
        if outcome == "quota_exceeded":
            return Admission(outcome, pool=pool, active=int(answer[1]), limit=cap)
        return Admission(outcome)

    def count(self, windows: list[Window]) -> Admission:
        """Count a submission that was refused before admission (bad body, say) in the windows:
        rate_limited when one is over its limit, else admitted (meaning: not limited)."""
        if not windows:
            return Admission("admitted")
        window, left = self._count(keys=[w.key for w in windows], args=[*_window_args(windows), len(windows)])
        if int(window) > 0:
            return Admission("rate_limited", window=int(window) - 1, retry_after_s=max(1, int(left)))
        return Admission("admitted")


def _window_args(windows: list[Window]) -> list[Any]:
    """``hit_windows``' ARGV: each window's limit and length."""
    return [part for w in windows for part in (w.limit, w.seconds)]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
