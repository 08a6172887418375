"""Retraining schedules (admin keys): a model retrains on its dataset on a timetable, and the
new version is promoted only when the promotion gate finds it better."""

from __future__ import annotations

import re
import time
from typing import Any

from flask_smorest import Blueprint

from api.errors import ApiError
from api.job_kinds import validate_job
from api.schemas import ScheduleListSchema, ScheduleRequestSchema, ScheduleSchema
from api.services import Services, principal, services
from shared.jobs import JobStatus
from shared.schedules import SCHEDULE_NAME, ScheduleSpec, ScheduleStore

blp = Blueprint("schedules", __name__, url_prefix="/v1/schedules",
                description="Scheduled retraining with a promotion gate (admin)")

# The training target that retrains a model, by the task its card names.
TARGET_BY_TASK = {"creation": "gan", "restoration": "restoration"}
RUNS_SHOWN = 10


def admin_schedules() -> ScheduleStore:
    if not principal().admin:
        raise ApiError(403, "forbidden", "schedules are managed with an admin key")
    svc = services()
    return ScheduleStore(svc.jobs.redis, svc.celery)


def own_schedule(store: ScheduleStore, name: str) -> ScheduleSpec:
    spec = store.get(principal().tenant, name)
    if spec is None:
        raise ApiError(404, "not_found", f"no schedule {name}")
    return spec


@blp.route("", methods=["GET"])
@blp.response(200, ScheduleListSchema)
@blp.alt_response(403, description="not an admin key")
def list_schedules() -> dict[str, Any]:
    store, tenant = admin_schedules(), principal().tenant
    specs = [store.get(tenant, name) for name in store.names(tenant)]
    return {"items": [schedule_json(spec, store, services()) for spec in specs if spec is not None]}


@blp.route("/<name>", methods=["GET"])
@blp.response(200, ScheduleSchema)
@blp.alt_response(403, description="not an admin key")
@blp.alt_response(404, description="no such schedule")
def get_schedule(name: str) -> dict[str, Any]:
    store = admin_schedules()
    return schedule_json(own_schedule(store, name), store, services())


@blp.route("/<name>", methods=["PUT"])
@blp.arguments(ScheduleRequestSchema)
@blp.response(200, ScheduleSchema)
@blp.alt_response(403, description="not an admin key")
@blp.alt_response(422, description="bad name, timing or training parameters; unknown model or dataset")
def put_schedule(body: dict[str, Any], name: str) -> dict[str, Any]:
    store, who, svc = admin_schedules(), principal(), services()
    if not re.fullmatch(SCHEDULE_NAME, name):
        raise ApiError(422, "invalid_parameters", "schedule names are lowercase letters, digits and '-'",
                       {"fields": {"name": ["lowercase letters, digits and '-', at most 63"]}})
    training = validated_training(body, svc)
    earlier = store.get(who.tenant, name)
    now = time.time()
    spec = ScheduleSpec(name=name, tenant=who.tenant, model=body["model"], dataset=body["dataset"],
                        every_s=body.get("every_s"), cron=body.get("cron"), training=training,
                        enabled=body["enabled"], created_at=earlier.created_at if earlier else now, updated_at=now)
    store.save(spec)
    return schedule_json(spec, store, svc)


@blp.route("/<name>", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(403, description="not an admin key")
@blp.alt_response(404, description="no such schedule")
def delete_schedule(name: str) -> None:
    store = admin_schedules()
    if not store.delete(principal().tenant, name):
        raise ApiError(404, "not_found", f"no schedule {name}")


def validated_training(body: dict[str, Any], svc: Services) -> dict[str, Any]:
    """The training job's parameters, checked now as a training job's would be at submission."""
    own = svc.models.for_tenant(principal().tenant).own
    promoted = own.promoted(body["model"])
    card = own.card(body["model"], promoted) if promoted is not None else None
    if card is None:
        raise ApiError(422, "unknown_model", f"no trained model {body['model']}; train a first version with a "
                                             "'training' job, then schedule its retraining",
                       {"fields": {"model": ["no promoted version"]}})
    target = TARGET_BY_TASK.get(card.get("task", ""))
    if target is None:
        raise ApiError(422, "unknown_model", f"{body['model']} is not a model that retrains",
                       {"fields": {"model": [f"task {card.get('task')!r}"]}})
    params = {"resolution": card.get("resolution"), **body["training"], "target": target, "model": body["model"],
              "dataset": body["dataset"], "init_from": body["init_from"],
              "promotion_margin": body["promotion_margin"], "promote": "if_better"}
    clean, _ = validate_job("training", params, {}, principal(), svc)
    return clean


def schedule_json(spec: ScheduleSpec, store: ScheduleStore, svc: Services) -> dict[str, Any]:
    runs = [with_training_result(run, spec, svc) for run in store.runs(spec.tenant, spec.name, RUNS_SHOWN)]
    launch = store.last_launch(spec.tenant, spec.name)
    last_training = with_training_result(launch, spec, svc) if launch else None
    return {"name": spec.name, "model": spec.model, "dataset": spec.dataset, "every_s": spec.every_s,
            "cron": spec.cron, "enabled": spec.enabled, "training": spec.training, "created_at": spec.created_at,
            "updated_at": spec.updated_at, "next_run_at": store.next_run_at(spec),
            "last_run": runs[0] if runs else None, "runs": runs, "last_training": last_training}


def with_training_result(run: dict[str, Any], spec: ScheduleSpec, svc: Services) -> dict[str, Any]:
    """A run that started a training job, with where that job stands: its status, the version
    it registered and the promotion gate's decision on it."""
    if not run.get("job_id"):
        return run
    job = svc.jobs.get(run["job_id"])
    result: dict[str, Any] = {"job_status": job.status.value if job else "expired"}
    if job is not None and job.status == JobStatus.SUCCEEDED:
        own = svc.models.for_tenant(spec.tenant).own
        for version in reversed(own.versions(spec.model)):
            card = own.card(spec.model, version) or {}
            if card.get("training", {}).get("job_id") == job.id:
                promoted = any(entry["version"] == version for entry in own.history(spec.model))
                result.update(version=version, gate=card.get("promotion_gate"), promoted=promoted,
                              serving=own.promoted(spec.model) == version)
                break
    return {**run, "training_result": result}
