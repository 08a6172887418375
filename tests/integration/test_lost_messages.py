"""Queued jobs whose broker message was lost are sent again; the others are left alone.

A Redis of this module's own, so no worker of the test session takes the messages looked at.
The messages are real Celery messages (``shared.queue.enqueue_job``), read back from the Redis
transport's own lists and ``unacked`` hash (``shared.queue.job_ids_in_broker``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery

from deploy.devstack import Stack
from shared.contract import QUEUE_INFERENCE
from shared.jobs import QUEUED_INDEX, JobStatus, new_job_id
from shared.queue import enqueue_job, job_ids_in_broker, make_celery
from tests.conftest import stack_on
from workers.maintenance import resend_lost_jobs
from workers.runtime import Runtime


@pytest.fixture(scope="module")
def broker(servers: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Runtime, Celery]]:
    settings = stack_on(servers, tmp_path_factory.mktemp("lost")).settings().model_copy(update={"lost_job_after_s": 0})
    app = make_celery(settings)
    yield Runtime.from_settings(settings), app
    app.close()


def queued_job(rt: Runtime, kind: str = "style_transfer", priority: int = 5) -> str:
    job_id = new_job_id()
    rt.jobs.create(job_id=job_id, tenant="t", key_id="k", kind=kind, params={}, inputs={}, priority=priority)
    return job_id


def test_lost_messages_are_sent_again_once(broker: tuple[Runtime, Celery]) -> None:
    rt, app = broker
    sent: list[tuple[str, str, int]] = []

    def enqueue(job_id: str, kind: str, priority: int) -> None:
        sent.append((job_id, kind, priority))
        enqueue_job(app, rt.settings, job_id, kind, priority)

    waiting = queued_job(rt, priority=0)
    enqueue_job(app, rt.settings, waiting, "style_transfer", 0)
    taken = queued_job(rt, priority=9)
    enqueue_job(app, rt.settings, taken, "style_transfer", 9)
    training = queued_job(rt, kind="training")
    enqueue_job(app, rt.settings, training, "training", 0)
    lost = queued_job(rt, priority=7)  # a record and no message: the API died in between
    running = queued_job(rt)
    rt.jobs.begin_attempt(running, "w", lease_s=60)
    gone = new_job_id()
    rt.jobs.redis.zadd(QUEUED_INDEX, {gone: 1.0})  # an index entry whose record is gone

    # A consumer holds ``taken`` (priority 9 comes first), not acked: its message is in ``unacked``
    # until the connection closes, when kombu puts it back.
    with app.connection_for_read() as conn:
        held = conn.default_channel.basic_get(queue=QUEUE_INFERENCE, no_ack=False)
        assert held is not None and held.payload[1] == {"job_id": taken}
        assert rt.jobs.redis.hlen("unacked") == 1
        waiting_since = rt.jobs.redis.zscore(QUEUED_INDEX, waiting)
        before = job_ids_in_broker(rt.jobs.redis)
        assert {waiting, taken, training} <= before and not {lost, running} & before

        assert resend_lost_jobs(rt, enqueue, lambda: job_ids_in_broker(rt.jobs.redis)) == [lost]
    assert sent == [(lost, "style_transfer", 7)]
    assert lost in job_ids_in_broker(rt.jobs.redis)
    assert rt.jobs.get(lost).status == JobStatus.QUEUED
    assert rt.jobs.redis.zscore(QUEUED_INDEX, gone) is None
    # Found in the broker, its clock restarts: a backlog longer than a sweep's batch is gone through in turn.
    assert rt.jobs.redis.zscore(QUEUED_INDEX, waiting) > waiting_since
    # Its message is there now: the next sweep sends nothing.
    assert resend_lost_jobs(rt, enqueue, lambda: job_ids_in_broker(rt.jobs.redis)) == []
    assert len(sent) == 1


def test_recently_queued_jobs_are_not_looked_at(broker: tuple[Runtime, Celery]) -> None:
    rt, _ = broker
    patient = Runtime.from_settings(rt.settings.model_copy(update={"lost_job_after_s": 3600}))
    queued_job(patient)  # no message, but queued just now: it may be on its way

    def broker_listing() -> set[str]:
        raise AssertionError("the broker need not be read when no job is old enough")

    assert resend_lost_jobs(patient, lambda *args: None, broker_listing) == []
