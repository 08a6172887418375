"""Each tenant's index of its own works (uploads and image results), for "similar works".

A work is indexed by its style vector (Magenta's style embedding, 100 floats, L2-normalised; the
workers compute it) and its 64-bit pHash. The index lives in Redis, one hash per tenant
(``af:works:{tenant}``, reference -> packed entry) beside an append-only log of references, so a
process keeps the tenant's matrix in memory and reads only what was added since it last looked.
It is derived data: the workers rebuild it from the objects in S3 when it is lost
(``workers.works_indexing``), and a corrupt entry is skipped here and re-made there.

Ranking (``rank``): the style cosine, plus a bonus for a near pHash match, 1 - d/12 for a Hamming
distance d under 12 bits (pHash-8 made no false match at <= 10 among unrelated images). pHash
finds re-encoded and resized copies, the style vector cropped ones; together a JPEG q75, 0.5x or
10%-cropped copy ranks its original first (``bench/analysis.py``). ``score`` is the sum
halved, so 1 is an identical work. The search is brute force in numpy: exact, and at 100k works a
few milliseconds (bench/RESULTS.md), well under what a vector index library would need to repay
its build and update costs here.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass

import imagehash
import numpy as np
import redis
from PIL import Image

from shared.jobs import PREFIX

EMBEDDING_DIM = 100
HASH_MATCH_BITS = 12
READ_CHUNK = 5000  # log entries read per round trip


@dataclass(frozen=True)
class WorkRef:
    """An upload (``result`` None) or one image result of a job."""

    kind: str  # "upload" or "result"
    id: str  # the upload's id, or the job's
    result: int | None = None

    def __str__(self) -> str:
        return f"upload:{self.id}" if self.kind == "upload" else f"result:{self.id}:{self.result}"

    @classmethod
    def parse(cls, text: str) -> WorkRef:
        kind, _, rest = text.partition(":")
        if kind == "upload" and rest:
            return cls("upload", rest)
        job, _, index = rest.partition(":")
        if kind == "result" and job and index.isdigit():
            return cls("result", job, int(index))
        raise ValueError(f"not a work reference: {text!r}")

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind, "id": self.id}
        if self.result is not None:
            out["result"] = self.result
        return out


@dataclass(frozen=True)
class WorkEntry:
    ref: WorkRef
    embedding: np.ndarray  # float32, EMBEDDING_DIM, L2-normalised
    phash: int  # 64 bits

    def pack(self) -> str:
        vector = np.asarray(self.embedding, dtype="<f4")
        if vector.shape != (EMBEDDING_DIM,) or not np.all(np.isfinite(vector)):
            raise ValueError(f"a style vector is {EMBEDDING_DIM} finite floats")
        return json.dumps({"e": base64.b64encode(vector.tobytes()).decode(), "p": f"{self.phash:016x}",
                           "at": time.time()})

    @classmethod
    def unpack(cls, ref: WorkRef, raw: str | bytes) -> WorkEntry:
        """Raises ValueError for anything that is not a whole entry."""
        try:
            fields = json.loads(raw)
            vector = np.frombuffer(base64.b64decode(fields["e"], validate=True), dtype="<f4")
            phash = int(fields["p"], 16)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"corrupt index entry {ref}: {exc}") from None
        if vector.shape != (EMBEDDING_DIM,) or not np.all(np.isfinite(vector)) or not 0 <= phash < 2**64:
            raise ValueError(f"corrupt index entry {ref}")
        return cls(ref, vector.astype(np.float32), phash)


@dataclass(frozen=True)
class SimilarWork:
    ref: WorkRef
    score: float
    style_similarity: float
    hash_distance: int

    def to_dict(self) -> dict[str, object]:
        return {**self.ref.to_dict(), "score": round(self.score, 4),
                "style_similarity": round(self.style_similarity, 4), "hash_distance": self.hash_distance}


def rank(matrix: np.ndarray, hashes: np.ndarray, embedding: np.ndarray, phash: int,
         k: int) -> list[tuple[int, float, float, int]]:
    """The ``k`` best rows: (row, score, style cosine, pHash distance), best first."""
    if k <= 0 or len(matrix) == 0:
        return []
    cosine = matrix @ np.asarray(embedding, dtype=np.float32)
    distance = np.bitwise_count(hashes ^ np.uint64(phash))
    score = cosine + np.clip(1.0 - distance / HASH_MATCH_BITS, 0.0, None)
    k = min(k, len(score))
    top = np.argpartition(-score, k - 1)[:k]
    top = top[np.argsort(-score[top], kind="stable")]
    return [(int(i), float(score[i]) / 2, float(cosine[i]), int(distance[i])) for i in top]


class _TenantMatrix:
    """A tenant's entries as arrays, extended from the log as it grows."""

    def __init__(self, token: str | None) -> None:
        self.token = token  # the build it belongs to
        self.logged = 0
        self.refs: list[WorkRef] = []
        self.rows: dict[str, int] = {}
        self.matrix = np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        self.hashes = np.zeros(0, dtype=np.uint64)
        self.corrupt: set[str] = set()

    def extend(self, entries: list[WorkEntry]) -> None:
        fresh = [e for e in entries if str(e.ref) not in self.rows]
        for entry in entries:  # re-made after corruption: replace in place
            row = self.rows.get(str(entry.ref))
            if row is not None:
                self.matrix[row], self.hashes[row] = entry.embedding, np.uint64(entry.phash)
        if fresh:
            for entry in fresh:
                self.rows[str(entry.ref)] = len(self.refs)
                self.refs.append(entry.ref)
            self.matrix = np.concatenate([self.matrix, np.stack([e.embedding for e in fresh])])
            self.hashes = np.concatenate([self.hashes, np.array([e.phash for e in fresh], dtype=np.uint64)])


