"""The task contract between API and workers: queues, task names, job kinds, payloads.

The payload of every job task is just ``{"job_id": ...}``: the job record in Redis holds
the request, so a message can be re-sent at any time without carrying stale state.
"""

from __future__ import annotations

from dataclasses import dataclass

QUEUE_INFERENCE = "inference"
QUEUE_TRAINING = "training"
# Housekeeping (lease reaper, thumbnails, expiry) that every worker also consumes.
QUEUE_MAINTENANCE = "maintenance"

TASK_RUN_JOB = "artforge.run_job"
TASK_REAP_LEASES = "artforge.reap_leases"
TASK_RESEND_LOST_JOBS = "artforge.resend_lost_jobs"
TASK_RENDER_STYLE_THUMBNAILS = "artforge.render_style_thumbnails"
TASK_PRUNE_EXPIRED_JOB_KEYS = "artforge.prune_expired_job_keys"
TASK_EXPIRE_RESULTS = "artforge.expire_results"
# A retraining schedule's run, sent by beat (see shared.schedules).
TASK_RETRAIN = "artforge.retrain"
# One attempt at POSTing a finished job to its webhook_url (see workers.webhooks).
TASK_DELIVER_WEBHOOK = "artforge.deliver_webhook"

MAX_PRIORITY = 9


@dataclass(frozen=True)
class JobKind:
    name: str
    queue: str
    admin_only: bool
    description: str


_KINDS: dict[str, JobKind] = {}


def register_kind(kind: JobKind) -> JobKind:
    if kind.name in _KINDS:
        raise ValueError(f"job kind {kind.name!r} registered twice")
    _KINDS[kind.name] = kind
    return kind


def list_kinds() -> list[str]:
    return sorted(_KINDS)


def get_kind(name: str) -> JobKind:
    return _KINDS[name]


STYLE_TRANSFER = register_kind(
    JobKind(
        name="style_transfer",
        queue=QUEUE_INFERENCE,
        admin_only=False,
        description="Turn a photo into a painting: one of the named styles, or any painting as the style.",
    )
)


CREATION = register_kind(
    JobKind(
        name="creation",
        queue=QUEUE_INFERENCE,
        admin_only=False,
        description="New paintings from a trained GAN, steered by a style label and/or a free-text prompt.",
    )
)

RESTORATION = register_kind(
    JobKind(
        name="restoration",
        queue=QUEUE_INFERENCE,
        admin_only=False,
        description="Repair damaged or faded artwork: inpaint holes and scratches, de-fade, denoise.",
    )
)

TRAINING = register_kind(
    JobKind(
        name="training",
        queue=QUEUE_TRAINING,
        admin_only=True,
        description="Train a new model version on a dataset; it is registered when done.",
    )
)


def job_payload(job_id: str) -> dict[str, str]:
    return {"job_id": job_id}
