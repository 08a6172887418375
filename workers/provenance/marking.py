"""Marking a result before it is stored, and gathering the evidence a verify request needs.

``mark_result`` runs the steps in the only order that works: the watermark changes pixels, so it
comes first; the PNG is encoded once; XMP is inserted into those bytes; C2PA signs last, because
its hash binds every byte of the file. Perceptual hashes are taken from the marked pixels.

``examine_image`` reads everything an uploaded image can tell by itself (C2PA state, XMP, sha256,
watermark payload, perceptual hashes); the caller then looks the sha256, the payload and the
hashes up among stored results.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from shared.images import decode_image, encode_png
from shared.signing import SigningKeys
from workers.provenance import watermark
from workers.provenance.c2pa_manifest import Ingredient, read_manifest, sign_png
from workers.provenance.perceptual import perceptual_hashes
from workers.provenance.xmp import XmpFacts, embed_xmp, read_xmp

WATERMARK_METHOD = "artforge-dct-cc/1"  # names the scheme in records: canonical-grid DCT, convolutional code


@dataclass(frozen=True)
class MarkedResult:
    png: bytes  # the bytes to store and serve: watermark, XMP and C2PA manifest in place
    sidecar: bytes  # the C2PA manifest store alone, stored beside the image as ``.c2pa``
    sha256: str  # of ``png``
    width: int
    height: int
    perceptual: dict[str, str]
    watermark_payload: int
    watermark_readable: bool  # the payload reads back from the stored pixels (False under watermark.MIN_SIDE)
    digital_source_type: str  # IPTC code

    def output_facts(self, index: int, details: dict[str, Any] | None = None) -> dict[str, Any]:
        """The record's ``output`` section."""
        return {"index": index, "sha256": self.sha256, "bytes": len(self.png), "width": self.width,
                "height": self.height, "format": "PNG", "perceptual": self.perceptual, "details": details or {}}

    def marks(self, sidecar_key: str | None = None) -> dict[str, Any]:
        """The record's ``marks`` section."""
        return {"xmp": True,
                "watermark": {"method": WATERMARK_METHOD, "payload": self.watermark_payload,
                              "payload_bits": watermark.PAYLOAD_BITS, "readable": self.watermark_readable},
                "c2pa": {"embedded": True, "sidecar_key": sidecar_key,
                         "sidecar_sha256": hashlib.sha256(self.sidecar).hexdigest()}}


def mark_result(
    image: Image.Image,
    keys: SigningKeys,
    *,
    record_id: str,
    job_id: str,
    kind: str,
    digital_source_type: str,
    watermark_payload: int,
    creator: str,
    rights: str,
    usage_terms: str,
    model_name: str = "",
    model_version: str = "",
    ingredients: Sequence[Ingredient | tuple[str, bytes | str, str]] = (),
    watermark_key: int = watermark.DEFAULT_KEY,
) -> MarkedResult:
    marked = watermark.embed(image, watermark_payload, key=watermark_key)
    png = embed_xmp(encode_png(marked), XmpFacts(
        digital_source_type=digital_source_type, creator=creator, rights=rights, usage_terms=usage_terms,
        record_id=record_id, job_id=job_id, ai_system=model_name, ai_system_version=model_version))
    signed = sign_png(png, keys, kind=kind, digital_source_type=digital_source_type, record_id=record_id,
                      job_id=job_id, ingredients=ingredients, model=model_name)
    return MarkedResult(png=signed.image, sidecar=signed.manifest, sha256=hashlib.sha256(signed.image).hexdigest(),
                        width=marked.width, height=marked.height, perceptual=perceptual_hashes(marked),
                        watermark_payload=watermark_payload,
                        watermark_readable=watermark.detect(marked, key=watermark_key)[0] == watermark_payload,
                        digital_source_type=digital_source_type)


@dataclass(frozen=True)
class Evidence:
    sha256: str
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
    return Evidence(sha256=decoded.sha256, c2pa=read_manifest(data, trust_anchors_pem), xmp=read_xmp(data),
                    watermark_payload=payload, watermark_confidence=confidence,
                    perceptual=perceptual_hashes(decoded.image))
