"""The model registry's index in Redis; weights and cards are stored in the models bucket.

Models belong to tenants: a training job publishes into its tenant's index, and no other tenant
sees it. The service's shipped models (``shared.builtin_models``) are public: read-only, pinned to
one version, usable by every tenant. A reference ``name`` means the tenant's own model of that
name when it has one, else the public one; ``public/name`` always means the public one. The API
pins a reference at submission to what it meant then (``name@3`` or ``public/name@1``), so a job
runs the model it was accepted for.

A version is registered only after its weights and card are durable in S3, so the index
never names a half-written model. Versions of a name count up from 1; one version per
name is "promoted" and serves requests that do not name a version.

Keys, per owner (a tenant id): model:{owner}:{name}:versions (sorted set of version numbers),
model:{owner}:{name}:card:{v} (the card JSON), model:{owner}:{name}:promoted,
model:{owner}:{name}:next, models:{owner} (set of names), model:{owner}:{name}:history
(promotion log, JSON lines). Weights and cards in S3: {owner}/{name}/{v}/...
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, cast

import redis

from shared.builtin_models import builtin_models, releases
from shared.jobs import PREFIX

MODEL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
MODEL_REF = re.compile(r"^(?:(?P<public>public)/)?(?P<name>[a-z][a-z0-9-]{0,62})(?:@(?P<version>\d{1,9}))?$")
PUBLIC = "public"  # the owner of the shipped models


class UnknownModel(Exception):
    """No such model name or version, or no promoted version yet."""


class RetiredVersion(UnknownModel):
    """A version of a public model that shipped once and is no longer served (its weights were
    replaced by a later version's): the works it drew cannot be drawn again."""


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: int | None  # None: the promoted version (a public model's only version)
    public: bool = False  # "public/name": the shipped model even where the tenant has its own

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        match = MODEL_REF.match(text)
        if not match:
            raise ValueError(f"not a model reference: {text!r} (use name, name@version or public/name)")
        version = match.group("version")
        return cls(match.group("name"), int(version) if version else None, match.group("public") is not None)

    def __str__(self) -> str:
        return (f"{PUBLIC}/" if self.public else "") + self.name + (f"@{self.version}" if self.version else "")


@dataclass(frozen=True)
class ResolvedModel:
    """What a reference means for one tenant now: whose model, which version, its card."""

    owner: str  # the tenant's id, or PUBLIC
    name: str
    version: int
    card: dict[str, Any]

    @property
    def public(self) -> bool:
        return self.owner == PUBLIC

    @property
    def pinned(self) -> str:
        """The reference that means this exact model to its tenant from now on."""
        return str(ModelRef(self.name, self.version, self.public))

    @property
    def identity(self) -> str:
        """Unique across tenants: jobs of one identity may share a generator forward."""
        return f"{self.owner}/{self.name}@{self.version}"


def identity_of(tenant: str, pinned: str) -> str:
    """A pinned reference's identity for its tenant, without looking anything up."""
    ref = ModelRef.parse(pinned)
    return f"{PUBLIC if ref.public else tenant}/{ref.name}@{ref.version}"


def weights_key(owner: str, name: str, version: int) -> str:
    return f"{owner}/{name}/{version}/weights.safetensors"


def card_key(owner: str, name: str, version: int) -> str:
    return f"{owner}/{name}/{version}/card.json"


class ModelIndex:
    """One owner's (a tenant's) models."""

    def __init__(self, client: redis.Redis, owner: str):
        self.redis, self.owner = client, owner

    def _k(self, name: str, suffix: str) -> str:
        return f"{PREFIX}model:{self.owner}:{name}:{suffix}"

    def reserve_version(self, name: str) -> int:
        if not MODEL_NAME.match(name):
            raise ValueError(f"model names are lowercase letters, digits and '-': {name!r}")
        return int(self.redis.incr(self._k(name, "next")))

    def register(self, name: str, version: int, card: dict[str, Any], promote_if_first: bool = True) -> bool:
        """Record a version whose weights and card are already stored. Returns True if it
        became the promoted version (the first version of a name is promoted)."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._k(name, f"card:{version}"), json.dumps(card))
            pipe.zadd(self._k(name, "versions"), {str(version): version})
            pipe.sadd(f"{PREFIX}models:{self.owner}", name)
            if promote_if_first:
                pipe.set(self._k(name, "promoted"), str(version), nx=True)
            results = pipe.execute()
        promoted = bool(promote_if_first and results[-1])
        if promoted:
            self._log_promotion(name, version, "first version")
        return promoted

    def promote(self, name: str, version: int, reason: str, *, expected_current: int | None = None,
                details: dict[str, Any] | None = None) -> bool:
        """Make ``version`` the promoted one and log why. With ``expected_current`` it happens
        only if that version is still the promoted one (a gate's decision compared against it);
        returns whether the promotion happened."""
        if self.card(name, version) is None:
            raise UnknownModel(f"{name}@{version}")
        key = self._k(name, "promoted")
        with self.redis.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)
                current = pipe.get(key)
                if expected_current is not None and current != str(expected_current):
                    return False
                pipe.multi()
                pipe.set(key, str(version))
                pipe.execute()
            except redis.WatchError:
                return False
        self._log_promotion(name, version, reason, details)
        return True

    def _log_promotion(self, name: str, version: int, reason: str, details: dict[str, Any] | None = None) -> None:
        entry = {"version": version, "reason": reason, "at": time.time(), **(details or {})}
        self.redis.rpush(self._k(name, "history"), json.dumps(entry))

    def names(self) -> list[str]:
        return sorted(cast(set[str], self.redis.smembers(f"{PREFIX}models:{self.owner}")))

    def versions(self, name: str) -> list[int]:
        return [int(v) for v in cast(list[str], self.redis.zrange(self._k(name, "versions"), 0, -1))]

    def promoted(self, name: str) -> int | None:
        value = self.redis.get(self._k(name, "promoted"))
        return int(cast(str, value)) if value else None

    def card(self, name: str, version: int) -> dict[str, Any] | None:
        raw = self.redis.get(self._k(name, f"card:{version}"))
        return json.loads(cast(str, raw)) if raw else None

    def history(self, name: str) -> list[dict[str, Any]]:
        return [json.loads(e) for e in cast(list[str], self.redis.lrange(self._k(name, "history"), 0, -1))]

    def resolve(self, ref: ModelRef) -> tuple[int, dict[str, Any]]:
        """The version a reference means now, and its card."""
        version = ref.version if ref.version is not None else self.promoted(ref.name)
        if version is None:
            raise UnknownModel(f"model {ref.name!r} has no trained version yet")
        card = self.card(ref.name, version)
        if card is None:
            raise UnknownModel(f"model {ref.name}@{version} does not exist")
        return version, card


class ModelCatalog:
    """The models one tenant can use: its own (``own``) and the public, shipped ones."""

    def __init__(self, client: redis.Redis, tenant: str):
        self.tenant = tenant
        self.own = ModelIndex(client, tenant)

    def resolve(self, ref: ModelRef) -> ResolvedModel:
        """The tenant's own model of that name if it has one (unless the reference says public),
        else the shipped one; UnknownModel when neither has the version asked for."""
        if not ref.public and ref.name in self.own.names():
            version, card = self.own.resolve(ref)
            return ResolvedModel(self.tenant, ref.name, version, card)
        shipped = builtin_models().get(ref.name)
        if shipped is None:
            raise UnknownModel(f"model {ref.name!r} has no trained version yet")
        if ref.version not in (None, shipped.version):
            if any(release["version"] == ref.version for release in releases().get(ref.name, [])):
                raise RetiredVersion(f"version {ref.version} of the public model {ref.name} is no longer served: "
                                     f"it serves version {shipped.version} (pin @{shipped.version}, or leave the "
                                     "version out)")
            raise UnknownModel(f"the public model {ref.name} has only version {shipped.version}")
        return ResolvedModel(PUBLIC, ref.name, shipped.version, shipped.card)

    def public_names(self) -> list[str]:
        return sorted(builtin_models())


class ModelCatalogs:
    """Each tenant's catalog, over one Redis client."""

    def __init__(self, client: redis.Redis):
        self.redis = client

    def for_tenant(self, tenant: str) -> ModelCatalog:
        return ModelCatalog(self.redis, tenant)
