"""C2PA manifests for results, signed ES256 with ``c2pa-python``, and their verification.

A result's manifest holds: an actions assertion (``c2pa.created`` for a creation; ``c2pa.opened``
of the parent input then ``c2pa.edited`` for a restoration or a style transfer) carrying the IPTC
digital source type; one ingredient per input (the parent is ``parentOf``, the others
``componentOf``), with the input's sha256 in its metadata; a ``c2pa.training-mining`` assertion
with every use "notAllowed"; and an ``org.artforge.provenance`` assertion naming the record. No
thumbnails, of the result or the ingredients. Sign last: the manifest's hash binds every byte of
the file (XMP included), so any later change to the bytes makes it invalid.

Reading never touches the network (no remote manifests, no OCSP).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import c2pa

from shared.provenance import CODE_VERSION, digital_source_type_uri
from shared.signing import SigningKeys

State = Literal["trusted", "valid_untrusted", "invalid", "absent"]
ARTFORGE_ASSERTION = "org.artforge.provenance"
# C2PA 2.x training-and-data-mining entries; all are reserved.
TRAINING_MINING_USES = ("c2pa.ai_generative_training", "c2pa.ai_inference", "c2pa.ai_training", "c2pa.data_mining")
PARENT_ROLES = ("content", "image")  # style transfer's content image, restoration's damaged image
_STATES: dict[str, State] = {"Trusted": "trusted", "Valid": "valid_untrusted", "Invalid": "invalid"}
_NO_NETWORK = {"remote_manifest_fetch": False, "ocsp_fetch": False}


@dataclass(frozen=True)
class Ingredient:
    role: str  # the job input's role: content, style, image, mask
    content: bytes | str  # the input's bytes, or only its sha256 (hex) when the bytes are gone
    title: str
    sha256: str = ""  # of the bytes; computed when empty and the bytes are given

    @classmethod
    def of(cls, item: Ingredient | tuple[str, bytes | str, str]) -> Ingredient:
        return item if isinstance(item, Ingredient) else cls(*item)

    @property
    def digest(self) -> str:
        if self.sha256:
            return self.sha256
        return hashlib.sha256(self.content).hexdigest() if isinstance(self.content, bytes) else self.content


@dataclass(frozen=True)
class SignedImage:
    image: bytes  # the PNG with its manifest store embedded: the bytes to store and serve
    manifest: bytes  # the same manifest store on its own: the sidecar ``.c2pa`` file


def sign_png(
    png: bytes,
    keys: SigningKeys,
    *,
    kind: str,
    digital_source_type: str,
    record_id: str,
    job_id: str,
    ingredients: Sequence[Ingredient | tuple[str, bytes | str, str]] = (),
    title: str = "result.png",
    model: str = "",
) -> SignedImage:
    """Embed a signed manifest in ``png``; ``digital_source_type`` is the IPTC code."""
    parts = [Ingredient.of(item) for item in ingredients]
    parent = next((p for p in parts if p.role in PARENT_ROLES), None) if kind != "creation" else None
    source_type = digital_source_type_uri(digital_source_type)
    agent = {"name": "ArtForge", "version": CODE_VERSION}
    if parent is None:
        actions: list[dict[str, Any]] = [{"action": "c2pa.created", "digitalSourceType": source_type,
                                          "softwareAgent": agent}]
        components = parts
    else:
        components = [p for p in parts if p is not parent]
        edited: dict[str, Any] = {"action": "c2pa.edited", "digitalSourceType": source_type, "softwareAgent": agent,
                                  "description": f"ArtForge {kind}"}
        if components:
            edited["parameters"] = {"ingredientIds": [_label(p) for p in components]}
        actions = [{"action": "c2pa.opened", "parameters": {"ingredientIds": [_label(parent)]}}, edited]
    manifest = {
        "claim_generator_info": [agent],
        "title": title,
        "format": "image/png",
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": actions}},
            {"label": "c2pa.training-mining",
             "data": {"entries": {use: {"use": "notAllowed"} for use in TRAINING_MINING_USES}}},
            {"label": ARTFORGE_ASSERTION,
             "data": {"record_id": record_id, "job_id": job_id, "operation": kind, "model": model}},
        ],
    }
    ordered = [(part, "parentOf" if part is parent else "componentOf")
               for part in ([parent] if parent is not None else []) + components]
    # Inputs whose bytes are gone are described by their hash only, in the manifest definition.
    manifest["ingredients"] = [_ingredient(part, rel) for part, rel in ordered if _readable(part) is None]
    signer = _signer(keys)
    builder = c2pa.Builder.from_json(manifest, context=_signing_context(os.getpid()))
    for part, relationship in ordered:
        mime = _readable(part)
        if mime is not None and isinstance(part.content, bytes):
            builder.add_ingredient(_ingredient(part, relationship), mime, io.BytesIO(part.content))
    out = io.BytesIO()
    store = builder.sign(signer, "image/png", io.BytesIO(png), out)
    return SignedImage(image=out.getvalue(), manifest=store)


def read_manifest(image_bytes: bytes, trust_anchors_pem: bytes | None = None, *,
                  sidecar: bytes | None = None) -> dict[str, Any]:
    """``{"state", "manifest", "record_id", "failures"}`` for the manifest in ``image_bytes``
    (or in ``sidecar``, checked against these bytes).

    trusted: valid and signed by a certificate that chains to ``trust_anchors_pem``;
    valid_untrusted: intact, but the signer is not anchored there; invalid: the signature or the
    hash of the bytes does not match (the pixels or metadata changed since signing);
    absent: no manifest (re-encoded, stripped, or never signed).
    """
    mime = _sniff_mime(image_bytes)
    context = _reading_context(trust_anchors_pem or b"", os.getpid())
    try:
        reader = c2pa.Reader.try_create(mime, io.BytesIO(image_bytes), sidecar, context)
    except c2pa.C2paError.NotSupported:
        return {"state": "absent", "manifest": None, "record_id": None, "failures": []}
    except c2pa.C2paError as exc:
        return {"state": "invalid", "manifest": None, "record_id": None, "failures": [str(exc)]}
    if reader is None:
        return {"state": "absent", "manifest": None, "record_id": None, "failures": []}
    with reader:
        state = _STATES.get(reader.get_validation_state() or "", "invalid")
        manifest = reader.get_active_manifest()
        results = reader.get_validation_results() or {}
    failures = [entry.get("code") for entry in (results.get("activeManifest") or {}).get("failure", [])]
    return {"state": state, "manifest": manifest, "record_id": _record_id(manifest), "failures": failures}


def _label(part: Ingredient) -> str:
    return f"input-{part.role}"


def _ingredient(part: Ingredient, relationship: str) -> dict[str, Any]:
    return {"title": part.title, "relationship": relationship, "label": _label(part),
            "description": f"{part.role} input, sha256:{part.digest}",
            "metadata": {"org.artforge.role": part.role, "org.artforge.sha256": part.digest}}


def _readable(part: Ingredient) -> str | None:
    """The MIME type c2pa should read the ingredient's bytes as, or None to describe it by hash only."""
    return _sniff_mime(part.content) if isinstance(part.content, bytes) else None


