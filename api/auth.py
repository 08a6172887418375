"""API keys: ``af_<key id>_<secret>``, stored hashed in Redis, owned by a tenant.

Roles: a plain key uses the service; an admin key may also train, manage schedules, models and
its own tenant's keys; an operator key (an admin key of the service's operator, such as the one
``make up`` writes) may manage every tenant's keys. ``routes/keys.py`` enforces who may do what.

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
from shared.tenants import valid_tenant_name

KEY_PREFIX = "af_"


@dataclass(frozen=True)
class Principal:
    tenant: str
    key_id: str
    admin: bool
    operator: bool = False


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown about a key: never its secret, nor the secret's digest."""

    id: str
    tenant: str
    admin: bool
    operator: bool
    created_at: float


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    def __init__(self, client: redis.Redis):
        self.redis = client

    @staticmethod
    def _key(key_id: str) -> str:
        return f"{PREFIX}apikey:{key_id}"

    @staticmethod
    def _tenant_index(tenant: str) -> str:
        return f"{PREFIX}tenant:{tenant}:apikeys"

    def create(self, tenant: str, admin: bool = False, operator: bool = False) -> tuple[str, Principal]:
        """Returns the full key (shown once) and its principal. An operator key is an admin key."""
        if not valid_tenant_name(tenant):
            raise ValueError("a tenant name is 1 to 64 letters, digits, '-' and '_'")
        admin = admin or operator
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        with self.redis.pipeline() as pipe:
            pipe.hset(self._key(key_id), mapping={
                "tenant": tenant, "admin": "1" if admin else "0", "operator": "1" if operator else "0",
                "secret_sha256": _digest(secret), "created_at": repr(time.time())})
            pipe.sadd(self._tenant_index(tenant), key_id)
            pipe.execute()
        return f"{KEY_PREFIX}{key_id}_{secret}", Principal(tenant, key_id, admin, operator)

    def get(self, key_id: str) -> KeyInfo | None:
        record = cast(dict[str, str], self.redis.hgetall(self._key(key_id)))
        return _info(key_id, record) if record else None

    def of_tenant(self, tenant: str) -> list[KeyInfo]:
        """The tenant's keys, oldest first."""
        ids = sorted(cast(set[str], self.redis.smembers(self._tenant_index(tenant))))
        with self.redis.pipeline(transaction=False) as pipe:
            for key_id in ids:
                pipe.hgetall(self._key(key_id))
            records = cast(list[dict[str, str]], pipe.execute())
        found = [_info(key_id, record) for key_id, record in zip(ids, records, strict=True) if record]
        return sorted(found, key=lambda info: (info.created_at, info.id))

    def revoke(self, key_id: str) -> bool:
        tenant = cast(str | None, self.redis.hget(self._key(key_id), "tenant"))
        with self.redis.pipeline() as pipe:
            pipe.delete(self._key(key_id))
            if tenant is not None:
                pipe.srem(self._tenant_index(tenant), key_id)
            deleted = pipe.execute()[0]
        return bool(deleted)

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
        info = _info(key_id, record)
        return Principal(info.tenant, key_id, info.admin, info.operator)


def _info(key_id: str, record: dict[str, str]) -> KeyInfo:
    return KeyInfo(id=key_id, tenant=record["tenant"], admin=record.get("admin") == "1",
                   operator=record.get("operator") == "1", created_at=float(record.get("created_at") or 0))
