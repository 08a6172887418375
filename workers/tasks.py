"""Thin Celery tasks: each hands over to a plain function."""

from __future__ import annotations

import functools
import logging
from concurrent.futures import Future

from shared.contract import (
    TASK_DELIVER_WEBHOOK,
    TASK_EXPIRE_RESULTS,
    TASK_INDEX_JOB_RESULTS,
    TASK_INDEX_UPLOAD,
    TASK_PRUNE_EXPIRED_JOB_KEYS,
    TASK_REAP_LEASES,
    TASK_RENDER_STYLE_THUMBNAILS,
    TASK_RESEND_LOST_JOBS,
    TASK_RETRAIN,
    TASK_RUN_JOB,
)
from shared.jobs import JobStatus
from shared.models import identity_of
from shared.queue import (
    CREATION_KIND,
    enqueue_job,
    enqueue_results_indexing,
    enqueue_webhook_delivery,
    job_ids_in_broker,
)
from shared.schedules import ScheduleStore
from shared.works_index import WorkRef
from workers import finalizing, housekeeping, maintenance, retraining, webhooks, works_indexing
from workers.attempt import Batching, start_job
from workers.celery_app import app, settings
from workers.creation_batching import CreationBatching
from workers.runtime import Runtime, runtime

log = logging.getLogger(__name__)


send_webhook_attempt = functools.partial(enqueue_webhook_delivery, app)
# The job kinds whose queued jobs join a running one's attempt.
BATCHING: dict[str, Batching] = {CREATION_KIND: CreationBatching()}


@app.task(name=TASK_RUN_JOB, ignore_result=True)
def run_job(job_id: str) -> None:
    """Runs the job's pipeline; its results are stored and the job settled in this process's
    finalize stage while the worker takes its next job (``workers.finalizing``)."""
    rt = runtime()
    after = functools.partial(_after_job, rt)
    try:
        outcome = start_job(rt, job_id, functools.partial(_requeue, rt), batching=BATCHING, on_finished=after,
                            finalize=finalizing.process_stage())
    except Exception:
        after(job_id)  # whatever state the attempt left it in (a finished job's webhook goes out)
        raise
    outcome.add_done_callback(functools.partial(_log_error, job_id))


def _log_error(job_id: str, outcome: Future[object]) -> None:
    """Nobody waits for the outcome of an attempt finished in the background: its error is logged."""
    if outcome.exception() is not None:
        log.error("the attempt of job %s ended in an error", job_id, exc_info=outcome.exception())


def _after_job(rt: Runtime, job_id: str) -> None:
    """Once a job's attempt has ended: a finished job's webhook is delivered by its own task, never
    inside this one; so is indexing its results."""
    _request_webhook(rt, job_id)
    _request_indexing(rt, job_id)


def _request_indexing(rt: Runtime, job_id: str) -> None:
    try:
        job = rt.jobs.get(job_id)
        if job is not None and job.status == JobStatus.SUCCEEDED and works_indexing.job_work_refs(job):
            enqueue_results_indexing(app, job_id)
    except Exception:  # a Redis blip: the next search rebuilds what the index lacks
        log.warning("could not start indexing the results of job %s", job_id, exc_info=True)


@app.task(name=TASK_INDEX_UPLOAD, ignore_result=True)
def index_upload(tenant: str, upload_id: str) -> bool:
    return works_indexing.index_work(runtime(), tenant, WorkRef("upload", upload_id))


@app.task(name=TASK_INDEX_JOB_RESULTS, ignore_result=True)
def index_job_results(job_id: str) -> int:
    return works_indexing.index_job_results(runtime(), job_id)


@app.task(name=TASK_REAP_LEASES, ignore_result=True)
def reap_leases() -> int:
    rt = runtime()
    acted = maintenance.reap_expired_leases(rt, functools.partial(_requeue, rt))
    for job_id in acted:  # those it failed (out of attempts) are finished
        _request_webhook(rt, job_id)
    return len(acted)


@app.task(name=TASK_RESEND_LOST_JOBS, ignore_result=True)
def resend_lost_jobs() -> int:
    rt = runtime()
    return len(maintenance.resend_lost_jobs(rt, functools.partial(_requeue, rt),
                                            functools.partial(job_ids_in_broker, rt.jobs.redis)))


def _requeue(rt: Runtime, job_id: str, kind: str, priority: int) -> None:
    """Sends a job's message again (the reapers, an attempt that hands its job back): a creation
    job is listed as waiting again too (shared.queue)."""
    job = rt.jobs.get(job_id) if kind == CREATION_KIND else None
    pinned = job.params.get("model") if job is not None else None
    enqueue_job(app, settings, job_id, kind, priority, redis_client=rt.jobs.redis,
                model_identity=identity_of(job.tenant, pinned) if job is not None and isinstance(pinned, str) else None)


@app.task(name=TASK_DELIVER_WEBHOOK, ignore_result=True)
def deliver_webhook(job_id: str, attempt: int = 1) -> str:
    return webhooks.deliver(runtime(), job_id, attempt, send_webhook_attempt)


def _request_webhook(rt: Runtime, job_id: str) -> None:
    try:
        webhooks.request_delivery(rt, job_id, send_webhook_attempt)
    except Exception:  # Redis blip: never let the webhook fail the job's task
        log.warning("could not start the webhook delivery of job %s", job_id, exc_info=True)


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
