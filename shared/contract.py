"""The task contract between API and workers: queues, task names, job kinds, payloads.

The payload of every job task is just ``{"job_id": ...}``: the job record in Redis holds
the request, so a message can be re-sent at any time without carrying stale state.

Job kinds are registered here, each with how its stored parameters are read
(``shared.job_params``). A kind also needs a validator in ``api.job_kinds`` and a pipeline in
``workers.pipelines``; ``tests/unit/test_job_kinds.py`` checks that every kind has both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.job_params import (
    AnalysisParams,
    CreationParams,
    JobParams,
    ParamsParser,
    RestorationParams,
    StyleTransferParams,
    training_params,
)

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
# Adding a new upload, or a finished job's image results, to the tenant's works index
# (shared.works_index; rebuilt from S3 first where it was lost).
TASK_INDEX_UPLOAD = "artforge.index_upload"
TASK_INDEX_JOB_RESULTS = "artforge.index_job_results"

MAX_PRIORITY = 9


@dataclass(frozen=True)
class JobKind:
    name: str
    queue: str
    admin_only: bool
    description: str
    # Reads a stored job's parameters into the kind's frozen dataclass.
    params: ParamsParser


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


def parse_params(kind: str, raw: Mapping[str, Any]) -> JobParams:
    """A job's stored parameters as its kind's dataclass; ValueError when they do not fit it."""
    return get_kind(kind).params(raw)


STYLE_TRANSFER = register_kind(
    JobKind(
        name="style_transfer",
        queue=QUEUE_INFERENCE,
        admin_only=False,
        description="Turn a photo into a painting: one of the named styles, or any painting as the style.",
        params=StyleTransferParams.from_dict,
    )
)


CREATION = register_kind(
    JobKind(
        name="creation",
        queue=QUEUE_INFERENCE,
        admin_only=False,
        description="New paintings from a trained GAN, steered by a style label and/or a free-text prompt.",
        params=CreationParams.from_dict,
    )
)

RESTORATION = register_kind(
    JobKind(
        name="restoration",
        queue=QUEUE_INFERENCE,
        admin_only=False,
        description="Repair damaged or faded artwork: inpaint holes and scratches, de-fade, denoise.",
        params=RestorationParams.from_dict,
    )
)

ANALYSIS = register_kind(
    JobKind(
        name="analysis",
        queue=QUEUE_INFERENCE,
        admin_only=False,
        description="Appreciate a work: palette, colour, composition, texture, nearest styles, similar works, "
                    "and a description in English and Chinese; a JSON report and an annotated picture.",
        params=AnalysisParams.from_dict,
    )
)

TRAINING = register_kind(
    JobKind(
        name="training",
        queue=QUEUE_TRAINING,
        admin_only=True,
        description="Train a new model version on a dataset; it is registered when done.",
        params=training_params,
    )
)


def job_payload(job_id: str) -> dict[str, str]:
    return {"job_id": job_id}
