"""The Celery app's configuration, shared by the API (which only sends) and the workers.

Reliability settings (RELIABILITY.md shows what each one guards against): late acks, reject on worker loss, prefetch 1,
a visibility timeout above the longest job, and priorities on the Redis transport. The
visibility timeout is deliberately long: dead workers are handled by the lease reaper,
never by early redelivery, which would start a still-running job a second time.

Creation jobs are also listed, by id, on a waiting list per model reference as submitted
(``af:creation-waiting:{params.model}``, a Redis list with a TTL refreshed on each push): a worker
that starts a creation job takes those already waiting for the same model into one generator
forward (``workers.creation_batching``). A listed id is only a hint; ``JobStore.begin_attempt``
decides who runs a job, so an id taken from the list and an id left on it are both harmless.

``job_ids_in_broker`` reads the Redis transport's own keys (one list per queue and priority,
the ``unacked`` hash of messages workers hold) to find which jobs have a message: the
lost-message sweep (``workers.maintenance.resend_lost_jobs``) re-sends the others.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any, cast

import redis
from celery import Celery
from kombu import Queue

from shared.contract import (
    MAX_PRIORITY,
    QUEUE_INFERENCE,
    QUEUE_MAINTENANCE,
    QUEUE_TRAINING,
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
    get_kind,
    job_payload,
)
from shared.settings import Settings

CREATION_WAITING_PREFIX = "af:creation-waiting:"
# A waiting list outlives its last push by this long. A job queued longer than that is no longer
# listed: it runs alone (on its own message), as it would with batching off.
CREATION_WAITING_TTL_S = 3600
CREATION_KIND = "creation"
# The Redis transport's keys: queue ``q`` at priority p > 0 is the list ``q{PRIORITY_SEP}p``, at 0 the
# list ``q``; messages a worker has taken but not acked wait in the hash UNACKED_KEY (kombu's name).
PRIORITY_SEP = ":"
UNACKED_KEY = "unacked"
JOB_QUEUES = (QUEUE_INFERENCE, QUEUE_TRAINING)


def visibility_options(settings: Settings) -> dict[str, int]:
    """The Redis transport's visibility timeout: above the longest job (all copies of it).

    ``ARTFORGE_VISIBILITY_TIMEOUT_S`` overrides it for tests and drills; the unacked sweep then
    runs every second, so an early redelivery really happens (kombu's default sweep comes every
    ~100 s). A job redelivered while it still runs is refused by its lease (``JobStore.begin_attempt``)."""
    if settings.visibility_timeout_s > 0:
        return {"visibility_timeout": settings.visibility_timeout_s, "unacked_restore_interval": 1,
                "unacked_restore_throttle": 1}
    longest_job_s = max(settings.training_hard_limit_s, settings.inference_hard_limit_s)
    return {"visibility_timeout": longest_job_s + 3600}


def make_celery(settings: Settings, main: str = "artforge") -> Celery:
    app = Celery(main, broker=settings.redis_url, set_as_current=False)
    housekeeping_s = max(1, settings.housekeeping_interval_s)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=QUEUE_INFERENCE,
        task_queues=[Queue(QUEUE_INFERENCE), Queue(QUEUE_TRAINING), Queue(QUEUE_MAINTENANCE)],
        task_routes={
            TASK_REAP_LEASES: {"queue": QUEUE_MAINTENANCE},
            TASK_RESEND_LOST_JOBS: {"queue": QUEUE_MAINTENANCE},
            TASK_RENDER_STYLE_THUMBNAILS: {"queue": QUEUE_MAINTENANCE},
            TASK_PRUNE_EXPIRED_JOB_KEYS: {"queue": QUEUE_MAINTENANCE},
            TASK_EXPIRE_RESULTS: {"queue": QUEUE_MAINTENANCE},
            TASK_RETRAIN: {"queue": QUEUE_MAINTENANCE},
            TASK_DELIVER_WEBHOOK: {"queue": QUEUE_MAINTENANCE},
            TASK_INDEX_UPLOAD: {"queue": QUEUE_MAINTENANCE},
            TASK_INDEX_JOB_RESULTS: {"queue": QUEUE_MAINTENANCE},
        },
        broker_transport_options={
            **visibility_options(settings),
            "priority_steps": list(range(MAX_PRIORITY + 1)),
            "sep": PRIORITY_SEP,
            "queue_order_strategy": "priority",
        },
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        timezone="UTC",
        beat_scheduler="redbeat.RedBeatScheduler",
        redbeat_redis_url=settings.redis_url,
        redbeat_key_prefix="af:redbeat:",
        # Its own client's options (redbeat's fallback to the broker's transport options is deprecated).
        redbeat_redis_options={"socket_connect_timeout": 2, "socket_timeout": 5},
        # Beat wakes at least this often, so schedules added at run time start promptly;
        # a standby beat takes over within the lock timeout when the active one dies.
        beat_max_interval=5,
        redbeat_lock_timeout=30,
        beat_schedule={
            "reap-expired-leases": {
                "task": TASK_REAP_LEASES,
                "schedule": float(max(1, settings.heartbeat_s)),
                "options": {"expires": 30},
            },
            "resend-lost-jobs": {
                "task": TASK_RESEND_LOST_JOBS,
                "schedule": float(max(1, settings.lost_job_check_s)),
                "options": {"expires": max(1, settings.lost_job_check_s)},
            },
            # A missed run is not worth queueing up: the next one does the same work.
            "prune-expired-job-keys": {
                "task": TASK_PRUNE_EXPIRED_JOB_KEYS,
                "schedule": float(housekeeping_s),
                "options": {"expires": housekeeping_s},
            },
            "expire-results": {
                "task": TASK_EXPIRE_RESULTS,
                "schedule": float(housekeeping_s),
                "options": {"expires": housekeeping_s},
            },
        },
    )
    return app


def enqueue_job(app: Celery, settings: Settings, job_id: str, kind: str, priority: int, *,
                model_identity: str | None = None, redis_client: redis.Redis | None = None) -> None:
    """Send a job's task to its kind's queue. API priority: 9 runs first; the Redis
    transport serves priority 0 first, hence the flip. Training jobs get their own limits.

    A creation job (given its model's ``model_identity``, ``shared.models.identity_of`` its pinned
    reference, and a ``redis_client``) is first listed as waiting for that model, unless
    ``creation_batch_max_images`` is 0: another worker may then run it in its batch, and this
    message finds it taken and is skipped."""
    if (kind == CREATION_KIND and model_identity and redis_client is not None
            and settings.creation_batch_max_images > 0):
        list_waiting_creation(redis_client, model_identity, job_id)
    queue = get_kind(kind).queue
    if queue == QUEUE_TRAINING:
        limits = {"soft_time_limit": settings.training_soft_limit_s, "time_limit": settings.training_hard_limit_s}
    else:
        limits = {"soft_time_limit": settings.inference_soft_limit_s,
                  "time_limit": settings.inference_hard_limit_s}
    app.send_task(
        TASK_RUN_JOB,
        kwargs=job_payload(job_id),
        queue=queue,
        priority=MAX_PRIORITY - priority,
        retry=True,
        retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 0.5},
        **limits,
    )


def queue_lists(queues: Iterable[str]) -> list[str]:
    """The Redis lists the transport keeps ``queues``' messages in: one per priority step."""
    return [queue if p == 0 else f"{queue}{PRIORITY_SEP}{p}" for queue in queues for p in range(MAX_PRIORITY + 1)]


