"""Everything an image says about itself, gathered for ``POST /v1/verify``.

``examine_image`` decodes with the upload rules (allow-listed formats, pixel cap), then reads the
C2PA manifest (checked against the trust anchors), the XMP packet, the sha256 of the bytes as
sent, the watermark payload and the perceptual hashes. Looking the sha256, the payload and the
hashes up among stored results is ``shared.provenance_index``'s part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.images import decode_image
from shared.marks import watermark
from shared.marks.c2pa_manifest import read_manifest
from shared.marks.perceptual import perceptual_hashes
from shared.marks.xmp import read_xmp


@dataclass(frozen=True)
class Evidence:
    sha256: str
    width: int
    height: int
    c2pa: dict[str, Any]  # read_manifest's answer: state, manifest, record_id, failures
    xmp: dict[str, object] | None
    watermark_payload: int | None
    watermark_confidence: float
    perceptual: dict[str, str]


def examine_image(data: bytes, trust_anchors_pem: bytes | None, *, max_pixels: int,
                  watermark_key: int = watermark.DEFAULT_KEY) -> Evidence:
    """Everything ``data`` says about itself; raises ``shared.images.ImageRejected`` for non-images."""
    decoded = decode_image(data, max_pixels)
    payload, confidence = watermark.detect(decoded.image, key=watermark_key)
    return Evidence(sha256=decoded.sha256, width=decoded.width, height=decoded.height,
                    c2pa=read_manifest(data, trust_anchors_pem), xmp=read_xmp(data),
                    watermark_payload=payload, watermark_confidence=confidence,
                    perceptual=perceptual_hashes(decoded.image))
