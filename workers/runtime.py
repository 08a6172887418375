"""Per-process resources of a worker: settings and store clients, created on first use.

Nothing here connects at import time; a forked pool child builds its own clients.
"""

from __future__ import annotations

import functools
import os
import socket

from shared.connections import Stores
from shared.settings import Settings


class Runtime(Stores):
    @property
    def worker_id(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}"


@functools.cache
def runtime() -> Runtime:
    base = Stores.from_settings(Settings.from_env())
    return Runtime(settings=base.settings, jobs=base.jobs, uploads=base.uploads, objects=base.objects)


def reset_after_fork() -> None:
    """A forked child must not share its parent's sockets."""
    runtime.cache_clear()
