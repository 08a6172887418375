"""Protected works: artworks an operator lists so that nobody can submit them, or a near copy of
them, as a style reference or an image to restore; and the log of what was refused.

A work is stored as its perceptual hashes (pHash and dHash of the picture and of its mirror
image), its sha256 and a title, never as pixels: the list must not become a copy of the works
it protects. An input is a near-duplicate when its pHash and dHash are both within the
``shared.marks.perceptual`` match distances of the work's (or its mirror's), and so is its
colour signature; resized, recompressed and greyscale copies are, unrelated pictures are not
(figures in that module). Crops and rotations are not caught.

Keys: ``af:protected:works`` (hash id -> JSON work), ``af:protected:refusals`` (JSON entries,
newest first, the last ``MAX_REFUSALS`` kept).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import redis

from shared.jobs import PREFIX
from shared.marks.perceptual import same_picture
from shared.provenance import hamming

WORKS_KEY = f"{PREFIX}protected:works"
REFUSALS_KEY = f"{PREFIX}protected:refusals"
MAX_REFUSALS = 10_000


@dataclass(frozen=True)
class ProtectedWork:
    id: str
    title: str
    perceptual: dict[str, str]  # phash, dhash
    mirrored: dict[str, str]  # the same of the left-right mirror image
    sha256: str
    width: int
    height: int
    rights_holder: str | None = None
    note: str | None = None
    added_by: dict[str, str] = field(default_factory=dict)  # tenant, key_id
    created_at: float = 0.0

    def public(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WorkMatch:
    work: ProtectedWork
    phash_distance: int
    dhash_distance: int
    mirrored: bool


def new_work_id() -> str:
    return uuid.uuid4().hex


class ProtectedWorks:
    def __init__(self, client: redis.Redis):
        self.redis = client

    def add(self, work: ProtectedWork) -> None:
        self.redis.hset(WORKS_KEY, work.id, json.dumps(asdict(work)))

    def get(self, work_id: str) -> ProtectedWork | None:
        raw = cast(str | None, self.redis.hget(WORKS_KEY, work_id))
        return ProtectedWork(**json.loads(raw)) if raw else None

    def all(self) -> list[ProtectedWork]:
        raws = cast(dict[str, str], self.redis.hgetall(WORKS_KEY))
        return sorted((ProtectedWork(**json.loads(raw)) for raw in raws.values()), key=lambda w: w.created_at)

    def any(self) -> bool:
        return bool(self.redis.hlen(WORKS_KEY))

    def delete(self, work_id: str) -> bool:
        return bool(self.redis.hdel(WORKS_KEY, work_id))

    def match(self, perceptual: dict[str, str]) -> WorkMatch | None:
        """The listed work nearest to an image with these hashes, if it is a near-duplicate
        (``shared.marks.perceptual.same_picture``) of the work or of its mirror image."""
        best: WorkMatch | None = None
        for work in self.all():
            for mirrored, hashes in ((False, work.perceptual), (True, work.mirrored)):
                if not same_picture(perceptual, hashes):
                    continue
                p_dist = hamming(perceptual["phash"], hashes["phash"])
                d_dist = hamming(perceptual["dhash"], hashes["dhash"])
                if best is None or (p_dist, d_dist) < (best.phash_distance, best.dhash_distance):
                    best = WorkMatch(work, p_dist, d_dist, mirrored)
        return best

    def record_refusal(self, entry: dict[str, Any]) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(REFUSALS_KEY, json.dumps({"at": time.time(), **entry}))
            pipe.ltrim(REFUSALS_KEY, 0, MAX_REFUSALS - 1)
            pipe.execute()

    def refusals(self, limit: int = 100) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in cast(list[str], self.redis.lrange(REFUSALS_KEY, 0, limit - 1))]
