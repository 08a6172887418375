"""Housekeeping's pure parts: settings, tenant policies, the policy request, the beat schedule,
and how an expired result set shows on a job."""

from __future__ import annotations

import math
from typing import Any

import pytest
from marshmallow import ValidationError

from api.representations import job_to_json
from api.schemas import TenantPolicyRequestSchema
from shared.contract import QUEUE_MAINTENANCE, TASK_EXPIRE_RESULTS, TASK_PRUNE_EXPIRED_JOB_KEYS, TASK_RESEND_LOST_JOBS
from shared.jobs import Job
from shared.queue import make_celery
from shared.settings import Settings
from shared.tenants import TenantPolicy, check_retention_days, valid_tenant_name
from workers.housekeeping import CHUNK, _chunks


def test_housekeeping_settings_come_from_the_environment() -> None:
    settings = Settings.from_env({"ARTFORGE_RESULTS_EXPIRE_DAYS": "0.5", "ARTFORGE_HOUSEKEEPING_INTERVAL_S": "7"})
    assert settings.results_expire_days == 0.5
    assert settings.housekeeping_interval_s == 7
    defaults = Settings.from_env({})
    assert defaults.results_expire_days == 0 and defaults.housekeeping_interval_s == 3600


def test_tenant_setting_overrides_the_service_default_and_zero_keeps_forever() -> None:
    assert TenantPolicy("t", None).effective_results_retention_days(default=30) == 30
    assert TenantPolicy("t", 2.5).effective_results_retention_days(default=30) == 2.5
    assert TenantPolicy("t", 0.0).effective_results_retention_days(default=30) == 0


@pytest.mark.parametrize("days", [0, 1, 0.00002, 36500])
def test_retention_accepts_numbers_from_zero(days: float) -> None:
    assert check_retention_days(days) == float(days)


@pytest.mark.parametrize("days", [-1, -0.001, 36501, math.nan, math.inf, "2", True, None])
def test_retention_refuses_anything_else(days: Any) -> None:
    with pytest.raises(ValueError, match="results_retention_days"):
        check_retention_days(days)


@pytest.mark.parametrize(("name", "valid"), [
    ("alice", True), ("team-7_b", True), ("", False), ("a:b", False), ("a/b", False), ("*", False),
    ("x" * 65, False)])
def test_tenant_names_are_safe_in_keys_and_prefixes(name: str, valid: bool) -> None:
    assert valid_tenant_name(name) is valid


@pytest.mark.parametrize("value", [0, 2, 0.5, None])
def test_policy_request_takes_a_number_or_null(value: Any) -> None:
    assert TenantPolicyRequestSchema().load({"results_retention_days": value}) == {"results_retention_days": value}


@pytest.mark.parametrize("body", [
    {"results_retention_days": -1},
    {"results_retention_days": "2"},
    {"results_retention_days": True},
    {"results_retention_days": [1]},
    {"results_retention_days": math.nan},
    {"results_retention_days": 1e9},
    {"results_retention_days": 1, "other": 2},
    {},
])
def test_policy_request_refuses(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TenantPolicyRequestSchema().load(body)


def test_beat_runs_both_housekeeping_tasks_on_the_maintenance_queue() -> None:
    conf = make_celery(Settings(housekeeping_interval_s=42)).conf
    schedule = {entry["task"]: entry for entry in conf.beat_schedule.values()}
    for task in (TASK_PRUNE_EXPIRED_JOB_KEYS, TASK_EXPIRE_RESULTS):
        assert schedule[task]["schedule"] == 42.0
        assert conf.task_routes[task] == {"queue": QUEUE_MAINTENANCE}


def test_beat_looks_for_lost_messages_on_the_maintenance_queue() -> None:
    conf = make_celery(Settings(lost_job_check_s=17)).conf
    schedule = {entry["task"]: entry for entry in conf.beat_schedule.values()}
    assert schedule[TASK_RESEND_LOST_JOBS]["schedule"] == 17.0
    assert conf.task_routes[TASK_RESEND_LOST_JOBS] == {"queue": QUEUE_MAINTENANCE}


def test_job_with_expired_results_lists_none_and_says_when() -> None:
    job = Job.from_hash({"id": "j", "tenant": "t", "kind": "style_transfer", "status": "succeeded",
                         "created_at": "1700000000.0", "results": "[]", "results_expired_at": "1700000100.5"})
    assert job.results_expired_at == 1700000100.5
    shown = job_to_json(job, "http://api", svc=None)  # type: ignore[arg-type]  # no result needs S3
    assert shown["results"] == []
    assert shown["results_expired_at"] == "2023-11-14T22:15:00.500000+00:00"
    kept = Job.from_hash({"id": "j", "tenant": "t", "kind": "style_transfer", "status": "queued",
                          "created_at": "1700000000.0"})
    assert job_to_json(kept, "http://api", svc=None)["results_expired_at"] is None  # type: ignore[arg-type]


def test_keys_are_looked_at_in_bounded_chunks() -> None:
    chunks = list(_chunks(str(i) for i in range(2 * CHUNK + 3)))
    assert [len(c) for c in chunks] == [CHUNK, CHUNK, 3]
    assert list(_chunks([])) == []
