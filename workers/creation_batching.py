"""Batched creation: creation jobs for the same model that are already queued share one forward.

When a worker starts a creation job (the leader), ``CreationBatch.gather`` takes the ids on the
waiting list of the leader's model reference (``shared.queue`` lists every creation job there as it
is enqueued) and claims each job that is still queued, resolves to the leader's name@version, and
fits: all images together stay within ``creation_batch_max_images``
(``ARTFORGE_CREATION_BATCH_MAX_IMAGES``, 256; 0 turns joining off). It never waits for more jobs:
only those already queued join, so a job alone starts as soon as it always did. Ids that did not
fit go back to the head of the list for a later batch; ids of jobs that are gone, finished,
canceled, running elsewhere or resolve to another version are dropped (their own Celery message
runs them, or finds nothing to do).

``CreationBatch.run`` plans each job from its own seed (``workers.pipelines.creation``), runs the
generator once over all their images (retrying at a smaller batch on out-of-memory, as a job alone
does), splits the output back, and stores and finishes each job on its own through
``workers.execution.settle``, by the same outcome rules as an attempt alone: one job's failure (an
unknown style, a cancel, S3 down past the retry budget) leaves the others' outcomes as they would
have been.

Invariants (tests/integration/test_creation_batching.py):
- a job's pixels are those it gets alone: each image depends only on its own noise row, label and
  attributes (batch norm on its running statistics, no op across rows), exactly so on the CPU;
- a job runs once: claiming is ``JobStore.begin_attempt``, atomic, so a joined job's own message
  later finds it leased or finished and is skipped (``skipped:...``), and a job another worker
  holds is refused here;
- each joined job holds its own lease until it ends: if this worker dies, the reaper requeues
  each job like any other;
- each job's metadata, and so its provenance record, says ``batch_size`` (images per forward) and
  ``batched_with`` (jobs in that forward; 1 when the job ran alone).

Architecture notes: the waiting list is a hint, never the queue; the Celery messages stay the
source of truth (each joined job still has one, which becomes a no-op). A batch runs inside the
leader's task, under its time limit (``ARTFORGE_INFERENCE_SOFT_LIMIT_S``): keep the image cap at
what the device generates well within it. Jobs of different tenants may share a forward; only the
model's weights are shared, never results, records or ledgers.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from shared.jobs import Job, JobStatus, TransitionRefused
from shared.logs import log_context
from shared.queue import CREATION_KIND, return_waiting_creations, take_waiting_creations
from workers import faults, telemetry
from workers.devices import torch_device
from workers.execution import LeaseKeeper, fail_if_out_of_attempts, settle, settle_failure, store_results
from workers.pipelines import JobCanceled
from workers.pipelines.creation import (
    CreationPlan,
    creation_result,
    generate_in_batches,
    load_generator,
    plan_creation,
)
from workers.runtime import Runtime

log = logging.getLogger(__name__)

# Ids taken from a waiting list per read, and in all per batch (stale ids of jobs that ran on
# their own message are dropped as they are read; this bounds the reading).
TAKE_CHUNK = 64
MAX_SCANNED = 1024


class CreationBatch:
    """A leader and the creation jobs it claimed, all ``running`` under this worker."""

    def __init__(self, rt: Runtime, leader: Job, resolved: tuple[str, int, dict[str, Any]], joined: list[Job]):
        self.rt, self.leader, self.resolved = rt, leader, resolved
        self.jobs = [leader, *joined]
        self.claimed_at = {job.id: time.monotonic() for job in joined}

    # -- gathering -------------------------------------------------------------------------

    @classmethod
    def gather(cls, rt: Runtime, leader: Job) -> CreationBatch | None:
        """Claim the waiting creation jobs that may share the leader's forward; None when none do
        (the leader then runs alone, exactly as without batching)."""
        cap = rt.settings.creation_batch_max_images
        ref = leader.params.get("model")
        budget = cap - _image_count(leader)
        if cap <= 0 or budget <= 0 or not isinstance(ref, str):
            return None
        try:
            resolved = rt.registry.resolve(ref)
        except Exception:  # an unknown model and the like: the leader's own attempt reports it
            return None
        client = rt.jobs.redis
        joined: list[Job] = []
        put_back: list[str] = []
        scanned = 0
        while budget > 0 and scanned < MAX_SCANNED:
            taken = take_waiting_creations(client, ref, min(budget, TAKE_CHUNK, MAX_SCANNED - scanned))
            if not taken:
                break
            for position, job_id in enumerate(taken):
                if budget <= 0:
                    put_back.extend(taken[position:])
                    break
                scanned += 1
                candidate = rt.jobs.get(job_id) if job_id != leader.id else None
                if candidate is None or candidate.kind != CREATION_KIND or candidate.status != JobStatus.QUEUED:
                    continue  # gone, finished, canceled, running elsewhere, or the leader itself
                count = _image_count(candidate)
                if count > budget:
                    put_back.append(job_id)  # a later batch may have room for it
                    continue
                if not _resolves_to(rt, candidate, resolved):
                    continue  # another version now: its own message runs it
                job = _claim(rt, candidate.id)
                if job is not None:
                    joined.append(job)
                    budget -= count
        return_waiting_creations(client, ref, put_back)
        if not joined:
            return None
        images = sum(_image_count(job) for job in [leader, *joined])
        log.info("job %s joined %d other creation jobs (%d images)", leader.id, len(joined), images)
        return cls(rt, leader, resolved, joined)

    # -- running ---------------------------------------------------------------------------

    def run(self, on_joined_finished: Callable[[str], None] | None = None) -> str:
        """Plan, generate, store and finish every job; the leader's outcome is returned (the
        caller logs and counts it), each joined job's is logged, counted and passed to
        ``on_joined_finished`` here."""
        rt = self.rt
        outcomes: dict[str, str] = {}
        with contextlib.ExitStack() as leases:
            keeper = leases.enter_context(LeaseKeeper(rt, *(job.id for job in self.jobs)))

            def settled(job: Job, outcome: str) -> None:
                keeper.release(job.id)
                outcomes[job.id] = outcome
                if job.id != self.leader.id:
                    self._report(job, outcome, on_joined_finished)

            plans: dict[str, CreationPlan] = {}
            for job in self.jobs:
                with _job_log_context(job):
                    early = fail_if_out_of_attempts(rt, job)
                    if early is not None:
                        settled(job, early)
                        continue
                    try:
                        plans[job.id] = self._plan(job)
                    except Exception as exc:
                        settled(job, settle_failure(rt, job, exc))
            planned = [job for job in self.jobs if job.id in plans]
            if planned:
                self._generate_and_store(planned, plans, settled)
        return outcomes[self.leader.id]

    def _plan(self, job: Job) -> CreationPlan:
        self._check_cancel(job)
        faults.before_pipeline(job.kind)  # does nothing unless ARTFORGE_FAULT_INJECTION is set (tests)
        self.rt.jobs.set_progress(job.id, 0.05, "loading model", str(job.params.get("model", "")))
        name, version, card = self.resolved
        return plan_creation(job.params, name, version, card)

    def _generate_and_store(self, planned: list[Job], plans: dict[str, CreationPlan],
                            settled: Callable[[Job, str], None]) -> None:
        rt = self.rt
        name, version, _ = self.resolved
        live: list[Job] = []
        try:
            device = torch_device(rt.settings.device)
            generator = load_generator(rt.registry, name, version, device)
        except Exception as exc:
            for job in planned:
                with _job_log_context(job):
                    settled(job, settle_failure(rt, job, exc))
            return
        for job in planned:
            try:
                self._check_cancel(job)
                live.append(job)
            except JobCanceled as exc:
                with _job_log_context(job):
                    settled(job, settle_failure(rt, job, exc))
        if not live:
            return
        total = sum(plans[job.id].count for job in live)
        for job in live:
            rt.jobs.set_progress(job.id, 0.2, "generating", f"{plans[job.id].count} images, in one batch of "
                                                            f"{total} with {len(live) - 1} other jobs")

        def progress(fraction: float, stage: str, message: str = "") -> None:
            for job in live:
                rt.jobs.set_progress(job.id, fraction, stage, message)

        try:
            pixels, batch = generate_in_batches(generator, [plans[job.id] for job in live], device, progress)
        except Exception as exc:
            for job in live:
                with _job_log_context(job):
                    settled(job, settle_failure(rt, job, exc))
            return
        for job, own in zip(live, pixels, strict=True):
            with _job_log_context(job):
                work = functools.partial(self._store, job, plans[job.id], own, batch, len(live))
                settled(job, settle(rt, job, work))

    def _store(self, job: Job, plan: CreationPlan, pixels: np.ndarray, batch: int,
               batched_with: int) -> list[dict[str, Any]]:
        self._check_cancel(job)
        result = creation_result(plan, job.params, pixels, batch, batched_with)
        return store_results(self.rt, job, result, {})

    def _check_cancel(self, job: Job) -> None:
        if self.rt.jobs.cancel_requested(job.id):
            raise JobCanceled(job.id)

    def _report(self, job: Job, outcome: str, on_finished: Callable[[str], None] | None) -> None:
        elapsed = time.monotonic() - self.claimed_at[job.id]
        with _job_log_context(job):
            telemetry.record_attempt(job.kind, outcome, elapsed)
            log.info("job %s: %s attempt %d %s in %.2f s (in job %s's batch)", job.id, job.kind, job.attempts,
                     outcome, elapsed, self.leader.id)
        if on_finished is not None:
            try:
                on_finished(job.id)
            except Exception:  # e.g. the webhook's task could not be sent: never the other jobs' concern
                log.warning("after job %s finished in a batch", job.id, exc_info=True)


def _image_count(job: Job) -> int:
    return int(job.params.get("count", 1))


def _resolves_to(rt: Runtime, job: Job, resolved: tuple[str, int, dict[str, Any]]) -> bool:
    try:
        name, version, _ = rt.registry.resolve(str(job.params.get("model", "")))
    except Exception:
        return False
    return (name, version) == resolved[:2]


def _claim(rt: Runtime, job_id: str) -> Job | None:
    """Begin the job's attempt here, or None where ``begin_attempt`` refuses (canceled, finished,
    or taken by another worker since it was read)."""
    try:
        job = rt.jobs.begin_attempt(job_id, rt.worker_id, rt.settings.lease_s)
    except TransitionRefused as refused:
        log.info("job %s not joined: %s", job_id, refused)
        return None
    with _job_log_context(job):
        log.info("job %s: %s attempt %d started (joined a batch)", job.id, job.kind, job.attempts)
        telemetry.record_attempt_started(job.kind)
    return job


@contextlib.contextmanager
def _job_log_context(job: Job) -> Iterator[None]:
    with log_context(job_id=job.id, tenant=job.tenant, request_id=job.request_id):
        yield
