"""Housekeeping run by beat: requeue jobs whose worker died, re-send queued jobs whose message
was lost; render style thumbnails."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from importlib import resources

import numpy as np
from PIL import Image

from shared.images import encode_png
from shared.jobs import JobStatus, TransitionRefused
from shared.styles import NAMED_STYLES, thumbnail_key
from workers.models import style_networks
from workers.runtime import Runtime

log = logging.getLogger(__name__)


def reap_expired_leases(rt: Runtime, enqueue: Callable[[str, str, int], None]) -> list[str]:
    """Requeue running jobs whose lease expired (their worker died), or fail them when
    they have used up their attempts. ``enqueue(job_id, kind, priority)`` re-sends the task.
    Returns the ids it acted on."""
    now = time.time()
    acted = []
    for job_id in rt.jobs.running_job_ids():
        job = rt.jobs.get(job_id)
        if job is None or job.status != JobStatus.RUNNING or job.lease_until > now:
            continue
        try:
            if job.attempts >= rt.settings.max_attempts:
                rt.jobs.finish(job_id, JobStatus.FAILED, error={
                    "code": "worker_lost",
                    "message": f"the worker died during each of {job.attempts} attempts"})
            else:
                rt.jobs.requeue(job_id)
                enqueue(job_id, job.kind, job.priority)
            acted.append(job_id)
            log.warning("reaped job %s after attempt %d", job_id, job.attempts)
        except TransitionRefused:
            continue  # it renewed its lease or finished meanwhile
    return acted


def resend_lost_jobs(rt: Runtime, enqueue: Callable[[str, str, int], None], in_broker: Callable[[], set[str]],
                     batch: int = 1000) -> list[str]:
    """Re-send the jobs queued for over ``lost_job_after_s`` that have no message in the broker
    (``in_broker()``: shared.queue.job_ids_in_broker). A job's message can be lost where its record
    is not: the API killed between writing the record and sending the message, a broker that
    lost writes the job store kept, a purged queue. Every job looked at has its clock restarted,
    found or re-sent, so each is looked at once per ``lost_job_after_s`` and a backlog longer
    than ``batch`` is gone through in turn. Returns the ids re-sent.

    A message taken by a worker in the instant this looks (off the list, not yet in ``unacked``)
    may be re-sent needlessly; the copy is harmless: ``JobStore.begin_attempt`` lets one run."""
    candidates = rt.jobs.queued_unchecked_since(time.time() - rt.settings.lost_job_after_s, batch)
    if not candidates:
        return []
    present = in_broker()
    rt.jobs.restart_queued_clock(candidates)
    resent = []
    for job_id in candidates:
        if job_id in present:
            continue
        job = rt.jobs.get(job_id)  # read after the broker: a job taken meanwhile is no longer queued
        if job is None:
            rt.jobs.forget_queued(job_id)
            continue
        if job.status != JobStatus.QUEUED:
            continue
        enqueue(job_id, job.kind, job.priority)
        resent.append(job_id)
        log.warning("re-sent job %s: queued over %.0f s with no message in the broker",
                    job_id, rt.settings.lost_job_after_s)
    return resent


def render_style_thumbnails(rt: Runtime) -> int:
    """Render each named style on a reference photo once; returns how many were made."""
    bucket = rt.settings.bucket_results
    missing = [s for s in NAMED_STYLES if not rt.objects.exists(bucket, thumbnail_key(s.name))]
    if not missing:
        return 0
    # NASA's public-domain astronaut portrait (as shipped by scikit-image), 256 px.
    with (resources.files("workers") / "assets" / "thumbnail_base.jpg").open("rb") as fh:
        base = Image.open(fh).convert("RGB")
    array = np.asarray(base, dtype=np.float32) / 255.0
    for style in missing:
        out = style_networks.stylize_named_array(array, style.index, rt.settings.device)
        thumb = Image.fromarray((np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8))
        rt.objects.put_bytes(bucket, thumbnail_key(style.name), encode_png(thumb), "image/png")
    return len(missing)
