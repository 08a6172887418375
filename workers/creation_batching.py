"""Batched creation: creation jobs for the same model that are already queued share one forward.

When a worker starts a creation job (the leader), ``CreationBatching.gather`` takes the ids on the
waiting list of the leader's model (its identity: owner, name and version; ``shared.queue`` lists
every creation job there as it is enqueued) and claims each job that is still queued, resolves to
the leader's model for its own tenant, and
fits: all images together stay within ``creation_batch_max_images``
(``ARTFORGE_CREATION_BATCH_MAX_IMAGES``, 256; 0 turns joining off). It never waits for more jobs:
only those already queued join, so a job alone starts as soon as it always did. Ids that did not
fit go back to the head of the list for a later batch; ids of jobs that are gone, finished,
canceled, running elsewhere or resolve to another model are dropped (their own Celery message
runs them, or finds nothing to do).

``CreationBatching.run`` hands the claimed jobs to ``workers.pipelines.creation.create_together``,
which plans each job from its own seed, runs the generator once over all their images (retrying at
a smaller batch on out-of-memory, as a job alone does) and splits the output back. Everything else
is the attempt's (``workers.attempt``): each job is checked, stored and settled on its own by the
same outcome rules as an attempt alone, so one job's failure (an unknown style, a cancel, S3 down
past the retry budget) leaves the others' outcomes as they would have been.

Invariants (tests/integration/test_creation_batching.py):
- a job's pixels are those it gets alone: each image depends only on its own noise row, label and
  attributes (batch norm on its running statistics, no op across rows), exactly so on the CPU;
- a job runs once: claiming is ``JobStore.begin_attempt``, atomic, so a joined job's own message
  later finds it leased or finished and is skipped (``Outcome`` skipped), and a job another worker
  holds is refused here;
- each joined job holds its own lease until it ends: if this worker dies, the reaper requeues
  each job like any other;
- each job's metadata, and so its provenance record, says ``batch_size`` (images per forward) and
  ``batched_with`` (jobs in that forward; 1 when the job ran alone).

Architecture notes: the waiting list is a hint, never the queue; the Celery messages stay the
source of truth (each joined job still has one, which becomes a no-op). A batch runs inside the
leader's task, under its time limit (``ARTFORGE_INFERENCE_SOFT_LIMIT_S``): keep the image cap at
what the device generates well within it. Jobs of different tenants may share a forward of a public
(shipped) model; only the model's weights are shared, never results, records or ledgers. A tenant's
own model has its tenant in its identity, so its jobs batch only with that tenant's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from shared.job_params import CreationParams
from shared.jobs import Job, JobStatus
from shared.queue import CREATION_KIND, return_waiting_creations, take_waiting_creations
from workers.attempt import Outcome, ReadyJob, claim
from workers.pipelines.creation import Member, create_together
from workers.pipelines.registry import PipelineResult
from workers.runtime import Runtime

log = logging.getLogger(__name__)

# Ids taken from a waiting list per read, and in all per batch (stale ids of jobs that ran on
# their own message are dropped as they are read; this bounds the reading).
TAKE_CHUNK = 64
MAX_SCANNED = 1024


class CreationBatching:
    """``workers.attempt.Batching`` for creation jobs: those waiting for the leader's model version
    join its generator forward."""

    def gather(self, rt: Runtime, leader: Job) -> list[Job]:
        """Claim the waiting creation jobs that may share the leader's forward; none when none do
        (the leader then runs alone, exactly as without batching)."""
        cap = rt.settings.creation_batch_max_images
        ref = leader.params.get("model")
        leader_count = _image_count(leader)
        if cap <= 0 or leader_count is None or cap - leader_count <= 0 or not isinstance(ref, str):
            return []
        budget = cap - leader_count
        try:
            identity = rt.registry.for_tenant(leader.tenant).resolve(ref).identity
        except Exception:  # an unknown model and the like: the leader's own attempt reports it
            return []
        client = rt.jobs.redis
        joined: list[Job] = []
        put_back: list[str] = []
        scanned = 0
        while budget > 0 and scanned < MAX_SCANNED:
            taken = take_waiting_creations(client, identity, min(budget, TAKE_CHUNK, MAX_SCANNED - scanned))
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
                if count is None:
                    continue  # its own message runs it, and fails it
                if count > budget:
                    put_back.append(job_id)  # a later batch may have room for it
                    continue
                if not _resolves_to(rt, candidate, identity):
                    continue  # another version now: its own message runs it
                job = claim(rt, candidate.id)
                if not isinstance(job, Outcome):
                    joined.append(job)
                    budget -= count
        return_waiting_creations(client, identity, put_back)
        if joined:
            images = cap - budget
            log.info("job %s joined %d other creation jobs (%d images)", leader.id, len(joined), images)
        return joined

    def run(self, rt: Runtime, jobs: list[ReadyJob]) -> Iterator[tuple[ReadyJob, PipelineResult | Exception]]:
        """The jobs' results from one generator forward (``create_together``); every job joined
        for the leader's (first) model."""
        if not jobs:
            return
        try:
            members = [Member(_creation_params(ready), ready.progress, ready.check_cancel) for ready in jobs]
            model = rt.registry.for_tenant(jobs[0].job.tenant).resolve(members[0].params.model)
        except Exception as exc:
            yield from ((ready, exc) for ready in jobs)
            return
        for position, produced in create_together(members, model, jobs[0].context):
            yield jobs[position], produced


def _image_count(job: Job) -> int | None:
    """How many images the job asks for; None where its params do not read (its own attempt then
    fails it)."""
    try:
        return CreationParams.from_dict(job.params).count
    except (TypeError, ValueError):
        return None


def _creation_params(ready: ReadyJob) -> CreationParams:
    if not isinstance(ready.params, CreationParams):
        raise TypeError(f"job {ready.job.id} is a {ready.job.kind} job, not a creation job")
    return ready.params


def _resolves_to(rt: Runtime, job: Job, identity: str) -> bool:
    """Whether the job's model, for its own tenant, is the one of ``identity``: jobs of several
    tenants share a forward of a public model, never of a tenant's own."""
    try:
        return rt.registry.for_tenant(job.tenant).resolve(str(job.params.get("model", ""))).identity == identity
    except Exception:
        return False
