"""One attempt at a job: claim it, keep its lease alive, run its pipeline, store, settle.

Every path ends in a state in the job record, and in an ``Outcome`` for logs, metrics and tests:

  what happened                            the job record                        Outcome
  ---------------------------------------  ------------------------------------  ----------------------------
  begin_attempt refused (a duplicate       unchanged                             skipped:<reason>
  delivery: finished, canceled, gone, or
  alive elsewhere)
  begun more often than max_attempts       failed / too_many_attempts            failed:too_many_attempts
  the pipeline returns                     results stored (with an analysis      succeeded
                                           report per image where params ask
                                           ``analyze``), then succeeded
  the cancel check fires                   canceled (nothing stored)             canceled
  InvalidJobInput, or params that do not   failed with its code, no other        failed:<code>
  fit the kind's class                     attempt
  the soft time limit                      failed / timeout                      failed:timeout
  the device runs out of memory            failed / out_of_memory (creation      failed:out_of_memory
                                           first retries at a smaller batch)
  S3 stays down past the worker's retry    queued again for a new attempt        requeued:storage_unavailable
  budget (ARTFORGE_S3_RETRY_*)             (``requeue``), or, out of attempts,   or failed:storage_unavailable
                                           failed / storage_unavailable
  a transition refused while settling      unchanged                             superseded:<state found>
  (canceled meanwhile, or taken over
  after a lost lease)
  any other exception                      failed / pipeline_error               failed:pipeline_error
  the process dies (mid-pipeline, or mid-   running until the lease expires; the  (none)
  finalize with its message acknowledged)  reaper requeues or fails it

Once the pipeline has returned, the rest (analysis reports, marking, signing, storing, the last
transition) is handed to a finalize stage (``workers.finalizing``), so a worker takes its next
job meanwhile; each job's lease is renewed until it is settled. Results are stored before the job
turns ``succeeded``: while S3 is briefly down the stage retries its writes with backoff, keeping
the lease, so the job stays ``running`` meanwhile.

The same steps serve a job alone and jobs that share one run (``Batching``: creation jobs for the
same model share a generator forward, ``workers.creation_batching``): each job is claimed, kept
alive by its own lease, checked, run, stored and settled by the rules above, whatever the others
do. What the attempt cannot know is injected by the caller (``workers.tasks``): how to send a
job's message again (``requeue``), which kinds batch, and what to do once a joined job ended.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from celery.exceptions import SoftTimeLimitExceeded
from PIL import Image

from shared.contract import parse_params
from shared.job_params import JobParams
from shared.jobs import Job, JobStatus, TransitionRefused
from shared.logs import log_context
from shared.objects import RetryPolicy, StorageUnavailable
from workers import faults, telemetry
from workers.finalizing import Finalize, run_now
from workers.housekeeping import ResultsLedger
from workers.job_context import CancelCheck, InvalidJobInput, JobCanceled, JobContext, ProgressFn
from workers.job_storage import job_context, load_inputs, store_results
from workers.leases import LeaseKeeper
from workers.pipelines import get_pipeline
from workers.pipelines.analysis import attach_reports
from workers.pipelines.registry import PipelineResult
from workers.runtime import Runtime

log = logging.getLogger(__name__)

# Sends a job's message again: (job_id, kind, priority), as the reapers' re-send does.
Requeue = Callable[[str, str, int], None]


class Ending(StrEnum):
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"
    FAILED = "failed"
    REQUEUED = "requeued"
    SUPERSEDED = "superseded"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended (the table above). ``detail``: the error code (failed, requeued), the
    state the job was found in (superseded), or why it was not begun (skipped)."""

    ending: Ending
    detail: str | None = None

    def __str__(self) -> str:
        return f"{self.ending}:{self.detail}" if self.detail else str(self.ending)


SUCCEEDED = Outcome(Ending.SUCCEEDED)
CANCELED = Outcome(Ending.CANCELED)


@dataclass(frozen=True)
class ReadyJob:
    """A claimed job, checked and with its inputs loaded, as the code that runs it sees it."""

    job: Job
    params: JobParams
    inputs: dict[str, Image.Image]
    progress: ProgressFn
    check_cancel: CancelCheck
    context: JobContext


