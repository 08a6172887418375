"""Where provenance is looked up: Redis indexes from what an image shows (exact bytes, watermark
payload, perceptual hash, C2PA record id) to the stored result and record it belongs to; each
tenant's record chain; the watermark payloads handed out; the certificates that signed records.

Keys (under ``af:prov:``):

    rec:{record_id}          JSON ``ResultLocation``: tenant, job, index, object keys, hashes, payload
    sha:{sha256}             record id of the stored result with exactly these bytes
    wm:{payload}             record id of the result marked with this payload
                             ("pending:{job}:{index}" from allocation until the result is stored)
    wmjob:{job}:{index}      the payload allocated to that result: a retried job reuses it
    ph:{part}:{4 hex}        record ids whose pHash has these 16 bits in part 0..3
    chain:{tenant}:head      JSON {record_sha256, sequence, record_key} of the tenant's last record
    chain:{tenant}:log       record object keys in sequence order (a retried job's earlier records stay)
    chain:{tenant}:lock      held while records are sealed onto the chain
    signers                  key id -> PEM of every signing certificate that signed a record

Nearest pHash without a scan: a hash within 8 bits of another agrees with it to within 2 bits in
at least one of its four 16-bit parts (were every part 3+ bits off, the total would be 12+). A
lookup reads the 4 x 137 buckets within 2 bits of the query's parts in one round trip and
compares the full hashes of the few results it finds there.

Index entries are written after the result's objects are stored, so what they point to exists.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any, cast

import redis
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shared.jobs import PREFIX
from shared.marks.perceptual import (
    COLOUR_MATCH_DISTANCE,
    DHASH_MATCH_DISTANCE,
    PHASH_MATCH_DISTANCE,
    colour_distance,
)
from shared.provenance import hamming, seal, verify_signature
from shared.signing import issued_under, public_key_id

_P = f"{PREFIX}prov:"
PAYLOAD_SPACE = 1 << 32
PHASH_PARTS = 4
PART_BITS = 16
PART_RADIUS = 2  # 8 bits over 4 parts: some part is within 2
ALLOCATION_TRIES = 32
CHAIN_LOCK_TIMEOUT_S = 60  # a holder that dies frees the chain after this
CHAIN_LOCK_WAIT_S = 120
CHAIN_TRIES = 3


class ChainBusy(Exception):
    """The tenant's chain head kept moving under us (a lock holder outlived its lock)."""


@dataclass(frozen=True)
class ResultLocation:
    record_id: str
    tenant: str
    job_id: str
    index: int
    image_key: str
    record_key: str  # the sealed record as the chain log holds it
    provenance_key: str  # the same record beside the result
    sidecar_key: str
    sha256: str
    record_sha256: str
    phash: str
    dhash: str
    watermark_payload: int | None  # None when the result carries no readable mark
    input_phashes: tuple[str, ...] = ()  # of the job's inputs: a picture nearer to one of them is not ours
    colour: str = ""  # the colour signature (``shared.marks.perceptual``); "" when not taken


@dataclass(frozen=True)
class NearMatch:
    location: ResultLocation
    phash_distance: int
    dhash_distance: int


def record_object_key(tenant: str, record_id: str) -> str:
    """Where the chain keeps a sealed record (results bucket); never overwritten by a re-run."""
    return f"{tenant}/records/{record_id}.json"


def phash_parts(phash: str) -> list[int]:
    value = int(phash, 16)
    mask = (1 << PART_BITS) - 1
    return [(value >> (PART_BITS * i)) & mask for i in range(PHASH_PARTS)]


def _within_radius(value: int) -> Iterator[int]:
    yield value
    for radius in range(1, PART_RADIUS + 1):
        for bits in combinations(range(PART_BITS), radius):
            flipped = value
            for bit in bits:
                flipped ^= 1 << bit
            yield flipped


