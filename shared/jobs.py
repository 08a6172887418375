"""Job records in Redis: states, the one table of allowed transitions, leases, progress.

Keys (all under ``af:``):
  job:{id}            hash, the job record
  tenant:{t}:jobs     sorted set of the tenant's job ids by creation time (ms)
  jobs:running        set of running job ids (the reaper's work list)
  idem:{t}:{key}      "{job_id} {body_sha256}" for an Idempotency-Key, 24 h
  job:{id}:events     stream of the job's events (state transitions, progress, artifacts), written
                      here together with the record, so API and workers both produce them;
                      ``shared.job_events`` reads it

A finished job's record and its event stream expire ``finished_ttl_s`` after it finished; the
housekeeping task (``workers.housekeeping``) prunes what still points at it, and expires results
past their tenant's retention (``expire_results`` here marks the record).
"""

from __future__ import annotations

import enum
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, cast

import redis

PREFIX = "af:"
RUNNING_SET = PREFIX + "jobs:running"
# Queued jobs by the time they were (re)queued or last found with a message in the broker: where
# the lost-message sweep looks (workers.maintenance.resend_lost_jobs).
QUEUED_INDEX = PREFIX + "jobs:queued"
IDEMPOTENCY_TTL_S = 24 * 3600
# Event streams are capped (approximately, ``MAXLEN ~``); progress events are thinned below so
# that even a training run of hours keeps its first events.
EVENTS_MAXLEN = 5000
# A progress update becomes an event when its status or stage differs from the last event's, or
# when at least PROGRESS_EVENT_MIN_S passed and either the fraction moved by PROGRESS_EVENT_MIN_STEP
# or PROGRESS_EVENT_MAX_S passed (so a message or ETA never goes stale for long).
PROGRESS_EVENT_MIN_S = 0.5
PROGRESS_EVENT_MIN_STEP = 0.001
PROGRESS_EVENT_MAX_S = 10.0


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})

# The only transitions a job may make. RUNNING -> RUNNING is a new attempt taking over a
# job whose previous attempt lost its lease (its worker died); RUNNING -> QUEUED is the
# reaper handing such a job back to the queue. Terminal states never change.
ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELED}),
    JobStatus.RUNNING: frozenset(
        {JobStatus.RUNNING, JobStatus.QUEUED, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED}
    ),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELED: frozenset(),
}


def allowed_sources(target: JobStatus) -> list[JobStatus]:
    return [s for s, targets in ALLOWED_TRANSITIONS.items() if target in targets]


class TransitionRefused(Exception):
    def __init__(self, job_id: str, current: str | None, target: JobStatus, reason: str = "illegal"):
        super().__init__(f"job {job_id}: {current} -> {target.value} refused ({reason})")
        self.job_id, self.current, self.target, self.reason = job_id, current, target, reason


# Atomic compare-and-set of the status, and the transition's event on the job's stream. The
# allowed sources come from ALLOWED_TRANSITIONS, so the table above stays the single place where
# the rules live.
# KEYS: job hash, running set, events stream, queued index.  ARGV: target, csv of allowed sources, now,
# require expired lease (0/1), increment attempts (0/1), ttl for terminal states, job id,
# events maxlen, field/value...
_TRANSITION_LUA = """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {'missing', ''} end
local ok = false
for s in string.gmatch(ARGV[2], '[^,]+') do if s == cur then ok = true end end
if not ok then return {'illegal', cur} end
if ARGV[4] == '1' and cur == 'running' then
  local lease = tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0') or 0
  if lease > tonumber(ARGV[3]) then return {'leased', cur} end
end
local fields = {'status', ARGV[1]}
for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
if ARGV[5] == '1' then redis.call('HINCRBY', KEYS[1], 'attempts', 1) end
if ARGV[1] == 'running' then
  redis.call('SADD', KEYS[2], ARGV[7])
else
  redis.call('SREM', KEYS[2], ARGV[7])
end
if ARGV[1] == 'queued' then
  redis.call('ZADD', KEYS[4], ARGV[3], ARGV[7])
else
  redis.call('ZREM', KEYS[4], ARGV[7])
end
local progress = redis.call('HGET', KEYS[1], 'progress') or ''
local failure = redis.call('HGET', KEYS[1], 'error') or ''
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', 'type', 'status', 'status', ARGV[1], 'previous', cur,
           'progress', progress, 'error', failure, 'at', ARGV[3])
if ARGV[1] == 'succeeded' or ARGV[1] == 'failed' or ARGV[1] == 'canceled' then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6]))
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[6]))
end
return {'ok', cur}
"""

