"""API keys: ``af_<key id>_<secret>``, stored hashed in Redis, owned by a tenant.

Only the sha256 of the secret is stored (the secret is 256 random bits, so a slow hash
adds nothing). Verified keys are cached per process for a few seconds to keep Redis off
the hot path; revoking a key therefore takes effect within ``CACHE_S``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import cast

import redis

from shared.jobs import PREFIX

KEY_PREFIX = "af_"
CACHE_S = 5.0


@dataclass(frozen=True)
class Principal:
    tenant: str
    key_id: str
    admin: bool


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    def __init__(self, client: redis.Redis):
        self.redis = client
        self._cache: dict[str, tuple[float, Principal]] = {}

    @staticmethod
    def _key(key_id: str) -> str:
        return f"{PREFIX}apikey:{key_id}"

    def create(self, tenant: str, admin: bool = False) -> tuple[str, Principal]:
        """Returns the full key (shown once) and its principal."""
        if not tenant or not tenant.replace("-", "").replace("_", "").isalnum():
            raise ValueError("a tenant name is letters, digits, '-' and '_'")
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        self.redis.hset(self._key(key_id), mapping={
            "tenant": tenant, "admin": "1" if admin else "0", "secret_sha256": _digest(secret),
            "created_at": repr(time.time())})
        return f"{KEY_PREFIX}{key_id}_{secret}", Principal(tenant, key_id, admin)

    def revoke(self, key_id: str) -> bool:
        return bool(self.redis.delete(self._key(key_id)))

    def verify(self, presented: str) -> Principal | None:
        now = time.monotonic()
        cached = self._cache.get(presented)
        if cached and cached[0] > now:
            return cached[1]
        if not presented.startswith(KEY_PREFIX):
            return None
        key_id, sep, secret = presented[len(KEY_PREFIX):].partition("_")
        if not sep or not key_id or not secret:
            return None
        record = cast(dict[str, str], self.redis.hgetall(self._key(key_id)))
        if not record or not hmac.compare_digest(record.get("secret_sha256", ""), _digest(secret)):
            return None
        principal = Principal(record["tenant"], key_id, record.get("admin") == "1")
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[presented] = (now + CACHE_S, principal)
        return principal
