"""Per-process resources of a worker: settings and store clients, created on first use.

Nothing here connects at import time; a forked pool child builds its own clients.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import fields

from shared.connections import Stores
from shared.settings import Settings
from workers.registry import ModelRegistry


class Runtime(Stores):
    @property
    def worker_id(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    @functools.cached_property
    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.objects, self.models, self.settings.bucket_models)

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        base = Stores.from_settings(settings)
        return cls(**{f.name: getattr(base, f.name) for f in fields(Stores)})


@functools.cache
def runtime() -> Runtime:
    return Runtime.from_settings(Settings.from_env())


def reset_after_fork() -> None:
    """A forked child must not share its parent's sockets."""
    runtime.cache_clear()
