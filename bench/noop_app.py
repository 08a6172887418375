"""The raw-Celery baseline of ``bench.round_trip``: one task that only sets a Redis key.

It uses the service's Celery configuration and broker; its worker is started like the
service's (prefork, concurrency 1, prefetch 1) on a queue of its own:
``celery -A bench.noop_app worker -Q bench-noop``. No result backend: the sender polls the key.
"""

from __future__ import annotations

import functools

import redis

from shared.connections import redis_client
from shared.queue import make_celery
from shared.settings import Settings

NOOP_TASK = "bench.noop"
NOOP_QUEUE = "bench-noop"
DONE_PREFIX = "bench:noop:"

settings = Settings.from_env()
app = make_celery(settings, main="bench-noop")


@functools.cache
def _redis() -> redis.Redis:
    # Made on first use, so each forked pool child has its own connection.
    return redis_client(settings)


@app.task(name=NOOP_TASK, ignore_result=True)
def noop(key: str) -> None:
    _redis().set(DONE_PREFIX + key, "1", ex=300)
