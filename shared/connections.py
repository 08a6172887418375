"""Clients and stores built from settings. Nothing connects until the first command."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from shared.dataset_store import DatasetStore
from shared.debian_images import manifest_path
from shared.jobs import JobStore
from shared.models import ModelCatalogs
from shared.objects import ObjectStore
from shared.settings import Settings
from shared.uploads import UploadStore


def redis_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=15,
    )


@dataclass(frozen=True)
class Stores:
    """The stores both the API and the workers use, sharing one Redis connection pool."""

    settings: Settings
    jobs: JobStore
    uploads: UploadStore
    objects: ObjectStore
    models: ModelCatalogs
    datasets: DatasetStore

    @classmethod
    def from_settings(cls, settings: Settings) -> Stores:
        client = redis_client(settings)
        return cls(settings=settings, jobs=JobStore(client, settings.finished_job_ttl_s),
                   uploads=UploadStore(client), objects=ObjectStore(settings), models=ModelCatalogs(client),
                   datasets=DatasetStore(client, manifest_path(settings.debian_images_manifest)))
