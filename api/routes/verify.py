"""POST /v1/verify: did this image come from this service, and from which job?

The checks run in the issue's order and every one is reported in ``evidence``:

1. C2PA: the embedded manifest, verified against the trust anchors (trusted / valid_untrusted /
   invalid / absent). Only a trusted manifest may name the record: anyone can sign a manifest
   that claims one of our record ids with their own certificate.
2. sha256: the exact bytes of a stored result.
3. watermark: the payload read from the pixels (a CRC-24 guards it), looked up.
4. perceptual: the nearest stored result by pHash, with dHash and colour signature agreeing too;
   restorations are not in this index (they look like the artwork they restored), nor is a
   result whose own input is as near to the image as the result is.

The first check that finds a stored result decides ``match``. C2PA or sha256 -> ``ours`` (these
are our bytes); watermark or perceptual only -> ``ours_modified`` (a re-encoded, resized or
edited copy); nothing -> ``not_ours``. Job, record and record signature are shown only when the
result belongs to the caller's tenant; for anyone else the answer is "made by this service" and
which checks found it, without identifiers.
"""

from __future__ import annotations

import json
from typing import Any

from flask_smorest import Blueprint

from api.errors import ApiError
from api.routes.jobs import base_url
from api.schemas import ImageFileSchema, VerifySchema
from api.services import Services, principal, services
from shared.marks import watermark
from shared.marks.evidence import Evidence, examine_image
from shared.marks.perceptual import PHASH_MATCH_DISTANCE
from shared.objects import ObjectNotFound
from shared.provenance import record_sha256
from shared.provenance_index import ProvenanceIndex, ResultLocation, SignerRegistry
from shared.signing import read_trust_anchors

blp = Blueprint("verify", __name__, url_prefix="/v1/verify",
                description="Did an image come from this service, and from which job")

STRONG = ("c2pa", "sha256")


@blp.route("", methods=["POST"])
@blp.arguments(ImageFileSchema, location="files")
@blp.response(200, VerifySchema)
@blp.alt_response(413, description="larger than the byte or pixel limit")
@blp.alt_response(415, description="not an accepted image (PNG, JPEG, WebP, TIFF) or corrupt")
def verify_image(files: dict[str, Any]) -> dict[str, Any]:
    who, svc = principal(), services()
    data = files["file"].read(svc.settings.max_upload_bytes + 1)
    if len(data) > svc.settings.max_upload_bytes:
        raise ApiError(413, "too_large", f"images are limited to {svc.settings.max_upload_bytes} bytes")
    anchors = read_trust_anchors(svc.settings)
    evidence = examine_image(data, anchors or None, max_pixels=svc.settings.max_image_pixels,
                             watermark_key=watermark.key_from_secret(svc.settings.watermark_key))
    index = ProvenanceIndex(svc.jobs.redis)
    c2pa_state = evidence.c2pa["state"]
    near = index.nearest(evidence.perceptual)
    named = index.by_record_id(evidence.c2pa["record_id"])  # trusted or not: whose record the manifest names
    found: dict[str, ResultLocation | None] = {
        "c2pa": named if c2pa_state == "trusted" else None,
        "sha256": index.by_sha256(evidence.sha256),
        "watermark": index.by_payload(evidence.watermark_payload),
        "perceptual": near.location if near is not None else None,
    }
    method = next((name for name, location in found.items() if location is not None), None)
    location = found[method] if method is not None else None
    own = location is not None and location.tenant == who.tenant
    answer: dict[str, Any] = {
        "verdict": "not_ours" if method is None else ("ours" if method in STRONG else "ours_modified"),
        "made_by_this_service": method is not None,
        "method": method,
        "own": own,
        "match": match_details(location, svc, anchors) if own and location is not None else None,
        "evidence": evidence_summary(evidence, found, near.phash_distance if near else None,
                                     named is not None and named.tenant == who.tenant, who.tenant),
    }
    return answer


def evidence_summary(evidence: Evidence, found: dict[str, ResultLocation | None], phash_distance: int | None,
                     names_own_record: bool, tenant: str) -> dict[str, Any]:
    """What each check saw. Identifiers (record ids, payload, job) only for the caller's own results."""
    def mine(name: str) -> bool:
        location = found[name]
        return location is not None and location.tenant == tenant

    def record_id(name: str) -> dict[str, Any]:
        location = found[name]
        return {"record_id": location.record_id} if location is not None and mine(name) else {}

    c2pa = evidence.c2pa
    return {
        "c2pa": {"state": c2pa["state"], "matched": found["c2pa"] is not None, "failures": c2pa["failures"],
                 **({"record_id": c2pa["record_id"]} if names_own_record else {})},
        "sha256": {"value": evidence.sha256, "matched": found["sha256"] is not None, **record_id("sha256")},
        "watermark": {"detected": evidence.watermark_payload is not None,
                      "confidence": round(evidence.watermark_confidence, 3),
                      "matched": found["watermark"] is not None,
                      **({"payload": evidence.watermark_payload} if mine("watermark") else {}),
                      **record_id("watermark")},
        "perceptual": {**evidence.perceptual, "matched": found["perceptual"] is not None,
                       "distance": phash_distance, "max_distance": PHASH_MATCH_DISTANCE,
                       **record_id("perceptual")},
        "xmp": {"present": evidence.xmp is not None,
                "digital_source_type": (evidence.xmp or {}).get("digital_source_type")},
        "image": {"width": evidence.width, "height": evidence.height},
    }


def match_details(location: ResultLocation, svc: Services, anchors: bytes) -> dict[str, Any]:
    """The job, the result and its record, with whether the stored record is intact and signed."""
    base = base_url(svc).rstrip("/")
    details: dict[str, Any] = {
        "job_id": location.job_id, "result_index": location.index, "record_id": location.record_id,
        "record_sha256": location.record_sha256, "result_sha256": location.sha256,
        "result_url": f"{base}/v1/jobs/{location.job_id}/results/{location.index}",
        "provenance_url": f"{base}/v1/jobs/{location.job_id}/results/{location.index}/provenance",
    }
    try:
        record = json.loads(svc.objects.get_bytes(svc.settings.bucket_results, location.record_key))
    except ObjectNotFound:
        return {**details, "record": None, "record_status": "missing"}
    intact = record.get("record_sha256") == location.record_sha256 == record_sha256(record)
    signature = SignerRegistry(svc.jobs.redis).check(record, anchors)
    return {**details, "record": record, "record_status": "intact" if intact else "changed",
            "signature": signature}
