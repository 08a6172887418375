"""The model registry's index in Redis; weights and cards are stored in the models bucket.

A version is registered only after its weights and card are durable in S3, so the index
never names a half-written model. Versions of a name count up from 1; one version per
name is "promoted" and serves requests that do not name a version.

Keys: model:{name}:versions (sorted set of version numbers), model:{name}:card:{v}
(the card JSON), model:{name}:promoted, model:{name}:next, models (set of names),
model:{name}:history (promotion log, JSON lines).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, cast

import redis

from shared.jobs import PREFIX

MODEL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
MODEL_REF = re.compile(r"^(?P<name>[a-z][a-z0-9-]{0,62})(?:@(?P<version>\d{1,9}))?$")


class UnknownModel(Exception):
    """No such model name or version, or no promoted version yet."""


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: int | None  # None: the promoted version

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        match = MODEL_REF.match(text)
        if not match:
            raise ValueError(f"not a model reference: {text!r} (use name or name@version)")
        version = match.group("version")
        return cls(match.group("name"), int(version) if version else None)


def weights_key(name: str, version: int) -> str:
    return f"{name}/{version}/weights.safetensors"


def card_key(name: str, version: int) -> str:
    return f"{name}/{version}/card.json"


class ModelIndex:
    def __init__(self, client: redis.Redis):
        self.redis = client

    def _k(self, name: str, suffix: str) -> str:
        return f"{PREFIX}model:{name}:{suffix}"

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
            pipe.sadd(f"{PREFIX}models", name)
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
        return sorted(cast(set[str], self.redis.smembers(f"{PREFIX}models")))

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
