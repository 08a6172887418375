"""One attempt at a job: claim it, keep its lease alive, run its pipeline, store, finish.

The outcome of every path is a state in the job record:
- the pipeline returns            -> results stored, then ``succeeded``
- the cancel check fires          -> ``canceled`` (nothing stored)
- InvalidJobInput                 -> ``failed`` with its code, no other attempt
- the soft time limit             -> ``failed`` / ``timeout``
- the device runs out of memory   -> ``failed`` / ``out_of_memory`` (creation first retries
                                     at a smaller batch itself)
- S3 stays down past the worker's
  retry budget (ARTFORGE_S3_RETRY_*) -> ``queued`` again for a new attempt, or, out of attempts,
                                     ``failed`` / ``storage_unavailable``
- any other exception             -> ``failed`` / ``pipeline_error``
- the process dies                -> the lease expires, the reaper requeues or fails it

Results are stored before the job turns ``succeeded``: while S3 is briefly down the attempt
retries its writes with backoff, keeping its lease, so the job stays ``running`` meanwhile.

A creation job may take other creation jobs for its model that are already queued into its
attempt (``workers.creation_batching``): each of those is claimed, kept alive by its own lease,
and ends by the same rules (``settle``) as if it had run alone.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from PIL import Image

from shared.dataset_store import DatasetRecord, dataset_prefix
from shared.images import decode_image
from shared.jobs import Job, JobStatus, TransitionRefused
from shared.logs import log_context
from shared.objects import ObjectNotFound, RetryPolicy, StorageUnavailable
from workers import faults, telemetry
from workers.housekeeping import ResultsLedger
from workers.pipelines import InvalidJobInput, JobCanceled, JobContext, PipelineResult, get_pipeline
from workers.provenance.recording import ResultRecorder, parallel_map
from workers.runtime import Runtime

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews the leases of running jobs every ``heartbeat_s`` while their attempts run.

    One thread and one Redis round trip per beat however many jobs it keeps: a creation batch
    holds hundreds, and a thread each would compete with the batch for the interpreter until a
    beat came late and a lease ran out under a job still running."""

    def __init__(self, rt: Runtime, *job_ids: str):
        self.rt = rt
        self._ids = set(job_ids)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_ids[0][:8]}", daemon=True)

    def _run(self) -> None:
        s = self.rt.settings
        while not self._stop.wait(s.heartbeat_s):
            with self._lock:
                ids = sorted(self._ids)
            try:
                self.rt.jobs.heartbeat(ids, s.lease_s)
            except Exception:  # Redis blip: the next beat tries again
                log.warning("heartbeat for %s failed", ", ".join(ids), exc_info=True)

    def release(self, job_id: str) -> None:
        """No more renewals for ``job_id`` (it finished); the others' go on."""
        with self._lock:
            self._ids.discard(job_id)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """No more renewals at all; stopping twice is harmless."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def execute_job(rt: Runtime, job_id: str, on_joined_finished: Callable[[str], None] | None = None) -> str:
    """Run one attempt of ``job_id``. Returns what happened, for logs and tests.

    Every log line of the attempt carries the job's id, tenant and the request id it was
    submitted with; the attempt is counted and timed in ``workers.telemetry``. A creation job's
    attempt may also run other creation jobs (``workers.creation_batching``); each of those is
    logged and counted on its own, and ``on_joined_finished(job_id)`` is called once it ends."""
    with log_context(job_id=job_id):
        try:
            job = rt.jobs.begin_attempt(job_id, rt.worker_id, rt.settings.lease_s)
        except TransitionRefused as refused:
            # A duplicate delivery: the job is finished, canceled, gone, or alive elsewhere.
            log.info("job %s not started: %s", job_id, refused)
            return f"skipped:{refused.reason}"
        with log_context(tenant=job.tenant, request_id=job.request_id):
            log.info("job %s: %s attempt %d started", job_id, job.kind, job.attempts)
            telemetry.record_attempt_started(job.kind)
            started = time.monotonic()
            outcome = _attempt(rt, job, on_joined_finished)
            elapsed = time.monotonic() - started
            telemetry.record_attempt(job.kind, outcome, elapsed)
            log.info("job %s: %s attempt %d %s in %.2f s", job_id, job.kind, job.attempts, outcome, elapsed)
            return outcome


@functools.cache
def retrying_runtime(rt: Runtime) -> Runtime:
    """``rt`` with an object store that rides out a short S3 outage (``shared.objects.RetryPolicy``);
    one per process, so its model cache lives as long as the process."""
    return dataclasses.replace(rt, objects=rt.objects.with_retries(RetryPolicy.from_settings(rt.settings)))


def _attempt(rt: Runtime, job: Job, on_joined_finished: Callable[[str], None] | None = None) -> str:
    rt = retrying_runtime(rt)
    out_of_attempts = fail_if_out_of_attempts(rt, job)
    if out_of_attempts is not None:
        return out_of_attempts
    if job.kind == "creation":
        from workers.creation_batching import CreationBatch  # here: it imports this module

        batch = CreationBatch.gather(rt, job)
        if batch is not None:
            return batch.run(on_joined_finished)
    with LeaseKeeper(rt, job.id):
        return settle(rt, job, lambda: _run_and_store(rt, job))


def _run_and_store(rt: Runtime, job: Job) -> list[dict[str, Any]]:
    inputs = load_inputs(rt, job)
    result = run_pipeline(rt, job, inputs)
    return store_results(rt, job, result, inputs)


def fail_if_out_of_attempts(rt: Runtime, job: Job) -> str | None:
    """A job begun more often than ``max_attempts`` (its earlier attempts never finished) fails
    now; None when it may run."""
    if job.attempts <= rt.settings.max_attempts:
        return None
    rt.jobs.finish(job.id, JobStatus.FAILED, error={
        "code": "too_many_attempts",
        "message": f"gave up after {rt.settings.max_attempts} attempts that did not finish"})
    return "failed:too_many_attempts"


def settle(rt: Runtime, job: Job, work: Callable[[], list[dict[str, Any]]]) -> str:
    """Run ``work`` (the rest of the attempt; it returns the stored results) and leave the job in
    the state its outcome calls for (the table above). Returns the outcome."""
    try:
        results = work()
        if results:
            # Entered before the transition: should this attempt die now, the stored objects
            # are still expired in time (a rerun enters the job again, later).
            ResultsLedger(rt.jobs.redis).record(job.tenant, job.id, time.time())
        rt.jobs.finish(job.id, JobStatus.SUCCEEDED, results=results)
        return "succeeded"
    except Exception as exc:
        return settle_failure(rt, job, exc)


def settle_failure(rt: Runtime, job: Job, exc: Exception) -> str:
    """The job's state after ``exc`` ended its attempt (the table above). Returns the outcome."""
    job_id = job.id
    if isinstance(exc, JobCanceled):
        rt.jobs.finish(job_id, JobStatus.CANCELED, message="canceled on request")
        return "canceled"
    if isinstance(exc, InvalidJobInput):
        return _fail(rt, job_id, exc.code, str(exc))
    if isinstance(exc, SoftTimeLimitExceeded):
        return _fail(rt, job_id, "timeout", "the job ran past its time limit")
    if isinstance(exc, TransitionRefused):
        # Canceled while we stored results, or taken over after a lost lease.
        log.warning("job %s: %s", job_id, exc)
        return f"superseded:{exc.current}"
    if isinstance(exc, StorageUnavailable):
        log.warning("job %s: %s", job_id, exc)
        return _run_again_later(rt, job, "storage_unavailable", str(exc))
    if faults.is_out_of_memory(exc):
        log.warning("job %s ran out of memory: %s", job_id, exc)
        return _fail(rt, job_id, "out_of_memory", f"the device ran out of memory: {exc}")
    log.error("job %s failed", job_id, exc_info=exc)
    return _fail(rt, job_id, "pipeline_error", f"{type(exc).__name__}: {exc}")


