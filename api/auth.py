"""API keys: ``af_<key id>_<secret>``, stored hashed in Redis, owned by a tenant.

Only the sha256 of the secret is stored (the secret is 256 random bits, so a slow hash
adds nothing); the raw key is shown once and written nowhere. A presented secret's digest is
compared with ``hmac.compare_digest``, in constant time, so the answer's timing tells nothing
about how much of the secret was right (whether a key id exists is no secret: it is not one).

Every request reads its key's record (one HGETALL): a revoked key is refused from the next
request on, in every API process. Within one request the answer is remembered, since the rate
limiter and the authentication hook both ask.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import cast

import redis
from flask import g, has_request_context

from shared.jobs import PREFIX

KEY_PREFIX = "af_"


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
        """The key's principal, or None for a malformed, unknown, wrong or revoked key."""
        if not has_request_context():
            return self._lookup(presented)
        answers: dict[str, Principal | None] = g.setdefault("verified_api_keys", {})
        if presented not in answers:
            answers[presented] = self._lookup(presented)
        return answers[presented]

    def _lookup(self, presented: str) -> Principal | None:
        if not presented.startswith(KEY_PREFIX):
            return None
        key_id, sep, secret = presented[len(KEY_PREFIX):].partition("_")
        if not sep or not key_id or not secret:
            return None
        record = cast(dict[str, str], self.redis.hgetall(self._key(key_id)))
        if not record or not hmac.compare_digest(record.get("secret_sha256", ""), _digest(secret)):
            return None
        return Principal(record["tenant"], key_id, record.get("admin") == "1")
