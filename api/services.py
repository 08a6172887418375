"""What the API's handlers use: settings, stores and the task producer, one set per app."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from flask import current_app, g

from api.auth import KeyStore, Principal
from api.errors import ApiError
from api.event_streams import StreamSlots
from shared.connections import Stores
from shared.queue import make_celery
from shared.settings import Settings


@dataclass(frozen=True)
class Services(Stores):
    keys: KeyStore
    celery: Celery
    stream_slots: StreamSlots


def build_services(settings: Settings) -> Services:
    stores = Stores.from_settings(settings)
    return Services(
        settings=settings,
        jobs=stores.jobs,
        uploads=stores.uploads,
        objects=stores.objects,
        models=stores.models,
        datasets=stores.datasets,
        keys=KeyStore(stores.jobs.redis),
        celery=make_celery(settings, main="artforge-api"),
        stream_slots=StreamSlots(settings.sse_streams_per_process),
    )


def services() -> Services:
    svc: Services = current_app.extensions["artforge"]
    return svc


def principal() -> Principal:
    """The authenticated caller; set by the auth hook before any /v1 handler runs."""
    found: Principal | None = g.get("principal")
    if found is None:
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <api key>'")
    return found
