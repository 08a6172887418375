"""Marking a result before it is stored.

``mark_result`` runs the steps in the only order that works: the watermark changes pixels, so it
comes first; the PNG is encoded once; XMP is inserted into those bytes; C2PA signs last, because
its hash binds every byte of the file. Perceptual hashes are taken from the marked pixels.
Reading the marks back is ``shared.marks.evidence.examine_image``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from PIL import Image

from shared.images import encode_png
from shared.marks import watermark
from shared.marks.c2pa_manifest import Ingredient, sign_png
from shared.marks.perceptual import perceptual_hashes
from shared.marks.xmp import XmpFacts, embed_xmp
from shared.signing import SigningKeys

WATERMARK_METHOD = "artforge-dct-cc/1"  # names the scheme in records: canonical-grid DCT, convolutional code
# From this many pixels the checks of the marked image overlap its encoding; below, a thread
# hand-off costs more than it saves.
OVERLAPPED_CHECK_PIXELS = 256 * 256


@dataclass(frozen=True)
class MarkedResult:
    png: bytes  # the bytes to store and serve: watermark, XMP and C2PA manifest in place
    sidecar: bytes  # the C2PA manifest store alone, stored beside the image as ``.c2pa``
    sha256: str  # of ``png``
    width: int
    height: int
    perceptual: dict[str, str]
    watermark_payload: int | None  # None: not watermarked (see ``unmarked_reason``)
    watermark_readable: bool  # the payload reads back from the stored pixels (False under watermark.MIN_SIDE)
    digital_source_type: str  # IPTC code
    unmarked_reason: str = ""

    def output_facts(self, index: int, details: dict[str, Any] | None = None, role: str = "result") -> dict[str, Any]:
        """The record's ``output`` section."""
        return {"index": index, "role": role, "sha256": self.sha256, "bytes": len(self.png), "width": self.width,
                "height": self.height, "format": "PNG", "perceptual": self.perceptual, "details": details or {}}

    def marks(self, sidecar_key: str | None = None) -> dict[str, Any]:
        """The record's ``marks`` section."""
        if self.watermark_payload is None:
            mark: dict[str, Any] = {"applied": False, "reason": self.unmarked_reason}
        else:
            mark = {"applied": True, "method": WATERMARK_METHOD, "payload": self.watermark_payload,
                    "payload_bits": watermark.PAYLOAD_BITS, "readable": self.watermark_readable}
        return {"xmp": True, "watermark": mark,
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
    watermark_payload: int | None,
    creator: str,
    rights: str,
    usage_terms: str,
    model_name: str = "",
    model_version: str = "",
    ingredients: Sequence[Ingredient | tuple[str, bytes | str, str]] = (),
    watermark_key: int = watermark.DEFAULT_KEY,
    title: str = "result.png",
    unmarked_reason: str = "",
) -> MarkedResult:
    """``watermark_payload=None`` leaves the pixels exactly as they are (give ``unmarked_reason``)."""
    if watermark_payload is None:
        marked = image.convert("RGB")
    else:
        marked = watermark.embed(image, watermark_payload, key=watermark_key)

    def check() -> tuple[bool, dict[str, str]]:
        readable = watermark_payload is not None and watermark.detect(marked, key=watermark_key)[0] == watermark_payload
        return readable, perceptual_hashes(marked)

    # The read-back and the hashes need only the marked pixels: on a large image they run beside
    # the PNG encoding and signing, which release the GIL (512 px: 4 ms of 40 saved).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mark-check") as helper:
        checked = helper.submit(check) if marked.width * marked.height >= OVERLAPPED_CHECK_PIXELS else None
        png = embed_xmp(encode_png(marked), XmpFacts(
            digital_source_type=digital_source_type, creator=creator, rights=rights, usage_terms=usage_terms,
            record_id=record_id, job_id=job_id, ai_system=model_name, ai_system_version=model_version))
        signed = sign_png(png, keys, kind=kind, digital_source_type=digital_source_type, record_id=record_id,
                          job_id=job_id, ingredients=ingredients, model=model_name, title=title)
        readable, perceptual = checked.result() if checked is not None else check()
    return MarkedResult(png=signed.image, sidecar=signed.manifest, sha256=hashlib.sha256(signed.image).hexdigest(),
                        width=marked.width, height=marked.height, perceptual=perceptual,
                        watermark_payload=watermark_payload, watermark_readable=readable,
                        digital_source_type=digital_source_type, unmarked_reason=unmarked_reason)
