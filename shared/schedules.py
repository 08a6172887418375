"""Retraining schedules: what to retrain, when, and what each run did.

A schedule belongs to a tenant (its admin made it) and names a model, the tenant's dataset
it retrains on, and the training parameters. When it runs is a celery-redbeat entry, kept in
Redis beside the schedule, so schedules change while beat runs and only the beat holding
redbeat's lock sends them, however many beats run. Each run (a task on the maintenance queue)
records its outcome here.

Keys: schedule:{tenant}:{name} (hash: spec, last_run, last_launch), schedule:{tenant}:{name}:runs
(the recent runs, newest first), schedules:{tenant} (set of names).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, cast

import redis
from celery import Celery
from celery.schedules import crontab, schedule

from shared.contract import QUEUE_MAINTENANCE, TASK_RETRAIN
from shared.jobs import PREFIX

SCHEDULE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
RUNS_KEPT = 50
MIN_INTERVAL_S = 1
MAX_INTERVAL_S = 366 * 24 * 3600


def parse_cron(expression: str) -> crontab:
    """A five-field cron expression (minute hour day-of-month month day-of-week, UTC);
    ValueError says what is wrong."""
    parts = expression.split()
    if len(parts) != 5:
        raise ValueError("a cron expression has five fields: minute hour day-of-month month day-of-week")
    minute, hour, day_of_month, month, day_of_week = parts
    return crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month,
                   day_of_week=day_of_week)


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    tenant: str
    model: str
    dataset: str
    # Exactly one of the two: an interval in seconds, or a cron expression (UTC).
    every_s: int | None
    cron: str | None
    # The training job's params (target, steps, ...), validated like a training job's.
    training: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    created_at: float = 0.0
    updated_at: float = 0.0

    def celery_schedule(self) -> schedule | crontab:
        if self.cron is not None:
            return parse_cron(self.cron)
        return schedule(timedelta(seconds=cast(int, self.every_s)))

    def beat_entry_name(self) -> str:
        return f"retrain:{self.tenant}:{self.name}"


class ScheduleStore:
    def __init__(self, client: redis.Redis, app: Celery):
        self.redis, self.app = client, app

    @staticmethod
    def _key(tenant: str, name: str) -> str:
        return f"{PREFIX}schedule:{tenant}:{name}"

    def save(self, spec: ScheduleSpec) -> None:
        """Create or replace a schedule; its run history and last run stay."""
        self.redis.hset(self._key(spec.tenant, spec.name), "spec", json.dumps(asdict(spec)))
        self.redis.sadd(f"{PREFIX}schedules:{spec.tenant}", spec.name)
        self._beat_entry(spec).save()

    def delete(self, tenant: str, name: str) -> bool:
        spec = self.get(tenant, name)
        if spec is None:
            return False
        self._beat_entry(spec).delete()
        self.redis.delete(self._key(tenant, name), self._key(tenant, name) + ":runs")
        self.redis.srem(f"{PREFIX}schedules:{tenant}", name)
        return True

    def get(self, tenant: str, name: str) -> ScheduleSpec | None:
        raw = self.redis.hget(self._key(tenant, name), "spec")
        return ScheduleSpec(**json.loads(cast(str, raw))) if raw else None

    def names(self, tenant: str) -> list[str]:
        return sorted(cast(set[str], self.redis.smembers(f"{PREFIX}schedules:{tenant}")))

    def next_run_at(self, spec: ScheduleSpec) -> float | None:
        """When beat sends the next run (Unix time), from the redbeat entry."""
        from redbeat import RedBeatSchedulerEntry

        entry = RedBeatSchedulerEntry(spec.beat_entry_name(), app=self.app)
        try:
            loaded = RedBeatSchedulerEntry.from_key(entry.key, app=self.app)
        except KeyError:
            return None
        due = loaded.due_at
        return due.timestamp() if due is not None and spec.enabled else None

    # -- runs ---------------------------------------------------------------------

    def record_run(self, tenant: str, name: str, run: dict[str, Any]) -> None:
        entry = json.dumps({"at": time.time(), **run})
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key(tenant, name), "last_run", entry)
            if run.get("job_id"):
                pipe.hset(self._key(tenant, name), "last_launch", entry)
            pipe.lpush(self._key(tenant, name) + ":runs", entry)
            pipe.ltrim(self._key(tenant, name) + ":runs", 0, RUNS_KEPT - 1)
            pipe.execute()

    def last_launch(self, tenant: str, name: str) -> dict[str, Any] | None:
        """The last run that started a training job."""
        raw = self.redis.hget(self._key(tenant, name), "last_launch")
        return json.loads(cast(str, raw)) if raw else None

    def runs(self, tenant: str, name: str, limit: int = RUNS_KEPT) -> list[dict[str, Any]]:
        raw = cast(list[str], self.redis.lrange(self._key(tenant, name) + ":runs", 0, limit - 1))
        return [json.loads(r) for r in raw]

    def claim_run(self, tenant: str, name: str, hold_s: int = 60) -> bool:
        """True for the one caller that may run the schedule now: a run delivered twice (a
        redelivered message, a second beat before the lock settled) does nothing the second time."""
        return bool(self.redis.set(self._key(tenant, name) + ":running", "1", nx=True, ex=hold_s))

    def release_run(self, tenant: str, name: str) -> None:
        self.redis.delete(self._key(tenant, name) + ":running")

    def _beat_entry(self, spec: ScheduleSpec) -> Any:
        from redbeat import RedBeatSchedulerEntry

        interval = spec.every_s if spec.every_s is not None else 3600
        return RedBeatSchedulerEntry(
            spec.beat_entry_name(), TASK_RETRAIN, spec.celery_schedule(),
            kwargs={"tenant": spec.tenant, "name": spec.name}, enabled=spec.enabled,
            # A run nobody picked up before the next one is due is dropped, not piled up.
            options={"queue": QUEUE_MAINTENANCE, "expires": max(MIN_INTERVAL_S, min(interval, 3600))},
            app=self.app)
