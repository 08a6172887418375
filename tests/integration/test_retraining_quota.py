"""A retraining schedule's run respects the tenant's training quota, as a submission does.

A Redis of this module's own (no beat of the test session should see the schedule); the
built-in procedural dataset, so no S3 is read.
"""

from __future__ import annotations

import pytest

from deploy.devstack import Stack
from shared.jobs import JobStatus, new_job_id
from shared.queue import make_celery
from shared.quotas import ActiveJobQuota
from shared.schedules import ScheduleSpec, ScheduleStore
from tests.conftest import stack_on
from workers.retraining import run_schedule
from workers.runtime import Runtime

TENANT = "acme"


@pytest.fixture(scope="module")
def rt(servers: Stack, tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    stack = stack_on(servers, tmp_path_factory.mktemp("retrain-quota"))
    return Runtime.from_settings(stack.settings().model_copy(update={"max_active_training_jobs_per_tenant": 1}))


def submitted_training_job(rt: Runtime, quota: ActiveJobQuota) -> str:
    """A training job as the API makes one: a quota slot, then the record."""
    job_id = new_job_id()
    assert quota.claim(TENANT, "training", job_id).granted
    rt.jobs.create(job_id=job_id, tenant=TENANT, key_id="k", kind="training", params={}, inputs={})
    return job_id


def test_scheduled_run_waits_for_a_free_training_slot_and_then_takes_one(rt: Runtime) -> None:
    schedules = ScheduleStore(rt.jobs.redis, make_celery(rt.settings))
    schedules.save(ScheduleSpec(name="nightly", tenant=TENANT, model="landscapes", dataset="procedural",
                                every_s=3600, cron=None, training={"per_style": 8, "resolution": 32, "seed": 0}))
    quota = ActiveJobQuota.from_settings(rt.jobs.redis, rt.settings)
    sent: list[tuple[str, str, int]] = []

    def enqueue(*args: object) -> None:
        sent.append(args)  # type: ignore[arg-type]

    busy = submitted_training_job(rt, quota)
    run = run_schedule(rt, schedules, TENANT, "nightly", enqueue)
    assert run["outcome"] == "skipped" and "the limit is 1" in run["reason"], run
    assert sent == [] and [job.id for job in rt.jobs.list_for_tenant(TENANT)[0]] == [busy]  # nothing created

    rt.jobs.finish(busy, JobStatus.CANCELED)
    run = run_schedule(rt, schedules, TENANT, "nightly", enqueue)
    assert run["outcome"] == "training", run
    assert sent == [(run["job_id"], "training", 0)]
    # The scheduled job holds the slot now: a submission is refused until it ends.
    refused = quota.claim(TENANT, "training", new_job_id())
    assert not refused.granted and refused.active == 1