# Runs the ready jobs of an attempt: yields each of them once, with its result or with the
# exception that ended it (raised where a job alone would have raised it).
Run = Callable[[list[ReadyJob]], Iterable[tuple[ReadyJob, PipelineResult | Exception]]]


class Batching(Protocol):
    """How jobs of one kind share an attempt: ``gather`` claims (``claim``) the jobs that join a
    leader's run, ``run`` runs them together. ``gather`` returning none leaves the leader alone."""

    def gather(self, rt: Runtime, leader: Job) -> list[Job]: ...

    def run(self, rt: Runtime, jobs: list[ReadyJob]) -> Iterable[tuple[ReadyJob, PipelineResult | Exception]]: ...


def start_job(rt: Runtime, job_id: str, requeue: Requeue, *, batching: Mapping[str, Batching] | None = None,
              on_finished: Callable[[str], None] | None = None, finalize: Finalize = run_now) -> Future[Outcome]:
    """Run one attempt of ``job_id``: claim it, and run its pipeline here; its results are stored and
    its job settled by ``finalize`` (``workers.finalizing``: inline by default, or a background
    stage while this process takes its next job). The future holds the leader's outcome.

    Every log line of the attempt carries the job's id, tenant and the request id it was submitted
    with; the attempt is counted and timed in ``workers.telemetry``. Where ``batching`` has an entry
    for the job's kind, queued jobs it gathers join the attempt; each of those is logged and counted
    on its own. ``on_finished(job_id)`` is called once each job's attempt has ended, in whatever state."""
    with log_context(job_id=job_id):
        leader = claim(rt, job_id)
        if isinstance(leader, Outcome):
            _notify(on_finished, job_id)
            return run_now(lambda: leader)
    rt = retrying_runtime(rt)
    batcher = (batching or {}).get(leader.kind)
    joined = batcher.gather(rt, leader) if batcher is not None and _may_run(rt, leader) else []
    run: Run = functools.partial(batcher.run, rt) if batcher is not None and joined else run_each_alone

    def report(job: Job, outcome: Outcome, elapsed: float) -> None:
        telemetry.record_attempt(job.kind, outcome.ending, outcome.detail, elapsed)
        batch_note = f" (in job {leader.id}'s batch)" if job.id != leader.id else ""
        log.info("job %s: %s attempt %d %s in %.2f s%s", job.id, job.kind, job.attempts, outcome, elapsed, batch_note)
        _notify(on_finished, job.id)

    outcomes = run_attempts(rt, [leader, *joined], run, requeue, report, finalize)
    leader_outcome: Future[Outcome] = Future()
    outcomes.add_done_callback(lambda done: _pass_on(done, leader_outcome, leader.id))
    return leader_outcome


def execute_job(rt: Runtime, job_id: str, requeue: Requeue, **options: Any) -> Outcome:
    """``start_job``, everything settled before it returns: the leader's outcome."""
    return start_job(rt, job_id, requeue, **options).result()


def _notify(on_finished: Callable[[str], None] | None, job_id: str) -> None:
    if on_finished is None:
        return
    try:
        on_finished(job_id)
    except Exception:  # e.g. the webhook's task could not be sent: never the other jobs' concern
        log.warning("after job %s finished", job_id, exc_info=True)


def _pass_on(done: Future[dict[str, Outcome]], into: Future[Outcome], job_id: str) -> None:
    if done.exception() is not None:
        into.set_exception(done.exception())  # type: ignore[arg-type]
    else:
        into.set_result(done.result()[job_id])


def claim(rt: Runtime, job_id: str) -> Job | Outcome:
    """Begin the job's attempt here (``JobStore.begin_attempt``, atomic), or the ``skipped`` outcome
    where it is refused: a duplicate delivery, or a job canceled, finished, gone or alive elsewhere."""
    try:
        job = rt.jobs.begin_attempt(job_id, rt.worker_id, rt.settings.lease_s)
    except TransitionRefused as refused:
        log.info("job %s not started: %s", job_id, refused)
        return Outcome(Ending.SKIPPED, refused.reason)
    with job_log_context(job):
        log.info("job %s: %s attempt %d started", job.id, job.kind, job.attempts)
        telemetry.record_attempt_started(job.kind)
    return job


