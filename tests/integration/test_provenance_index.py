"""The provenance index and record chain on a real Redis: nearest-pHash lookup finds every stored
hash within the match distance and nothing beyond; watermark payloads are unique and stable per
result; records sealed from many threads at once form one unbroken, signed chain."""

from __future__ import annotations

import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

from deploy.devstack import Stack
from shared.connections import redis_client
from shared.provenance import build_record, chain_ok, verify_signature
from shared.provenance_index import ProvenanceIndex, RecordChain, ResultLocation, SignerRegistry
from shared.signing import SigningKeys


@pytest.fixture(scope="module")
def client(servers: Stack) -> redis.Redis:
    return redis_client(servers.settings())


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> SigningKeys:
    return SigningKeys.load_or_create(tmp_path_factory.mktemp("signing"))


def flip(hex_hash: str, bits: list[int]) -> str:
    value = int(hex_hash, 16)
    for bit in bits:
        value ^= 1 << bit
    return f"{value:016x}"


def location(phash: str, dhash: str = "0" * 16, payload: int | None = None) -> ResultLocation:
    record_id = uuid.uuid4().hex
    return ResultLocation(record_id=record_id, tenant="t", job_id="j", index=0, image_key="k", record_key="r",
                          provenance_key="p", sidecar_key="s", sha256=uuid.uuid4().hex, record_sha256="x",
                          phash=phash, dhash=dhash, watermark_payload=payload)


def test_nearest_finds_every_hash_within_eight_bits_and_none_beyond(client: redis.Redis) -> None:
    index, rng = ProvenanceIndex(client), random.Random(5)
    for trial in range(40):
        stored = f"{rng.getrandbits(64):016x}"
        index.add(location(stored))
        near = flip(stored, rng.sample(range(64), trial % 9))  # 0..8 bits anywhere, one part or spread
        found = index.nearest({"phash": near, "dhash": "0" * 16})
        assert found is not None and found.location.phash == stored and found.phash_distance == trial % 9
        far = flip(stored, rng.sample(range(64), 9 + trial % 6))
        found_far = index.nearest({"phash": far, "dhash": "0" * 16})
        assert found_far is None or found_far.location.phash != stored


def test_nearest_also_asks_the_dhash_and_the_colours_to_agree(client: redis.Redis) -> None:
    index = ProvenanceIndex(client)
    red, blue = "ff0000" * 16, "0000ff" * 16
    stored = ResultLocation(**{**location("0123456789abcdef", dhash="ffffffffffffffff").__dict__, "colour": red})
    index.add(stored)
    assert index.nearest({"phash": "0123456789abcdef", "dhash": "ffffffffffffffff", "colour": red}) is not None
    assert index.nearest({"phash": "0123456789abcdef", "dhash": "ffffffffffffffff", "colour": blue}) is None
    assert index.nearest({"phash": "0123456789abcdef", "dhash": "ffffffffffffffff"}) is not None
    assert index.nearest({"phash": "0123456789abcdef", "dhash": "0000000000000000"}) is None
    assert index.by_sha256(stored.sha256) == stored and index.by_record_id(stored.record_id) == stored


def test_payloads_are_unique_and_a_retried_job_gets_its_own_back(client: redis.Redis) -> None:
    index = ProvenanceIndex(client)
    job = uuid.uuid4().hex
    with ThreadPoolExecutor(8) as pool:
        first = list(pool.map(lambda i: index.allocate_payload(job, i), range(64)))
        again = list(pool.map(lambda i: index.allocate_payload(job, i), range(64)))
    assert first == again and len(set(first)) == 64
    assert index.by_payload(first[0]) is None  # allocated, not stored yet
    stored = location("f" * 16, payload=first[0])
    index.add(stored)
    assert index.by_payload(first[0]) == stored


def test_two_attempts_allocating_a_whole_job_at_once_agree_and_leave_no_stray_claims(client: redis.Redis) -> None:
    index = ProvenanceIndex(client)
    job = uuid.uuid4().hex
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: index.allocate_payloads(job, range(64)), range(2))
    assert first == second and sorted(first) == list(range(64)) and len(set(first.values())) == 64
    assert index.allocate_payload(job, 17) == first[17]  # a retried attempt of one result
    claims = [key for key in client.scan_iter(match="af:prov:wm:*", count=1000)
              if str(client.get(key)).startswith(f"pending:{job}:")]
    assert sorted(int(key.rsplit(":", 1)[1]) for key in claims) == sorted(first.values())


def test_records_sealed_from_many_threads_form_one_signed_chain(client: redis.Redis, keys: SigningKeys) -> None:
    chain, tenant = RecordChain(client), f"tenant-{uuid.uuid4().hex[:8]}"
    stored: dict[str, dict[str, Any]] = {}
    registry = SignerRegistry(client)
    assert registry.register(keys.cert_chain_pem) == keys.key_id

    def job(n: int) -> list[dict[str, Any]]:
        records = [build_record(job_id=f"job-{n}", tenant=tenant, key_id="k", kind="creation", params={"n": n},
                                model={"name": "m"}, inputs=[], output={"index": i}) for i in range(3)]
        return chain.append(tenant, records, keys.private_key_pem, lambda pairs: stored.update(pairs))

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(job, range(12)))
    log = chain.record_keys(tenant, 0, 1000)
    assert chain.length(tenant) == len(log) == 36
    records = [stored[key] for key in log]
    assert [r["sequence"] for r in records] == list(range(36))
    assert chain_ok(records, verify=lambda r: registry.check(r, keys.trust_anchors_pem) == "valid")
    assert chain.head(tenant)["record_sha256"] == records[-1]["record_sha256"]
    assert all(verify_signature(r, keys.signer_certificate_pem) for r in records)
    # A job's records stay together and in result order.
    for start in range(0, 36, 3):
        assert [r["output"]["index"] for r in records[start:start + 3]] == [0, 1, 2]


def test_a_picture_nearer_to_a_results_input_than_to_the_result_is_not_claimed(client: redis.Redis) -> None:
    index = ProvenanceIndex(client)
    original = "5a5a5a5a0f0f0f0f"
    restored = flip(original, [1, 2])  # a restoration keeps its input's look
    result = location(restored)
    index.add(ResultLocation(**{**result.__dict__, "input_phashes": (original,)}))
    assert index.nearest({"phash": original, "dhash": "0" * 16}) is None  # the input itself: not ours
    found = index.nearest({"phash": flip(restored, [40]), "dhash": "0" * 16})  # a copy of the result: ours
    assert found is not None and found.location.record_id == result.record_id
