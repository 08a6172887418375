"""A retraining schedule's run: train again when the dataset changed, else say why not.

Beat sends ``artforge.retrain`` on each schedule's tick (shared.schedules). A run skips, with
the reason recorded, when the dataset's manifest is the one the promoted version was trained
on, when the last training job it started is still going, when that job already trained on this
manifest, or when the tenant already has as many training jobs queued or running as its quota
allows (``ARTFORGE_MAX_ACTIVE_TRAINING_JOBS_PER_TENANT``, the cap the API applies to submissions;
the job started takes a slot like a submitted one). Otherwise it starts a training job on the
training queue, whose new version the promotion gate compares with the promoted one
(``promote: if_better``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from shared.dataset_store import PROCEDURAL
from shared.jobs import JobStatus, new_job_id
from shared.quotas import ActiveJobQuota
from shared.schedules import ScheduleSpec, ScheduleStore
from workers.data.datasets import procedural_fingerprint
from workers.runtime import Runtime

log = logging.getLogger(__name__)

Enqueue = Callable[[str, str, int], None]


def run_schedule(rt: Runtime, schedules: ScheduleStore, tenant: str, name: str, enqueue: Enqueue) -> dict[str, Any]:
    """Run the schedule once; returns (and records) what the run did."""
    spec = schedules.get(tenant, name)
    if spec is None:
        return {"outcome": "skipped", "reason": "the schedule was deleted"}
    if not schedules.claim_run(tenant, name):
        return {"outcome": "skipped", "reason": "another run of this schedule is in progress"}
    try:
        run = _decide_and_launch(rt, spec, schedules.last_launch(tenant, name), enqueue)
        schedules.record_run(tenant, name, run)
    finally:
        schedules.release_run(tenant, name)
    log.info("schedule %s/%s: %s (%s)", tenant, name, run["outcome"], run.get("reason", ""))
    return run


def _decide_and_launch(rt: Runtime, spec: ScheduleSpec, last_launch: dict[str, Any] | None,
                       enqueue: Enqueue) -> dict[str, Any]:
    last_job = rt.jobs.get(last_launch["job_id"]) if last_launch is not None else None
    if last_job is not None and not last_job.status.is_terminal:
        return {"outcome": "skipped", "reason": f"retraining job {last_job.id} is still {last_job.status.value}",
                "job_id_running": last_job.id}

    fingerprint = dataset_fingerprint(rt, spec)
    if fingerprint is None:
        return {"outcome": "failed", "reason": f"dataset {spec.dataset} no longer exists"}

    own = rt.models.for_tenant(spec.tenant).own
    promoted = own.promoted(spec.model)
    if promoted is not None:
        card = own.card(spec.model, promoted) or {}
        if card.get("dataset", {}).get("manifest_sha256") == fingerprint:
            return {"outcome": "skipped", "manifest_sha256": fingerprint,
                    "reason": f"dataset unchanged since {spec.model}@{promoted} was trained on it"}
    if last_launch is not None and last_launch.get("manifest_sha256") == fingerprint:
        # An expired record counts as finished: job records expire only after their job ended.
        if last_job is None or last_job.status == JobStatus.SUCCEEDED:
            return {"outcome": "skipped", "manifest_sha256": fingerprint,
                    "reason": f"dataset unchanged since retraining job {last_launch['job_id']} trained on it "
                              "(its version was not promoted)"}

    job_id = new_job_id()
    quota = ActiveJobQuota.from_settings(rt.jobs.redis, rt.settings)
    decision = quota.claim(spec.tenant, "training", job_id)
    if not decision.granted:
        return {"outcome": "skipped", "manifest_sha256": fingerprint,
                "reason": f"{decision.active} training jobs of tenant {spec.tenant} are queued or running, "
                          f"the limit is {decision.limit}"}
    params = {**spec.training, "model": spec.model, "dataset": spec.dataset, "promote": "if_better",
              "schedule": spec.name}
    try:
        job = rt.jobs.create(job_id=job_id, tenant=spec.tenant, key_id=f"schedule:{spec.name}", kind="training",
                             params=params, inputs={})
        enqueue(job.id, "training", 0)
    except Exception:
        # No record without a message, no slot without a job (deleting a record never written is harmless).
        rt.jobs.delete(job_id, spec.tenant)
        quota.release(spec.tenant, job_id)
        raise
    reason = "dataset changed" if promoted is not None else "no promoted version yet"
    return {"outcome": "training", "job_id": job.id, "manifest_sha256": fingerprint, "reason": reason}


def dataset_fingerprint(rt: Runtime, spec: ScheduleSpec) -> str | None:
    """The sha256 of the dataset's current manifest (for the built-in dataset, what stands for
    it), as training records it in the model card; None when the dataset is gone."""
    if spec.dataset == PROCEDURAL:
        training = spec.training
        return procedural_fingerprint(training["per_style"], training["resolution"], training["seed"])
    record = rt.datasets.get_for_tenant(spec.dataset, spec.tenant)
    return record.manifest_sha256 if record is not None else None