class WorksIndex:
    def __init__(self, client: redis.Redis):
        self.redis = client
        self._cache: dict[str, _TenantMatrix] = {}
        self._lock = threading.Lock()  # guards the dict of tenant locks
        # One lock per tenant: a large tenant's first read does not hold up another tenant's query.
        self._tenant_locks: dict[str, threading.Lock] = {}

    @staticmethod
    def _key(tenant: str) -> str:
        return f"{PREFIX}works:{tenant}"

    def _log(self, tenant: str) -> str:
        return self._key(tenant) + ":log"

    def _built(self, tenant: str) -> str:
        return self._key(tenant) + ":built"

    def add(self, tenant: str, entry: WorkEntry) -> None:
        packed = entry.pack()
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key(tenant), str(entry.ref), packed)
            pipe.rpush(self._log(tenant), str(entry.ref))
            pipe.execute()

    def has(self, tenant: str, ref: WorkRef) -> bool:
        return bool(self.redis.hexists(self._key(tenant), str(ref)))

    def get(self, tenant: str, ref: WorkRef) -> WorkEntry | None:
        """The entry, or None where it is missing or corrupt."""
        raw = self.redis.hget(self._key(tenant), str(ref))
        if raw is None:
            return None
        try:
            return WorkEntry.unpack(ref, raw)
        except ValueError:
            return None

    def count(self, tenant: str) -> int:
        return int(self.redis.hlen(self._key(tenant)))

    def is_built(self, tenant: str) -> bool:
        """False where the index was lost, wholly or in part, or never built: the workers then
        rebuild it from S3 (``workers.works_indexing.rebuild``)."""
        marker, has_hash, has_log = self._state(tenant)
        return marker is not None and has_hash == has_log

    def _state(self, tenant: str) -> tuple[str | None, bool, bool]:
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self._built(tenant))
            pipe.exists(self._key(tenant))
            pipe.exists(self._log(tenant))
            marker, has_hash, has_log = pipe.execute()
        token = marker.decode() if isinstance(marker, bytes) else marker
        return token, bool(has_hash), bool(has_log)

    def start_rebuild(self, tenant: str) -> None:
        """Forget every entry: a rebuild adds them all again, then ``mark_built``."""
        self.redis.delete(self._key(tenant), self._log(tenant), self._built(tenant))

    def mark_built(self, tenant: str) -> None:
        # A new token each time: processes that cached the old index read this one whole.
        self.redis.set(self._built(tenant), uuid.uuid4().hex)

    def corrupt(self, tenant: str) -> set[str]:
        """References whose entries could not be read the last time this process looked."""
        self._refresh(tenant)
        return set(self._cache[tenant].corrupt)

    def drop(self, tenant: str, ref: WorkRef) -> None:
        self.redis.hdel(self._key(tenant), str(ref))

    def forget_job(self, tenant: str, job_id: str) -> int:
        """Remove a job's results (their objects expired); processes re-read the index whole."""
        # HSCAN's NOVALUES needs Redis 7.4; the values are small.
        refs = [ref for ref, _ in self.redis.hscan_iter(self._key(tenant), match=f"result:{job_id}:*")]
        if not refs:
            return 0
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._key(tenant), *refs)
            for ref in refs:
                pipe.lrem(self._log(tenant), 0, ref)
            pipe.execute()
        if self.redis.exists(self._built(tenant)):
            self.mark_built(tenant)  # a new token: cached matrices still hold the removed rows
        return len(refs)

    def similar(self, tenant: str, embedding: np.ndarray, phash: int, k: int,
                exclude: WorkRef | None = None) -> list[SimilarWork]:
        state = self._refresh(tenant)
        found = rank(state.matrix, state.hashes, embedding, phash, k + (1 if exclude is not None else 0))
        out = [SimilarWork(state.refs[row], score, cosine, distance) for row, score, cosine, distance in found
               if exclude is None or state.refs[row] != exclude]
        return out[:k]

    def _tenant_lock(self, tenant: str) -> threading.Lock:
        with self._lock:
            return self._tenant_locks.setdefault(tenant, threading.Lock())

    def _refresh(self, tenant: str) -> _TenantMatrix:
        with self._tenant_lock(tenant):
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.get(self._built(tenant))
                pipe.llen(self._log(tenant))
                marker, length = pipe.execute()
            token = marker.decode() if isinstance(marker, bytes) else marker
            state = self._cache.get(tenant)
            if state is None or state.token != token or length < state.logged:  # new, or rebuilt: read it whole
                state = self._cache[tenant] = _TenantMatrix(token)
            while length > state.logged:  # in chunks: one reply never holds a whole large index
                end = min(length, state.logged + READ_CHUNK)
                refs = [r.decode() if isinstance(r, bytes) else r
                        for r in self.redis.lrange(self._log(tenant), state.logged, end - 1)]
                wanted = list(dict.fromkeys(refs))
                raws = self.redis.hmget(self._key(tenant), wanted) if wanted else []
                entries = []
                for text, raw in zip(wanted, raws, strict=True):
                    try:
                        ref = WorkRef.parse(text)
                        if raw is None:
                            continue  # dropped since
                        entries.append(WorkEntry.unpack(ref, raw))
                        state.corrupt.discard(text)
                    except ValueError:
                        state.corrupt.add(text)
                state.extend(entries)
                state.logged = end
            return state


def phash_of(image: Image.Image) -> int:
    """The 64-bit pHash (imagehash, 8x8) the index ranks by."""
    return int(str(imagehash.phash(image.convert("RGB"))), 16)
