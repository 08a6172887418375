"""The provenance record stored as JSON next to every result, schema ``artforge.provenance/1``.

A record says who asked (tenant, key id), what ran (operation, params and their sha256, model
name/version/weights sha256, code version, training-data lineage), on which inputs (sha256,
perceptual hashes, declared licence and rights holder), what came out (sha256, size, perceptual
hashes), how it is disclosed (AI-generated, IPTC digital source type), the rights on it (licence,
copyright holder, training-and-data-mining reservation) and how the image itself is marked (XMP,
watermark payload, C2PA manifest).

Invariants the tests check:
- ``record_sha256`` is the sha256 of the canonical JSON (sorted keys, no spaces, UTF-8) of the
  record without its ``record_sha256`` and ``signature`` fields, so it survives a JSON round trip.
- A tenant's records form a chain: each ``previous_sha256`` is the ``record_sha256`` of the
  record before it (``None`` for the first) and ``sequence`` counts up from 0. Changing any
  field of any record is caught by ``chain_ok`` at that record.
- ``signature`` is ES256 (ECDSA P-256, SHA-256) over the record hash, by the key of the signing
  certificate (``shared.signing``), raw r||s in base64url as in JOSE.

Pure Python plus ``cryptography``: the API imports this to verify records.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509 import load_pem_x509_certificate

from shared.signing import public_key_id

SCHEMA = "artforge.provenance/1"
CODE_VERSION = "0.1.0"
SIGNATURE_ALG = "ES256"

# IPTC NewsCodes digital source types (https://cv.iptc.org/newscodes/digitalsourcetype/).
IPTC_DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED_ALGORITHMIC_MEDIA = "trainedAlgorithmicMedia"
COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA = "compositeWithTrainedAlgorithmicMedia"
ALGORITHMICALLY_ENHANCED = "algorithmicallyEnhanced"
# Made by an algorithm without training data: what a restoration's damage mask is.
ALGORITHMIC_MEDIA = "algorithmicMedia"
# A restoration that replaced at least this share of the picture's content (inpainted holes,
# scratches) is a composite with generated media; below it, a de-fade or denoise is an enhancement.
COMPOSITE_THRESHOLD = 0.005

# Rights applied when the caller states none: the requester holds the output, and text and data
# mining / AI training are reserved (EU DSM Directive Art. 4(3) opt-out, machine-readable here,
# in XMP and in the C2PA training-mining assertion).
DEFAULT_LICENCE = "LicenseRef-ArtForge-Terms-of-Service"
DEFAULT_USAGE_TERMS = ("AI-generated image. Use is subject to the ArtForge terms of service. "
                       "Text and data mining and AI training are not permitted.")
NOT_ALLOWED = "notAllowed"

_UNHASHED = ("record_sha256", "signature")


def params_hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def new_record_id() -> str:
    """A fresh record id; known before the image is marked, so XMP and C2PA can name it."""
    return uuid.uuid4().hex


def digital_source_type(kind: str, changed_fraction: float | None = None) -> str:
    """The IPTC digital source type code of an output of ``kind``.

    Creation and style transfer make new pixels throughout: ``trainedAlgorithmicMedia``.
    Restoration keeps the input and changes part of it: ``compositeWithTrainedAlgorithmicMedia``
    when ``changed_fraction`` (share of pixels with new content) reaches ``COMPOSITE_THRESHOLD``
    or is unknown, ``algorithmicallyEnhanced`` below it. Analysis draws over the work it measured:
    ``algorithmicMedia``.
    """
    if kind == "analysis":  # measurements and a drawing over the work: no trained model made pixels
        return ALGORITHMIC_MEDIA
    if kind == "restoration":
        if changed_fraction is not None and changed_fraction < COMPOSITE_THRESHOLD:
            return ALGORITHMICALLY_ENHANCED
        return COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA
    return TRAINED_ALGORITHMIC_MEDIA


def digital_source_type_uri(code: str) -> str:
    return IPTC_DIGITAL_SOURCE_TYPE + code


def hamming(a_hex: str, b_hex: str) -> int:
    """Differing bits between two hex-encoded hashes of the same length (perceptual hashes)."""
    if len(a_hex) != len(b_hex):
        raise ValueError("hashes of different lengths")
    return (int(a_hex, 16) ^ int(b_hex, 16)).bit_count()


def default_rights(copyright_holder: str) -> dict[str, Any]:
    return {
        "licence": DEFAULT_LICENCE,
        "copyright_holder": copyright_holder,
        "usage_terms": DEFAULT_USAGE_TERMS,
        "training_and_mining": NOT_ALLOWED,
    }


def build_record(
    *,
    job_id: str,
    tenant: str,
    key_id: str,
    kind: str,
    params: dict[str, Any],
    model: Mapping[str, Any],
    inputs: Sequence[Mapping[str, Any]],
    output: Mapping[str, Any],
    training_data: Sequence[Mapping[str, Any]] = (),
    changed_fraction: float | None = None,
    rights: Mapping[str, Any] | None = None,
    marks: Mapping[str, Any] | None = None,
    record_id: str | None = None,
    created_at: str | None = None,
    code_version: str = CODE_VERSION,
    source_type: str | None = None,
) -> dict[str, Any]:
    """A v1 record, not yet chained or signed (see ``seal``, which refuses values JSON cannot carry
    exactly: NaN, infinities, non-JSON types).

    ``model``: name, version, weights_sha256 (and any other facts). ``training_data``: one entry
    per dataset with dataset_id, manifest_sha256, licence. ``inputs``: one per input image with
    role, sha256, perceptual ({"phash", "dhash"}), licence, rights_holder. ``output``: sha256,
    bytes, width, height, format, perceptual, details. ``marks``: how the image is marked, e.g.
    {"xmp": True, "watermark": {"method", "payload", ...}, "c2pa": {"embedded", "sidecar_key", ...}}
    (``workers.provenance.marking.MarkedResult`` makes both ``output`` and ``marks``).
    ``source_type`` overrides the IPTC code ``digital_source_type`` would choose (a restoration's mask).
    """
    source_type = source_type or digital_source_type(kind, changed_fraction)
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "record_id": record_id or new_record_id(),
        "job_id": job_id,
        "created_at": created_at or datetime.now(UTC).isoformat(),
        "operation": kind,
        "requester": {"tenant": tenant, "key_id": key_id},
        "params": params,
        "params_sha256": params_hash(params),
        "model": {**dict(model), "code_version": code_version},
        "training_data": [_training_entry(entry) for entry in training_data],
        "inputs": [_input_entry(entry) for entry in inputs],
        "output": dict(output),
        "disclosure": {
            "ai_generated": source_type != ALGORITHMIC_MEDIA,
            "digital_source_type": digital_source_type_uri(source_type),
            "digital_source_type_code": source_type,
            "changed_fraction": changed_fraction,
            "statement": "Generated or modified with AI (EU AI Act Art. 50(2) marking).",
        },
        "rights": dict(rights) if rights is not None else default_rights(tenant),
        "marks": dict(marks or {}),
        "previous_sha256": None,
        "sequence": None,
    }
    return record


def _training_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"dataset_id": entry.get("dataset_id"), "manifest_sha256": entry.get("manifest_sha256"),
            "licence": entry.get("licence"), **dict(entry)}


def _input_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"role": entry.get("role"), "sha256": entry.get("sha256"), "perceptual": entry.get("perceptual"),
            "licence": entry.get("licence"), "rights_holder": entry.get("rights_holder"), **dict(entry)}


def json_safe(value: Any) -> Any:
    """``value`` with what a record cannot carry made JSON: NaN and infinities become None,
    tuples lists, numpy scalars Python numbers, other keys strings. ``seal`` refuses the originals."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    item = getattr(value, "item", None)  # numpy scalars, 0-d arrays
    if callable(item):
        return json_safe(item())
    return str(value)


# --- hashing, chaining, signing --------------------------------------------------------------------

def canonical_json(record: Mapping[str, Any]) -> bytes:
    """Sorted keys, no whitespace, UTF-8, no NaN/Infinity; without the hash and signature fields."""
    body = {k: v for k, v in record.items() if k not in _UNHASHED}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def record_sha256(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(record)).hexdigest()


def seal(record: dict[str, Any], previous: Mapping[str, Any] | None, private_key_pem: bytes) -> dict[str, Any]:
    """Chain ``record`` after ``previous`` (the tenant's last record, ``None`` for the first),
    hash it and sign the hash; returns a new dict."""
    sealed = {k: v for k, v in record.items() if k not in _UNHASHED}
    if previous is None:
        sealed["previous_sha256"], sealed["sequence"] = None, 0
    else:
        sealed["previous_sha256"] = previous.get("record_sha256") or record_sha256(previous)
        sealed["sequence"] = int(previous.get("sequence") or 0) + 1
    digest = record_sha256(sealed)
    sealed["record_sha256"] = digest
    sealed["signature"] = sign_digest(digest, private_key_pem)
    return sealed


def sign_digest(digest_hex: str, private_key_pem: bytes) -> dict[str, str]:
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("records are signed with an ECDSA P-256 key")
    der = key.sign(bytes.fromhex(digest_hex), ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    r, s = utils.decode_dss_signature(der)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return {"alg": SIGNATURE_ALG, "key_id": public_key_id(key.public_key()),
            "value": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}


def verify_signature(record: Mapping[str, Any], public_key_or_cert_pem: bytes) -> bool:
    """True when the record's hash is intact and its signature was made by this key (or certificate)."""
    signature = record.get("signature")
    digest = record.get("record_sha256")
    if not isinstance(signature, Mapping) or signature.get("alg") != SIGNATURE_ALG or digest != record_sha256(record):
        return False
    public_key = _public_key(public_key_or_cert_pem)
    try:
        raw = base64.urlsafe_b64decode(str(signature["value"]) + "==")
        if len(raw) != 64:
            return False
        der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        public_key.verify(der, bytes.fromhex(digest), ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    except (InvalidSignature, ValueError, KeyError):
        return False
    return True


@dataclass(frozen=True)
class ChainCheck:
    """Truthy when the chain holds; otherwise ``first_break`` is the index of the first bad record."""

    first_break: int | None
    reason: str = ""

    def __bool__(self) -> bool:
        return self.first_break is None


def chain_ok(records: Sequence[Mapping[str, Any]], public_key_or_cert_pem: bytes | None = None, *,
             verify: Callable[[Mapping[str, Any]], bool] | None = None) -> ChainCheck:
    """Check a tenant's records in order: each record's own hash, its link to the one before and
    its sequence number, and, given a key (or a ``verify`` function, for chains signed by several
    keys over time), its signature. The first record may start anywhere (a window of a longer
    chain); a full chain starts at sequence 0 with ``previous_sha256`` None."""
    for i, record in enumerate(records):
        if record.get("record_sha256") != record_sha256(record):
            return ChainCheck(i, "the record's content does not match its hash")
        if public_key_or_cert_pem is not None and not verify_signature(record, public_key_or_cert_pem):
            return ChainCheck(i, "bad signature")
        if verify is not None and not verify(record):
            return ChainCheck(i, "bad signature")
        if i == 0:
            if record.get("sequence") == 0 and record.get("previous_sha256") is not None:
                return ChainCheck(0, "the first record links to a predecessor")
            continue
        before = records[i - 1]
        if record.get("previous_sha256") != before.get("record_sha256"):
            return ChainCheck(i, "the link to the previous record is broken")
        if record.get("sequence") != int(before.get("sequence") or 0) + 1:
            return ChainCheck(i, "the sequence number does not follow")
    return ChainCheck(None)


def _public_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    key: object = (load_pem_x509_certificate(pem).public_key() if b"BEGIN CERTIFICATE" in pem
                   else serialization.load_pem_public_key(pem))
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("records are verified with an ECDSA P-256 key")
    return key