class ProvenanceIndex:
    def __init__(self, client: redis.Redis):
        self.redis = client

    # -- watermark payloads ---------------------------------------------------------------

    def allocate_payload(self, job_id: str, index: int) -> int:
        """A 32-bit payload no other stored result has; the same one for every attempt of a job."""
        return self.allocate_payloads(job_id, [index])[index]

    def allocate_payloads(self, job_id: str, indexes: Sequence[int]) -> dict[int, int]:
        """``allocate_payload`` for several results of a job, in three round trips however many."""
        if not indexes:
            return {}
        mine = {index: f"{_P}wmjob:{job_id}:{index}" for index in indexes}
        earlier = cast(list[str | None], self.redis.mget(list(mine.values())))
        payloads = {index: int(value) for index, value in zip(indexes, earlier, strict=True) if value is not None}
        for _ in range(ALLOCATION_TRIES):
            missing = [index for index in indexes if index not in payloads]
            if not missing:
                return payloads
            candidates = {index: secrets.randbelow(PAYLOAD_SPACE) for index in missing}
            with self.redis.pipeline(transaction=False) as pipe:
                for index in missing:
                    pipe.set(f"{_P}wm:{candidates[index]}", f"pending:{job_id}:{index}", nx=True)
                claimed = [index for index, won in zip(missing, pipe.execute(), strict=True) if won]
            with self.redis.pipeline(transaction=False) as pipe:
                for index in claimed:
                    pipe.set(mine[index], str(candidates[index]), nx=True)
                kept = pipe.execute()
            lost = [index for index, ok in zip(claimed, kept, strict=True) if not ok]
            payloads.update({index: candidates[index] for index, ok in zip(claimed, kept, strict=True) if ok})
            if lost:
                # A concurrent attempt of the same job allocated these first: use its payloads.
                self.redis.delete(*(f"{_P}wm:{candidates[index]}" for index in lost))
                theirs = cast(list[str], self.redis.mget([mine[index] for index in lost]))
                payloads.update({index: int(value) for index, value in zip(lost, theirs, strict=True)})
        raise RuntimeError("no free watermark payload found; the payload space is nearly full")

    # -- the result index ---------------------------------------------------------------------

    def add(self, location: ResultLocation, by_perceptual_hash: bool = True) -> None:
        """Index a stored result; ``by_perceptual_hash=False`` keeps it out of ``nearest`` (a result
        that looks like a picture the service did not make, such as a restored artwork)."""
        self.add_all([location], by_perceptual_hash)

    def add_all(self, locations: Sequence[ResultLocation], by_perceptual_hash: bool = True) -> None:
        """``add`` for several results, in one transaction."""
        if not locations:
            return
        with self.redis.pipeline(transaction=True) as pipe:
            for location in locations:
                pipe.set(f"{_P}rec:{location.record_id}", json.dumps(asdict(location)))
                pipe.set(f"{_P}sha:{location.sha256}", location.record_id)
                if location.watermark_payload is not None:
                    pipe.set(f"{_P}wm:{location.watermark_payload}", location.record_id)
                if location.phash and by_perceptual_hash:
                    for part, bits in enumerate(phash_parts(location.phash)):
                        pipe.sadd(f"{_P}ph:{part}:{bits:04x}", location.record_id)
            pipe.execute()

    def by_record_id(self, record_id: str | None) -> ResultLocation | None:
        if not record_id:
            return None
        raw = self.redis.get(f"{_P}rec:{record_id}")
        return _location(cast(str, raw)) if raw else None

    def by_sha256(self, sha256: str) -> ResultLocation | None:
        return self.by_record_id(cast(str | None, self.redis.get(f"{_P}sha:{sha256}")))

    def by_payload(self, payload: int | None) -> ResultLocation | None:
        if payload is None:
            return None
        found = cast(str | None, self.redis.get(f"{_P}wm:{payload}"))
        return None if found is None or found.startswith("pending:") else self.by_record_id(found)

    def nearest(self, perceptual: Mapping[str, str], max_phash: int = PHASH_MATCH_DISTANCE,
                max_dhash: int = DHASH_MATCH_DISTANCE,
                max_colour: float = COLOUR_MATCH_DISTANCE) -> NearMatch | None:
        """The stored result nearest in pHash (ties: dHash) to an image with these hashes, with
        dHash and colour signature within their distances too (``shared.marks.perceptual``), or None.

        A result whose input is at least as near to the query as the result itself is passed over:
        a restoration (or a light style transfer) keeps its input's pHash, and the input, a
        picture the service did not make, must not be claimed through it."""
        phash, dhash, colour = perceptual["phash"], perceptual.get("dhash", ""), perceptual.get("colour", "")
        if max_phash > PART_RADIUS * PHASH_PARTS + PHASH_PARTS - 1:
            raise ValueError(f"the index finds pHash distances up to {PART_RADIUS * PHASH_PARTS + PHASH_PARTS - 1}")
        with self.redis.pipeline(transaction=False) as pipe:
            for part, bits in enumerate(phash_parts(phash)):
                for near in _within_radius(bits):
                    pipe.smembers(f"{_P}ph:{part}:{near:04x}")
            candidates = set().union(*cast(list[set[str]], pipe.execute()))
        if not candidates:
            return None
        ids = sorted(candidates)
        raws = cast(list[str | None], self.redis.mget([f"{_P}rec:{rid}" for rid in ids]))
        best: NearMatch | None = None
        for raw in raws:
            if raw is None:
                continue
            location = _location(raw)
            p_dist = hamming(phash, location.phash)
            d_dist = hamming(dhash, location.dhash) if dhash and location.dhash else 0
            if p_dist > max_phash or d_dist > max_dhash:
                continue
            if colour and location.colour and colour_distance(colour, location.colour) > max_colour:
                continue
            if any(hamming(phash, source) <= p_dist for source in location.input_phashes):
                continue
            if best is None or (p_dist, d_dist) < (best.phash_distance, best.dhash_distance):
                best = NearMatch(location, p_dist, d_dist)
        return best


