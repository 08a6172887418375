"""The attempt lifecycle's outcome table (workers/attempt.py), row by row, on a real Redis.

Each job is claimed like a delivered one and run by a stand-in for its pipeline that ends the way
the row says; the job record and the typed Outcome must agree with the table, whether the results
are stored inline or in a background finalize stage (workers.finalizing), as workers do."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from deploy.devstack import Stack
from shared.builtin_models import builtin_models
from shared.jobs import JobStatus, new_job_id
from shared.objects import StorageUnavailable
from workers.attempt import CANCELED, SUCCEEDED, Ending, Outcome, ReadyJob, claim, run_attempts
from workers.finalizing import BackgroundFinalizer, Finalize, run_now
from workers.job_context import InvalidJobInput, JobCanceled
from workers.pipelines.registry import PipelineResult
from workers.runtime import Runtime

PARAMS = {"model": f"abstract@{builtin_models()['abstract'].version}", "count": 2, "seed": 7}


@pytest.fixture(scope="module")
def rt(servers: Stack) -> Runtime:
    return Runtime.from_settings(servers.settings())


STAGES: dict[str, Finalize] = {"inline": run_now, "background": BackgroundFinalizer(backlog=2).submit}
stage: list[Finalize] = [run_now]  # the finalize stage ``attempt`` hands results to, set per test


@pytest.fixture(autouse=True, params=sorted(STAGES))
def finalize_stage(request: pytest.FixtureRequest) -> None:
    """Every row of the table, with either stage."""
    stage[0] = STAGES[request.param]


def claimed(rt: Runtime, params: dict[str, Any] | None = None, attempts: int = 1) -> Any:
    job_id = new_job_id()
    rt.jobs.create(job_id=job_id, tenant="t", key_id="k", kind="creation", params=params or PARAMS, inputs={},
                   priority=4)
    for _ in range(attempts - 1):  # earlier attempts whose worker died: their leases ran out
        rt.jobs.begin_attempt(job_id, "gone", lease_s=60)
        rt.jobs.redis.hset(rt.jobs.job_key(job_id), "lease_until", "0")
    job = claim(rt, job_id)
    assert not isinstance(job, Outcome), job
    return job


def ending_with(produced: Callable[[Runtime, ReadyJob], PipelineResult | Exception]) -> Any:
    def run(rt: Runtime) -> Callable[[list[ReadyJob]], Iterator[tuple[ReadyJob, PipelineResult | Exception]]]:
        def each(jobs: list[ReadyJob]) -> Iterator[tuple[ReadyJob, PipelineResult | Exception]]:
            for ready in jobs:
                yield ready, produced(rt, ready)
        return each
    return run


def attempt(rt: Runtime, job: Any, run: Any, requeued: list[tuple[str, str, int]] | None = None) -> Outcome:
    sent = requeued if requeued is not None else []
    reported: list[tuple[str, Outcome]] = []
    outcomes = run_attempts(rt, [job], run(rt), lambda *message: sent.append(message),
                            lambda done, outcome, _: reported.append((done.id, outcome)), stage[0]).result(timeout=60)
    assert reported == [(job.id, outcomes[job.id])], "every job is reported once, as it ends"
    return outcomes[job.id]


def test_a_returned_pipeline_result_is_stored_and_succeeds(rt: Runtime) -> None:
    job = claimed(rt)
    seen: list[Any] = []

    def result(_: Runtime, ready: ReadyJob) -> PipelineResult:
        seen.append(ready.params)
        return PipelineResult(outputs=[])

    assert attempt(rt, job, ending_with(result)) == SUCCEEDED
    assert rt.jobs.get(job.id).status == JobStatus.SUCCEEDED
    assert seen[0].count == 2 and seen[0].seed == 7, "the run gets the kind's typed params"


@pytest.mark.parametrize(("raised", "outcome", "status", "code"), [
    (JobCanceled("x"), CANCELED, JobStatus.CANCELED, None),
    (InvalidJobInput("no such style", code="unknown_style"), Outcome(Ending.FAILED, "unknown_style"),
     JobStatus.FAILED, "unknown_style"),
    (MemoryError(), Outcome(Ending.FAILED, "out_of_memory"), JobStatus.FAILED, "out_of_memory"),
    (ZeroDivisionError("bug"), Outcome(Ending.FAILED, "pipeline_error"), JobStatus.FAILED, "pipeline_error"),
])
def test_what_ended_the_run_decides_the_jobs_state(rt: Runtime, raised: Exception, outcome: Outcome,
                                                   status: JobStatus, code: str | None) -> None:
    job = claimed(rt)
    assert attempt(rt, job, ending_with(lambda *_: raised)) == outcome
    record = rt.jobs.get(job.id)
    assert record.status == status and (record.error or {}).get("code") == code


def test_storage_down_past_the_budget_requeues_then_fails_out_of_attempts(rt: Runtime) -> None:
    requeued: list[tuple[str, str, int]] = []
    job = claimed(rt)
    outcome = attempt(rt, job, ending_with(lambda *_: StorageUnavailable("S3 down")), requeued)
    assert outcome == Outcome(Ending.REQUEUED, "storage_unavailable") and str(outcome) == "requeued:storage_unavailable"
    assert requeued == [(job.id, "creation", 4)] and rt.jobs.get(job.id).status == JobStatus.QUEUED

    last = claimed(rt, attempts=rt.settings.max_attempts)
    assert attempt(rt, last, ending_with(lambda *_: StorageUnavailable("S3 down")), requeued) == Outcome(
        Ending.FAILED, "storage_unavailable")
    assert len(requeued) == 1 and rt.jobs.get(last.id).error["code"] == "storage_unavailable"


def test_a_job_finished_elsewhere_meanwhile_is_superseded(rt: Runtime) -> None:
    job = claimed(rt)

    def canceled_meanwhile(rt: Runtime, ready: ReadyJob) -> PipelineResult:
        rt.jobs.finish(ready.job.id, JobStatus.CANCELED, message="canceled on request")
        return PipelineResult(outputs=[])

    assert attempt(rt, job, ending_with(canceled_meanwhile)) == Outcome(Ending.SUPERSEDED, "canceled")
    assert rt.jobs.get(job.id).status == JobStatus.CANCELED


def must_not_run(_: Runtime, ready: ReadyJob) -> PipelineResult:
    raise AssertionError(f"job {ready.job.id} ran")


def test_params_that_do_not_fit_the_kind_fail_without_running(rt: Runtime) -> None:
    job = claimed(rt, params={**PARAMS, "colour": "red"})
    assert attempt(rt, job, ending_with(must_not_run)) == Outcome(Ending.FAILED, "invalid_parameters")
    assert "colour" in rt.jobs.get(job.id).error["message"]


def test_a_job_begun_too_often_fails_without_running(rt: Runtime) -> None:
    job = claimed(rt, attempts=rt.settings.max_attempts + 1)
    assert attempt(rt, job, ending_with(must_not_run)) == Outcome(Ending.FAILED, "too_many_attempts")


def test_a_run_that_gives_no_result_for_a_job_does_not_leave_it_running(rt: Runtime) -> None:
    job = claimed(rt)
    assert attempt(rt, job, lambda _: lambda jobs: iter(())) == Outcome(Ending.FAILED, "pipeline_error")
    assert rt.jobs.get(job.id).status == JobStatus.FAILED


def test_a_second_delivery_is_skipped(rt: Runtime) -> None:
    job = claimed(rt)
    again = claim(rt, job.id)
    assert isinstance(again, Outcome) and again.ending == Ending.SKIPPED


def test_a_failure_while_settling_one_job_does_not_hold_up_the_others(rt: Runtime) -> None:
    first, second = claimed(rt), claimed(rt)

    def report(done: Any, outcome: Outcome, _: float) -> None:
        if done.id == first.id:
            raise ConnectionError("Redis went away while the first job was reported")

    outcomes = run_attempts(rt, [first, second], ending_with(lambda *_: PipelineResult(outputs=[]))(rt),
                            lambda *message: None, report, stage[0]).result(timeout=60)
    assert outcomes == {first.id: SUCCEEDED, second.id: SUCCEEDED}
    assert rt.jobs.get(second.id).status == JobStatus.SUCCEEDED