# Write the progress, and an event for it while the job is live, unless it would only crowd the
# stream (see PROGRESS_EVENT_*: compared with the stream's last event).
# KEYS: job hash, events stream.  ARGV: progress JSON, now, stage, fraction ('' for none), maxlen,
# min seconds, min fraction step, max seconds.
_PROGRESS_LUA = """
redis.call('HSET', KEYS[1], 'progress', ARGV[1])
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' and status ~= 'running' then return 0 end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if #last == 1 then
  local entry = {}
  local flat = last[1][2]
  for i = 1, #flat, 2 do entry[flat[i]] = flat[i + 1] end
  local ok, previous = pcall(cjson.decode, entry['progress'] or '')
  if ok and type(previous) == 'table' and entry['status'] == status and previous['stage'] == ARGV[3] then
    local age = tonumber(ARGV[2]) - (tonumber(entry['at']) or 0)
    local before = type(previous['fraction']) == 'number' and previous['fraction'] or 0
    local step = math.abs((tonumber(ARGV[4]) or 0) - before)
    if age < tonumber(ARGV[6]) or (step < tonumber(ARGV[7]) and age < tonumber(ARGV[8])) then return 0 end
  end
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'type', 'progress', 'status', status,
           'progress', ARGV[1], 'at', ARGV[2])
return 1
"""