def _record_id(manifest: dict[str, Any] | None) -> str | None:
    for assertion in (manifest or {}).get("assertions", []):
        if assertion.get("label") == ARTFORGE_ASSERTION:
            value = assertion.get("data", {}).get("record_id")
            return value if isinstance(value, str) else None
    return None


def _sniff_mime(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    return None


_THREAD_SIGNERS = threading.local()


def _signer(keys: SigningKeys) -> c2pa.Signer:
    """A signer per thread and key, made once: making one costs a quarter of a small image's signing.
    Kept per thread because the native signer is not documented as safe to share between threads,
    and per process because a forked child cannot use its parent's native handle."""
    signers: dict[tuple[int, bytes], c2pa.Signer] = _THREAD_SIGNERS.__dict__.setdefault("by_key", {})
    fingerprint = (os.getpid(), hashlib.sha256(keys.private_key_pem + keys.cert_chain_pem).digest())
    if fingerprint not in signers:
        signers.clear()  # a rotated key's signer is not needed again
        signers[fingerprint] = c2pa.Signer.from_info(c2pa.C2paSignerInfo(
            c2pa.C2paSigningAlg.ES256, keys.cert_chain_pem, keys.private_key_pem, None))
    return signers[fingerprint]


# Native contexts and signers are made once per process (``pid``): a forked child cannot use its
# parent's native handles.
@lru_cache(maxsize=2)
def _signing_context(pid: int) -> c2pa.Context:
    return c2pa.Context.from_dict({"version": 1, "builder": {"thumbnail": {"enabled": False}},
                                   "verify": {**_NO_NETWORK}})


@lru_cache(maxsize=8)
def _reading_context(trust_anchors_pem: bytes, pid: int) -> c2pa.Context:
    settings: dict[str, Any] = {"version": 1, "verify": {"verify_trust": True, **_NO_NETWORK}}
    if trust_anchors_pem:
        settings["trust"] = {"trust_anchors": trust_anchors_pem.decode()}
    return c2pa.Context.from_json(json.dumps(settings))