def run_each_alone(jobs: list[ReadyJob]) -> Iterator[tuple[ReadyJob, PipelineResult | Exception]]:
    """Each job through its kind's pipeline, on its own."""
    for ready in jobs:
        try:
            result = get_pipeline(ready.job.kind)(ready.inputs, ready.params, ready.progress, ready.check_cancel,
                                                  ready.context)
        except Exception as exc:
            yield ready, exc
        else:
            yield ready, result


def run_attempts(rt: Runtime, jobs: list[Job], run: Run, requeue: Requeue,
                 report: Callable[[Job, Outcome, float], None],
                 finalize: Finalize = run_now) -> Future[dict[str, Outcome]]:
    """The claimed ``jobs`` from their attempt to their outcome, each under its own lease: checked
    (attempts left, not canceled, fault hook), params read, inputs loaded; then ``run`` makes each
    one's result, handed to ``finalize`` to be stored and settled as it comes. ``report(job,
    outcome, seconds)`` is called once per job as it ends. The future holds every job's outcome
    once the last is settled; the leases are renewed until then."""
    started = time.monotonic()
    outcomes: dict[str, Outcome] = {}
    keeper = LeaseKeeper(rt, *(job.id for job in jobs)).start()

    def settled(job: Job, outcome: Outcome) -> None:
        keeper.release(job.id)
        outcomes[job.id] = outcome
        report(job, outcome, time.monotonic() - started)

    def store_and_settle(done: ReadyJob, produced: PipelineResult | Exception) -> None:
        with job_log_context(done.job):
            try:
                faults.before_store(done.job.kind, done.progress)  # tests only, as before_pipeline
                settled(done.job, _store_and_settle(rt, done, produced, requeue))
            except Exception:  # settling itself failed (Redis gone): the next steps still run
                log.exception("job %s: could not settle its attempt", done.job.id)

    def close() -> dict[str, Outcome]:
        try:
            for left in ready:
                if left.job.id not in outcomes:  # a run that skipped a job must not leave it running
                    with job_log_context(left.job):
                        settled(left.job, settle_failure(rt, left.job, RuntimeError("the run gave no result"),
                                                         requeue))
        finally:
            keeper.stop()  # a job still unsettled is left to its lease and the reaper
        return outcomes

    ready: list[ReadyJob] = []
    try:
        for job in jobs:
            with job_log_context(job):
                if not _may_run(rt, job):
                    settled(job, _fail(rt, job.id, "too_many_attempts",
                                       f"gave up after {rt.settings.max_attempts} attempts that did not finish"))
                    continue
                try:
                    ready.append(_prepare(rt, job))
                except Exception as exc:
                    settled(job, settle_failure(rt, job, exc, requeue))
        for done, produced in run(ready):
            finalize(functools.partial(store_and_settle, done, produced))
    except BaseException:
        # What was handed over is still stored under its leases; the rest is left to the reaper.
        finalize(keeper.stop)
        raise
    return finalize(close)


@functools.cache
def retrying_runtime(rt: Runtime) -> Runtime:
    """``rt`` with an object store that rides out a short S3 outage (``shared.objects.RetryPolicy``);
    one per process, so its model cache lives as long as the process."""
    return dataclasses.replace(rt, objects=rt.objects.with_retries(RetryPolicy.from_settings(rt.settings)))


@contextlib.contextmanager
def job_log_context(job: Job) -> Iterator[None]:
    with log_context(job_id=job.id, tenant=job.tenant, request_id=job.request_id):
        yield


def _may_run(rt: Runtime, job: Job) -> bool:
    """False for a job begun more often than ``max_attempts``: its earlier attempts never finished."""
    return job.attempts <= rt.settings.max_attempts