def _fail(rt: Runtime, job_id: str, code: str, message: str) -> str:
    rt.jobs.finish(job_id, JobStatus.FAILED, error={"code": code, "message": message})
    return f"failed:{code}"


def _run_again_later(rt: Runtime, job: Job, code: str, message: str) -> str:
    """A dependency stayed down past the retry budget: hand the job back to the queue for a new
    attempt (counted, like any other), or fail it with ``code`` once attempts are used up."""
    if job.attempts >= rt.settings.max_attempts:
        return _fail(rt, job.id, code, f"{message} (attempt {job.attempts} of {rt.settings.max_attempts})")
    try:
        rt.jobs.transition(job.id, JobStatus.QUEUED, fields={
            "lease_until": "0", "progress": {"fraction": 0.0, "stage": "requeued", "message": message}})
    except TransitionRefused as refused:  # canceled meanwhile
        log.warning("job %s: %s", job.id, refused)
        return f"superseded:{refused.current}"
    from shared.queue import enqueue_job
    from workers.celery_app import app  # the worker's own app; imported here, where it is needed

    enqueue_job(app, rt.settings, job.id, job.kind, job.priority, model_ref=job.params.get("model"),
                redis_client=rt.jobs.redis)
    return f"requeued:{code}"


def load_inputs(rt: Runtime, job: Job) -> dict[str, Image.Image]:
    rt.jobs.set_progress(job.id, 0.0, "loading inputs")
    images = {}
    for role, upload_id in job.inputs.items():
        upload = rt.uploads.get_for_tenant(upload_id, job.tenant)
        if upload is None:
            raise InvalidJobInput(f"input {role!r}: upload {upload_id} no longer exists", code="input_missing")
        data = rt.objects.get_bytes(rt.settings.bucket_uploads, upload.key)
        images[role] = decode_image(data, rt.settings.max_image_pixels).image
    return images


