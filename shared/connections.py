"""Clients built from settings. Nothing connects until the first command."""

from __future__ import annotations

import redis

from shared.settings import Settings


def redis_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=15,
    )