def _prepare(rt: Runtime, job: Job) -> ReadyJob:
    def progress(fraction: float, stage: str, message: str = "") -> None:
        rt.jobs.set_progress(job.id, fraction, stage, message)

    def check_cancel() -> None:
        if rt.jobs.cancel_requested(job.id):
            raise JobCanceled(job.id)

    check_cancel()
    faults.before_pipeline(job.kind, progress)  # does nothing unless ARTFORGE_FAULT_INJECTION is set (tests)
    try:
        params = parse_params(job.kind, job.params)
    except (TypeError, ValueError) as exc:
        raise InvalidJobInput(f"the job's parameters do not fit a {job.kind} job: {exc}",
                              code="invalid_parameters") from None
    return ReadyJob(job, params, load_inputs(rt, job), progress, check_cancel, job_context(rt, job))


def _store_and_settle(rt: Runtime, ready: ReadyJob, produced: PipelineResult | Exception,
                      requeue: Requeue) -> Outcome:
    job = ready.job
    if isinstance(produced, Exception):
        return settle_failure(rt, job, produced, requeue)
    try:
        ready.check_cancel()
        if getattr(ready.params, "analyze", False):  # a report per image result (creation, style, restoration)
            produced = attach_reports(produced, ready.context, ready.progress, ready.check_cancel)
        results = store_results(rt, job, produced, ready.inputs)
        if results:
            # Entered before the transition: should this attempt die now, the stored objects
            # are still expired in time (a rerun enters the job again, later).
            ResultsLedger(rt.jobs.redis).record(job.tenant, job.id, time.time())
        rt.jobs.finish(job.id, JobStatus.SUCCEEDED, results=results)
        return SUCCEEDED
    except Exception as exc:
        return settle_failure(rt, job, exc, requeue)


def settle_failure(rt: Runtime, job: Job, exc: Exception, requeue: Requeue) -> Outcome:
    """The job's state after ``exc`` ended its attempt (the table above)."""
    job_id = job.id
    if isinstance(exc, JobCanceled):
        rt.jobs.finish(job_id, JobStatus.CANCELED, message="canceled on request")
        return CANCELED
    if isinstance(exc, InvalidJobInput):
        return _fail(rt, job_id, exc.code, str(exc))
    if isinstance(exc, SoftTimeLimitExceeded):
        return _fail(rt, job_id, "timeout", "the job ran past its time limit")
    if isinstance(exc, TransitionRefused):
        # Canceled while we stored results, or taken over after a lost lease.
        log.warning("job %s: %s", job_id, exc)
        return Outcome(Ending.SUPERSEDED, exc.current)
    if isinstance(exc, StorageUnavailable):
        log.warning("job %s: %s", job_id, exc)
        return _run_again_later(rt, job, "storage_unavailable", str(exc), requeue)
    if faults.is_out_of_memory(exc):
        log.warning("job %s ran out of memory: %s", job_id, exc)
        return _fail(rt, job_id, "out_of_memory", f"the device ran out of memory: {exc}")
    log.error("job %s failed", job_id, exc_info=exc)
    return _fail(rt, job_id, "pipeline_error", f"{type(exc).__name__}: {exc}")


def _fail(rt: Runtime, job_id: str, code: str, message: str) -> Outcome:
    rt.jobs.finish(job_id, JobStatus.FAILED, error={"code": code, "message": message})
    return Outcome(Ending.FAILED, code)


def _run_again_later(rt: Runtime, job: Job, code: str, message: str, requeue: Requeue) -> Outcome:
    """A dependency stayed down past the retry budget: hand the job back to the queue for a new
    attempt (counted, like any other), or fail it with ``code`` once attempts are used up."""
    if job.attempts >= rt.settings.max_attempts:
        return _fail(rt, job.id, code, f"{message} (attempt {job.attempts} of {rt.settings.max_attempts})")
    try:
        rt.jobs.transition(job.id, JobStatus.QUEUED, fields={
            "lease_until": "0", "progress": {"fraction": 0.0, "stage": "requeued", "message": message}})
    except TransitionRefused as refused:  # canceled meanwhile
        log.warning("job %s: %s", job.id, refused)
        return Outcome(Ending.SUPERSEDED, refused.current)
    requeue(job.id, job.kind, job.priority)
    return Outcome(Ending.REQUEUED, code)