def run_pipeline(rt: Runtime, job: Job, inputs: dict[str, Image.Image]) -> PipelineResult:
    def progress(fraction: float, stage: str, message: str = "") -> None:
        rt.jobs.set_progress(job.id, fraction, stage, message)

    def check_cancel() -> None:
        if rt.jobs.cancel_requested(job.id):
            raise JobCanceled(job.id)

    check_cancel()
    faults.before_pipeline(job.kind, progress)  # does nothing unless ARTFORGE_FAULT_INJECTION is set (tests)
    ctx = JobContext(job_id=job.id, device=rt.settings.device, workspace=S3Workspace(rt, job), models=rt.registry,
                     datasets=S3Datasets(rt, job.tenant))
    return get_pipeline(job.kind)(inputs, job.params, progress, check_cancel, ctx)


class S3Workspace:
    """A job's artifacts under ``{tenant}/{job_id}/artifacts/`` in the results bucket;
    listed ones (sample grids) also appear on the job record."""

    def __init__(self, rt: Runtime, job: Job):
        self.rt, self.job = rt, job

    def _key(self, name: str) -> str:
        return f"{self.job.tenant}/{self.job.id}/artifacts/{name}"

    def save(self, name: str, data: bytes, content_type: str, listed: bool = True) -> None:
        self.rt.objects.put_bytes(self.rt.settings.bucket_results, self._key(name), data, content_type)
        if listed:
            self.rt.jobs.record_artifact(self.job.id, {"name": name, "key": self._key(name),
                                                       "content_type": content_type, "created_at": time.time()})

    def load(self, name: str) -> bytes | None:
        try:
            return self.rt.objects.get_bytes(self.rt.settings.bucket_results, self._key(name))
        except ObjectNotFound:
            return None


def store_results(rt: Runtime, job: Job, result: PipelineResult,
                  inputs: dict[str, Image.Image] | None = None) -> list[dict[str, Any]]:
    """Mark every image, seal its provenance record onto the tenant's chain, and write image,
    C2PA sidecar and record under deterministic keys, several at a time; only the chain step
    is serialised (``workers.provenance.recording``)."""
    rt.jobs.set_progress(job.id, 0.9, "storing", "marking and signing")
    if not result.images:
        return []
    recorder = ResultRecorder(rt, job, result, inputs or {})
    prepared = parallel_map(recorder.prepare, range(len(result.images)), result.images)
    sealed = recorder.seal(prepared)
    return parallel_map(recorder.store, prepared, sealed)


class S3Datasets:
    """The tenant's datasets as the training pipeline reads them.

    A dataset's record names its newest manifest (``manifests/v{n}.json``). The record is read
    once per job attempt and kept, so manifest, manifest hash and images all belong to the same
    version even when images are added to the dataset while the job runs."""

    def __init__(self, rt: Runtime, tenant: str):
        self.rt, self.tenant = rt, tenant
        self._records: dict[str, DatasetRecord] = {}

    def _record(self, dataset_id: str) -> DatasetRecord:
        if dataset_id not in self._records:
            record = self.rt.datasets.get_for_tenant(dataset_id, self.tenant)
            if record is None:
                raise InvalidJobInput(f"dataset {dataset_id} no longer exists", code="unknown_dataset")
            self._records[dataset_id] = record
        return self._records[dataset_id]

    def manifest(self, dataset_id: str) -> dict[str, Any]:
        record = self._record(dataset_id)
        return dict(json.loads(self.rt.objects.get_bytes(self.rt.settings.bucket_datasets, record.manifest_key)))

    def manifest_sha256(self, dataset_id: str) -> str:
        return self._record(dataset_id).manifest_sha256

    def image(self, dataset_id: str, key: str) -> bytes:
        return self.rt.objects.get_bytes(self.rt.settings.bucket_datasets,
                                         dataset_prefix(self.tenant, dataset_id) + key)