def job_ids_in_broker(client: redis.Redis) -> set[str]:
    """The job ids that have a ``run_job`` message in the broker: waiting in a job queue at
    any priority, or taken by a worker and not yet acked."""
    lists = queue_lists(JOB_QUEUES)
    with client.pipeline(transaction=False) as pipe:
        for name in lists:
            pipe.lrange(name, 0, -1)
        pipe.hvals(UNACKED_KEY)
        *waiting, unacked = pipe.execute()
    messages = [json.loads(raw) for entries in waiting for raw in entries]
    messages += [json.loads(raw)[0] for raw in unacked]  # [message, exchange, routing key]
    return {job_id for message in messages if (job_id := run_job_id(message)) is not None}


def run_job_id(message: dict[str, Any]) -> str | None:
    """The job id of a Celery (protocol 2) ``run_job`` message; None for other tasks."""
    if message.get("headers", {}).get("task") != TASK_RUN_JOB:
        return None
    body = message["body"]
    if message.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    _args, kwargs, _embed = json.loads(body)
    return cast(str, kwargs["job_id"])


def creation_waiting_key(model_identity: str) -> str:
    return CREATION_WAITING_PREFIX + model_identity


def list_waiting_creation(client: redis.Redis, model_identity: str, job_id: str) -> None:
    """Append ``job_id`` to its model's waiting list and refresh the list's TTL."""
    key = creation_waiting_key(model_identity)
    with client.pipeline(transaction=True) as pipe:
        pipe.rpush(key, job_id)
        pipe.expire(key, CREATION_WAITING_TTL_S)
        pipe.execute()


def take_waiting_creations(client: redis.Redis, model_identity: str, count: int) -> list[str]:
    """Up to ``count`` ids from the head of the model's waiting list (oldest first), removed from it."""
    if count <= 0:
        return []
    return list(cast(list[str] | None, client.lpop(creation_waiting_key(model_identity), count)) or [])


def return_waiting_creations(client: redis.Redis, model_identity: str, job_ids: list[str]) -> None:
    """Put ids taken but not used back at the head of the list, in their order."""
    if not job_ids:
        return
    key = creation_waiting_key(model_identity)
    with client.pipeline(transaction=True) as pipe:
        pipe.lpush(key, *reversed(job_ids))
        pipe.expire(key, CREATION_WAITING_TTL_S)
        pipe.execute()


def enqueue_webhook_delivery(app: Celery, job_id: str, attempt: int, delay_s: float = 0.0) -> None:
    """Send attempt ``attempt`` at delivering a finished job's webhook, ``delay_s`` from now."""
    app.send_task(
        TASK_DELIVER_WEBHOOK,
        kwargs={"job_id": job_id, "attempt": attempt},
        queue=QUEUE_MAINTENANCE,
        countdown=delay_s if delay_s > 0 else None,
        retry=True,
        retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 0.5},
    )


def enqueue_upload_indexing(app: Celery, tenant: str, upload_id: str) -> None:
    """Add an upload to its tenant's works index (``workers.works_indexing``)."""
    app.send_task(TASK_INDEX_UPLOAD, kwargs={"tenant": tenant, "upload_id": upload_id}, queue=QUEUE_MAINTENANCE,
                  retry=True, retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2,
                                            "interval_max": 0.5})


def enqueue_results_indexing(app: Celery, job_id: str) -> None:
    """Add a finished job's image results to its tenant's works index."""
    app.send_task(TASK_INDEX_JOB_RESULTS, kwargs={"job_id": job_id}, queue=QUEUE_MAINTENANCE, retry=True,
                  retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 0.5})