# Never recreate an expired record: mark it only while it exists (its TTL stays as it was).
# KEYS: job hash.  ARGV: results_expired_at.
_EXPIRE_RESULTS_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'results', '[]', 'artifacts', '[]', 'results_expired_at', ARGV[1])
return 1
"""

_JSON_FIELDS = ("params", "inputs", "progress", "error", "results", "artifacts", "webhook")


@dataclass(frozen=True)
class Job:
    id: str
    tenant: str
    kind: str
    status: JobStatus
    params: dict[str, Any]
    inputs: dict[str, Any]
    priority: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int
    progress: dict[str, Any]
    error: dict[str, Any] | None
    results: list[dict[str, Any]]
    cancel_requested: bool
    lease_until: float
    key_id: str
    worker: str
    artifacts: list[dict[str, Any]]
    # When housekeeping deleted the stored results (the tenant's retention ran out).
    results_expired_at: float | None = None
    # The X-Request-ID of the submission, so the worker's log lines for the job carry it too.
    request_id: str = ""
    # Where to POST the outcome, and the deliveries so far ({"state", "deliveries"}; shared.webhooks).
    webhook_url: str = ""
    webhook: dict[str, Any] | None = None

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> Job:
        data: dict[str, Any] = dict(raw)
        for name in _JSON_FIELDS:
            data[name] = json.loads(data[name]) if data.get(name) else None

        def opt_float(name: str) -> float | None:
            return float(data[name]) if data.get(name) else None

        return cls(
            id=data["id"],
            tenant=data["tenant"],
            kind=data["kind"],
            status=JobStatus(data["status"]),
            params=data["params"] or {},
            inputs=data["inputs"] or {},
            priority=int(data.get("priority") or 0),
            created_at=float(data["created_at"]),
            started_at=opt_float("started_at"),
            finished_at=opt_float("finished_at"),
            attempts=int(data.get("attempts") or 0),
            progress=data["progress"] or {"fraction": 0.0, "stage": "queued", "message": ""},
            error=data["error"],
            results=data["results"] or [],
            cancel_requested=data.get("cancel_requested") == "1",
            lease_until=float(data.get("lease_until") or 0),
            key_id=data.get("key_id", ""),
            worker=data.get("worker", ""),
            artifacts=data["artifacts"] or [],
            results_expired_at=opt_float("results_expired_at"),
            request_id=data.get("request_id", ""),
            webhook_url=data.get("webhook_url", ""),
            webhook=data["webhook"],
        )


def new_job_id() -> str:
    return uuid.uuid4().hex


# What a new job writes: its record, its place in its tenant's index and in the queued index (where
# the lost-message sweep looks), and its first event. A Lua function, so that ``JobStore.create``
# and a submission's admission (``shared.admission``) write a new job the one same way.
NEW_JOB_LUA = """
local function flat(fields)
  local out = {}
  for name, value in pairs(fields) do out[#out + 1] = name; out[#out + 1] = value end
  return out
end
local function write_new_job(job, tenant_index, queued, events, id, created_ms, created_s, maxlen, record, event)
  redis.call('HSET', job, unpack(flat(cjson.decode(record))))
  redis.call('ZADD', tenant_index, created_ms, id)
  redis.call('ZADD', queued, created_s, id)
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', unpack(flat(cjson.decode(event))))
end
"""


@dataclass(frozen=True)
class NewJob:
    """A job about to be written: its record and first event, and the script arguments that
    ``write_new_job`` takes (``keys()``, then ``args()``: id, created ms and s, maxlen, and the
    record and the event as JSON objects of strings: two arguments, not one per field, since
    packing each argument is most of what sending a script costs the client)."""

    record: dict[str, str]
    event: dict[str, str]

    @classmethod
    def of(cls, *, job_id: str, tenant: str, key_id: str, kind: str, params: dict[str, Any],
           inputs: dict[str, Any], priority: int = 0, request_id: str = "", webhook_url: str | None = None) -> NewJob:
        now = time.time()
        record = {
            "id": job_id,
            "tenant": tenant,
            "key_id": key_id,
            "kind": kind,
            "status": JobStatus.QUEUED.value,
            "params": json.dumps(params),
            "inputs": json.dumps(inputs),
            "priority": str(priority),
            "created_at": repr(now),
            "attempts": "0",
            "progress": json.dumps({"fraction": 0.0, "stage": "queued", "message": ""}),
            "request_id": request_id,
        }
        if webhook_url:
            record["webhook_url"] = webhook_url
        event = {"type": "status", "status": JobStatus.QUEUED.value, "previous": "", "progress": record["progress"],
                 "error": "", "at": record["created_at"]}
        return cls(record, event)

    @property
    def id(self) -> str:
        return self.record["id"]

    def keys(self) -> list[str]:
        return [JobStore.job_key(self.id), JobStore.tenant_index(self.record["tenant"]), QUEUED_INDEX,
                JobStore.events_key(self.id)]

    def args(self) -> list[str]:
        created = float(self.record["created_at"])
        return [self.id, str(int(created * 1000)), self.record["created_at"], str(EVENTS_MAXLEN),
                json.dumps(self.record, ensure_ascii=False), json.dumps(self.event, ensure_ascii=False)]


# KEYS: NewJob.keys().  ARGV: NewJob.args().
_CREATE_LUA = NEW_JOB_LUA + """
write_new_job(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
"""


class JobStore:
    def __init__(self, client: redis.Redis, finished_ttl_s: int = 7 * 24 * 3600):
        self.redis = client
        self.finished_ttl_s = finished_ttl_s
        self._transition = client.register_script(_TRANSITION_LUA)
        self._progress = client.register_script(_PROGRESS_LUA)
        self._expire_results = client.register_script(_EXPIRE_RESULTS_LUA)
        self._create = client.register_script(_CREATE_LUA)

    @staticmethod
    def job_key(job_id: str) -> str:
        return f"{PREFIX}job:{job_id}"

    @staticmethod
    def events_key(job_id: str) -> str:
        return f"{PREFIX}job:{job_id}:events"

    @staticmethod
    def tenant_index(tenant: str) -> str:
        return f"{PREFIX}tenant:{tenant}:jobs"

    # -- creation --------------------------------------------------------------

    @staticmethod
    def idempotency_key(tenant: str, key: str) -> str:
        """Where an Idempotency-Key's "{job_id} {body_sha256}" is kept (``shared.admission`` sets it)."""
        return f"{PREFIX}idem:{tenant}:{key}"

    def release_idempotency_key(self, tenant: str, key: str) -> None:
        self.redis.delete(self.idempotency_key(tenant, key))

    def create(
        self,
        *,
        job_id: str,
        tenant: str,
        key_id: str,
        kind: str,
        params: dict[str, Any],
        inputs: dict[str, Any],
        priority: int = 0,
        request_id: str = "",
        webhook_url: str | None = None,
    ) -> Job:
        new = NewJob.of(job_id=job_id, tenant=tenant, key_id=key_id, kind=kind, params=params, inputs=inputs,
                        priority=priority, request_id=request_id, webhook_url=webhook_url)
        # One script: under maxmemory its first write is refused, so nothing is half-created.
        self._create(keys=new.keys(), args=new.args())
        return Job.from_hash(new.record)

    def delete(self, job_id: str, tenant: str) -> None:
        """Remove a job that never reached the queue (its enqueue failed)."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.job_key(job_id), self.events_key(job_id))
            pipe.zrem(self.tenant_index(tenant), job_id)
            pipe.srem(RUNNING_SET, job_id)
            pipe.zrem(QUEUED_INDEX, job_id)
            pipe.execute()

    # -- reading ---------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        raw = cast(dict[str, str], self.redis.hgetall(self.job_key(job_id)))
        return Job.from_hash(raw) if raw else None

    def get_for_tenant(self, job_id: str, tenant: str) -> Job | None:
        """The job if it belongs to ``tenant``; None for unknown and foreign jobs alike."""
        job = self.get(job_id)
        return job if job is not None and job.tenant == tenant else None

    def list_for_tenant(
        self,
        tenant: str,
        *,
        status: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        before_ms: int | None = None,
    ) -> tuple[list[Job], int | None]:
        """Newest first. Returns the page and the cursor (creation ms) for the next page."""
        index = self.tenant_index(tenant)
        found: list[Job] = []
        upper: str = f"({before_ms}" if before_ms is not None else "+inf"
        page = max(limit * 2, 50)
        while len(found) < limit:
            rows = cast(list[tuple[str, float]],
                        self.redis.zrevrangebyscore(index, upper, "-inf", start=0, num=page, withscores=True))
            if not rows:
                return found, None
            with self.redis.pipeline(transaction=False) as pipe:
                for job_id, _ in rows:
                    pipe.hgetall(self.job_key(job_id))
                records = pipe.execute()
            for (job_id, score), raw in zip(rows, records, strict=True):
                upper = f"({int(score)}"
                if not raw:  # expired record: drop the dangling index entry
                    self.redis.zrem(index, job_id)
                    continue
                job = Job.from_hash(raw)
                if (status and job.status != status) or (kind and job.kind != kind):
                    continue
                found.append(job)
                if len(found) == limit:
                    return found, int(score)
        return found, None

    def running_job_ids(self) -> list[str]:
        return sorted(cast(set[str], self.redis.smembers(RUNNING_SET)))

    def queued_unchecked_since(self, cutoff: float, limit: int) -> list[str]:
        """Up to ``limit`` ids of queued jobs whose clock in the queued index (queued, requeued, or
        last checked by the lost-message sweep) reads before ``cutoff``, oldest first."""
        return cast(list[str], self.redis.zrangebyscore(QUEUED_INDEX, "-inf", cutoff, start=0, num=limit))

    def restart_queued_clock(self, job_ids: list[str]) -> None:
        """Set the queued jobs' clocks in the queued index to now (never adds a job that left it)."""
        if job_ids:
            now = time.time()
            self.redis.zadd(QUEUED_INDEX, dict.fromkeys(job_ids, now), xx=True)

    def forget_queued(self, job_id: str) -> None:
        """Drop an index entry that no longer stands for a queued job (its record is gone)."""
        self.redis.zrem(QUEUED_INDEX, job_id)

    # -- transitions -------------------------------------------------------------

    def transition(
        self,
        job_id: str,
        target: JobStatus,
        *,
        fields: dict[str, Any] | None = None,
        require_expired_lease: bool = False,
        count_attempt: bool = False,
    ) -> JobStatus:
        """Move the job to ``target`` if the table allows it. Returns the previous status."""
        sources = ",".join(s.value for s in allowed_sources(target))
        flat: list[str] = []
        for name, value in (fields or {}).items():
            flat += [name, value if isinstance(value, str) else json.dumps(value)]
        outcome, current = self._transition(
            keys=[self.job_key(job_id), RUNNING_SET, self.events_key(job_id), QUEUED_INDEX],
            args=[
                target.value,
                sources,
                repr(time.time()),
                "1" if require_expired_lease else "0",
                "1" if count_attempt else "0",
                str(self.finished_ttl_s),
                job_id,
                str(EVENTS_MAXLEN),
                *flat,
            ],
        )
        if outcome != "ok":
            raise TransitionRefused(job_id, current or None, target, outcome)
        return JobStatus(current)

    def begin_attempt(self, job_id: str, worker: str, lease_s: float) -> Job:
        """queued -> running, or take over a running job whose lease has expired."""
        now = time.time()
        self.transition(
            job_id,
            JobStatus.RUNNING,
            fields={
                "started_at": repr(now),
                "lease_until": repr(now + lease_s),
                "worker": worker,
                "progress": {"fraction": 0.0, "stage": "starting", "message": ""},
            },
            require_expired_lease=True,
            count_attempt=True,
        )
        job = self.get(job_id)
        assert job is not None
        return job

    def finish(
        self,
        job_id: str,
        target: JobStatus,
        *,
        error: dict[str, Any] | None = None,
        results: list[dict[str, Any]] | None = None,
        message: str = "",
    ) -> None:
        assert target.is_terminal
        fields: dict[str, Any] = {
            "finished_at": repr(time.time()),
            "lease_until": "0",
            "progress": {
                "fraction": 1.0 if target == JobStatus.SUCCEEDED else None,
                "stage": target.value,
                "message": message,
            },
        }
        if error is not None:
            fields["error"] = error
        if results is not None:
            fields["results"] = results
        self.transition(job_id, target, fields=fields)

    def requeue(self, job_id: str) -> None:
        """Reaper: running -> queued for a job whose lease expired."""
        self.transition(
            job_id,
            JobStatus.QUEUED,
            fields={"lease_until": "0", "progress": {"fraction": 0.0, "stage": "requeued", "message": ""}},
            require_expired_lease=True,
        )

    # -- while running -----------------------------------------------------------

    def heartbeat(self, job_ids: str | list[str], lease_s: float) -> None:
        """Extend the lease of one job, or of several in one round trip."""
        until = repr(time.time() + lease_s)
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in [job_ids] if isinstance(job_ids, str) else job_ids:
                pipe.hset(self.job_key(job_id), "lease_until", until)
            pipe.execute()

    def set_progress(self, job_id: str, fraction: float | None, stage: str, message: str = "") -> None:
        progress = {"fraction": None if fraction is None else round(float(fraction), 4), "stage": stage,
                    "message": message}
        self._progress(keys=[self.job_key(job_id), self.events_key(job_id)],
                       args=[json.dumps(progress), repr(time.time()), stage,
                             "" if progress["fraction"] is None else repr(progress["fraction"]), str(EVENTS_MAXLEN),
                             repr(PROGRESS_EVENT_MIN_S), repr(PROGRESS_EVENT_MIN_STEP), repr(PROGRESS_EVENT_MAX_S)])

    def record_artifact(self, job_id: str, artifact: dict[str, Any]) -> None:
        """List an artifact (a sample grid, say) on the job; one entry per name.
        Only the attempt that holds the job writes this, so read-modify-write is safe."""
        job = self.get(job_id)
        if job is None:
            return
        kept = [a for a in job.artifacts if a.get("name") != artifact["name"]]
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.job_key(job_id), "artifacts", json.dumps([*kept, artifact]))
            if not job.status.is_terminal:
                pipe.xadd(self.events_key(job_id), {
                    "type": "artifact", "status": job.status.value, "progress": json.dumps(job.progress),
                    "artifact": json.dumps({"name": artifact["name"],
                                            "content_type": artifact.get("content_type") or ""}),
                    "at": repr(time.time())}, maxlen=EVENTS_MAXLEN, approximate=True)
            pipe.execute()

    def read_events(self, job_id: str, after: str = "0-0", count: int = 200,
                    block_ms: int | None = None) -> list[tuple[str, dict[str, str]]]:
        """Entries of the job's event stream after entry id ``after``, oldest first: (id, fields).
        With ``block_ms``, waits up to that long for one when there are none yet."""
        reply = self.redis.xread({self.events_key(job_id): after}, count=count, block=block_ms)
        return [(entry_id, fields) for _, entries in cast(list[Any], reply or []) for entry_id, fields in entries]

    def expire_results(self, job_id: str, at: float) -> bool:
        """Record that the job's stored results (and artifacts) were deleted: it then lists none.
        False when the record itself has expired already."""
        return bool(self._expire_results(keys=[self.job_key(job_id)], args=[repr(at)]))

    def request_cancel(self, job_id: str) -> None:
        self.redis.hset(self.job_key(job_id), "cancel_requested", "1")

    def cancel_requested(self, job_id: str) -> bool:
        return self.redis.hget(self.job_key(job_id), "cancel_requested") == "1"
