"""Per-process resources of a worker: settings and store clients, created on first use.

Nothing here connects at import time; a forked pool child builds its own clients.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass

from shared.connections import redis_client
from shared.jobs import JobStore
from shared.objects import ObjectStore
from shared.settings import Settings
from shared.uploads import UploadStore


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    jobs: JobStore
    uploads: UploadStore
    objects: ObjectStore

    @property
    def worker_id(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}"


@functools.cache
def runtime() -> Runtime:
    settings = Settings.from_env()
    client = redis_client(settings)
    return Runtime(
        settings=settings,
        jobs=JobStore(client, settings.finished_job_ttl_s),
        uploads=UploadStore(client),
        objects=ObjectStore(settings),
    )


def reset_after_fork() -> None:
    """A forked child must not share its parent's sockets."""
    runtime.cache_clear()