class RecordChain:
    """Each tenant's sealed records, in order: a record is sealed after the head, stored, then
    appended to the log and made the head in one transaction."""

    def __init__(self, client: redis.Redis):
        self.redis = client

    @staticmethod
    def _key(tenant: str, suffix: str) -> str:
        return f"{_P}chain:{tenant}:{suffix}"

    def head(self, tenant: str) -> dict[str, Any] | None:
        raw = self.redis.get(self._key(tenant, "head"))
        return json.loads(cast(str, raw)) if raw else None

    def length(self, tenant: str) -> int:
        return int(cast(int, self.redis.llen(self._key(tenant, "log"))))

    def record_keys(self, tenant: str, start: int, count: int) -> list[str]:
        return cast(list[str], self.redis.lrange(self._key(tenant, "log"), start, start + count - 1))

    def append(self, tenant: str, records: Sequence[dict[str, Any]], private_key_pem: bytes,
               store: Callable[[list[tuple[str, dict[str, Any]]]], None]) -> list[dict[str, Any]]:
        """Seal ``records`` in order after the tenant's head; ``store`` writes (key, sealed record)
        pairs durably before they join the chain. Returns the sealed records."""
        head_key, log_key = self._key(tenant, "head"), self._key(tenant, "log")
        lock = self.redis.lock(self._key(tenant, "lock"), timeout=CHAIN_LOCK_TIMEOUT_S,
                               blocking_timeout=CHAIN_LOCK_WAIT_S)
        with lock:
            for _ in range(CHAIN_TRIES):
                with self.redis.pipeline(transaction=True) as pipe:
                    # The watch catches a head moved by someone who took the lock after ours expired.
                    pipe.watch(head_key)
                    raw = pipe.get(head_key)
                    previous: Mapping[str, Any] | None = json.loads(cast(str, raw)) if raw else None
                    sealed: list[dict[str, Any]] = []
                    for record in records:
                        sealed.append(seal(record, previous, private_key_pem))
                        previous = sealed[-1]
                    keys = [record_object_key(tenant, r["record_id"]) for r in sealed]
                    store(list(zip(keys, sealed, strict=True)))
                    last = sealed[-1]
                    pipe.multi()
                    pipe.rpush(log_key, *keys)
                    pipe.set(head_key, json.dumps({"record_sha256": last["record_sha256"],
                                                   "sequence": last["sequence"], "record_key": keys[-1]}))
                    try:
                        pipe.execute()
                    except redis.WatchError:
                        continue
                    return sealed
        raise ChainBusy(f"the record chain of {tenant} kept changing while records were sealed")


class SignerRegistry:
    """Every certificate that signed a record, by key id, so records outlive a key rotation."""

    def __init__(self, client: redis.Redis):
        self.redis = client

    def register(self, chain_pem: bytes) -> str:
        """Remember a signing certificate chain (end entity first); returns its key id."""
        chain = x509.load_pem_x509_certificates(chain_pem)
        public_key = chain[0].public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise ValueError("records are signed with ECDSA P-256 keys")
        key_id = public_key_id(public_key)
        pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
        self.redis.hset(f"{_P}signers", key_id, pem.decode())
        return key_id

    def check(self, record: Mapping[str, Any], anchors_pem: bytes) -> str:
        """How a record's signature stands: "valid" (intact, by a registered key whose certificate
        chains to ``anchors_pem``), "untrusted" (intact, but the certificate does not chain there),
        "unknown_signer" or "invalid" (the record changed since it was signed, or a forged signature)."""
        signature = record.get("signature")
        key_id = signature.get("key_id") if isinstance(signature, Mapping) else None
        chain_pem = self.chain(key_id) if isinstance(key_id, str) else None
        if chain_pem is None:
            return "unknown_signer"
        if not verify_signature(record, _first_pem(chain_pem)):
            return "invalid"
        return "valid" if issued_under(chain_pem, anchors_pem) else "untrusted"

    def chain(self, key_id: str) -> bytes | None:
        """The certificate chain registered for ``key_id`` (end entity first), or None."""
        pem = cast(str | None, self.redis.hget(f"{_P}signers", key_id))
        return pem.encode() if pem else None


def _location(raw: str) -> ResultLocation:
    fields = json.loads(raw)
    fields["input_phashes"] = tuple(fields.get("input_phashes") or ())
    return ResultLocation(**fields)


def _first_pem(chain_pem: bytes) -> bytes:
    return x509.load_pem_x509_certificates(chain_pem)[0].public_bytes(serialization.Encoding.PEM)
