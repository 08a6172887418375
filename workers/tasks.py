"""Thin Celery tasks: each hands over to a plain function."""

from __future__ import annotations

import functools

from shared.contract import (
    TASK_EXPIRE_RESULTS,
    TASK_PRUNE_EXPIRED_JOB_KEYS,
    TASK_REAP_LEASES,
    TASK_RENDER_STYLE_THUMBNAILS,
    TASK_RETRAIN,
    TASK_RUN_JOB,
)
from shared.queue import enqueue_job
from shared.schedules import ScheduleStore
from workers import housekeeping, maintenance, retraining
from workers.celery_app import app, settings
from workers.execution import execute_job
from workers.runtime import runtime


@app.task(name=TASK_RUN_JOB, ignore_result=True)
def run_job(job_id: str) -> str:
    return execute_job(runtime(), job_id)


@app.task(name=TASK_REAP_LEASES, ignore_result=True)
def reap_leases() -> int:
    return len(maintenance.reap_expired_leases(runtime(), functools.partial(enqueue_job, app, settings)))


@app.task(name=TASK_RENDER_STYLE_THUMBNAILS, ignore_result=True)
def render_style_thumbnails() -> int:
    return maintenance.render_style_thumbnails(runtime())


@app.task(name=TASK_PRUNE_EXPIRED_JOB_KEYS, ignore_result=True)
def prune_expired_job_keys() -> dict[str, int]:
    return housekeeping.prune_expired_job_keys(runtime())


@app.task(name=TASK_EXPIRE_RESULTS, ignore_result=True)
def expire_results() -> int:
    return len(housekeeping.expire_results(runtime()))


@app.task(name=TASK_RETRAIN, ignore_result=True)
def retrain(tenant: str, name: str) -> str:
    rt = runtime()
    run = retraining.run_schedule(rt, ScheduleStore(rt.jobs.redis, app), tenant, name,
                                  functools.partial(enqueue_job, app, settings))
    return str(run["outcome"])
