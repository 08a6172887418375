"""C2PA manifests: signed ES256 with our local CA, read back as trusted / valid but untrusted /
invalid / absent, with the assertions the issue asks for and no thumbnails."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from shared.images import encode_png
from shared.marks.c2pa_manifest import ARTFORGE_ASSERTION, read_manifest, sign_png
from shared.marks.xmp import XmpFacts, embed_xmp, read_xmp
from shared.signing import SigningKeys
from workers.data.procedural import make_dataset

CREATED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> SigningKeys:
    return SigningKeys.load_or_create(tmp_path_factory.mktemp("signing"))


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    return [Image.fromarray(pixels) for pixels in make_dataset(1, 256, seed=3)[0]]


@pytest.fixture(scope="module")
def created(keys: SigningKeys, images: list[Image.Image]) -> Any:
    png = embed_xmp(encode_png(images[0]), XmpFacts(digital_source_type="trainedAlgorithmicMedia", creator="ArtForge",
                                                    rights="(c) alice", usage_terms="no TDM", record_id="rec-1"))
    return sign_png(png, keys, kind="creation", digital_source_type="trainedAlgorithmicMedia", record_id="rec-1",
                    job_id="job-1", model="gan/abstract@2")


def assertion(manifest: dict[str, Any], label: str) -> dict[str, Any]:
    return next(a["data"] for a in manifest["assertions"] if a["label"] == label)


def test_signed_result_is_trusted_against_our_ca(keys: SigningKeys, created: Any) -> None:
    found = read_manifest(created.image, keys.trust_anchors_pem)
    assert found["state"] == "trusted" and found["failures"] == []
    assert found["record_id"] == "rec-1"
    manifest = found["manifest"]
    assert manifest["signature_info"]["alg"].upper() == "ES256"
    actions = assertion(manifest, "c2pa.actions.v2")["actions"]
    assert actions[0]["action"] == "c2pa.created" and actions[0]["digitalSourceType"] == CREATED
    entries = assertion(manifest, "c2pa.training-mining")["entries"]
    assert entries and {entry["use"] for entry in entries.values()} == {"notAllowed"}
    assert assertion(manifest, ARTFORGE_ASSERTION)["job_id"] == "job-1"
    assert "thumbnail" not in manifest and not any("thumbnail" in a["label"] for a in manifest["assertions"])


def test_xmp_written_before_signing_is_still_there(created: Any) -> None:
    assert read_xmp(created.image)["record_id"] == "rec-1"


def test_without_our_anchors_the_manifest_is_valid_but_untrusted(created: Any, tmp_path: Path) -> None:
    assert read_manifest(created.image, None)["state"] == "valid_untrusted"
    stranger = SigningKeys.load_or_create(tmp_path)
    found = read_manifest(created.image, stranger.trust_anchors_pem)
    assert found["state"] == "valid_untrusted" and "signingCredential.untrusted" in found["failures"]


def png_with_pixels_of(signed: bytes, other: bytes) -> bytes:
    """``signed`` with its IDAT chunks swapped for ``other``'s: same manifest, different pixels."""
    def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
        out, pos = [], 8
        while pos < len(data):
            (length,) = struct.unpack(">I", data[pos:pos + 4])
            out.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]))
            pos += 12 + length
        return out

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    new_idat = b"".join(chunk(k, b) for k, b in chunks(other) if k == b"IDAT")
    out, placed = [signed[:8]], False
    for kind, body in chunks(signed):
        if kind == b"IDAT":
            if not placed:
                out.append(new_idat)
                placed = True
            continue
        out.append(chunk(kind, body))
    return b"".join(out)


def test_changed_pixels_make_the_manifest_invalid(keys: SigningKeys, created: Any) -> None:
    pixels = np.asarray(Image.open(io.BytesIO(created.image))).copy()
    pixels[100:110, 100:110] ^= 0xFF
    tampered = png_with_pixels_of(created.image, encode_png(Image.fromarray(pixels)))
    assert not np.array_equal(np.asarray(Image.open(io.BytesIO(tampered))), np.asarray(Image.open(io.BytesIO(
        created.image))))
    found = read_manifest(tampered, keys.trust_anchors_pem)
    assert found["state"] == "invalid" and "assertion.dataHash.mismatch" in found["failures"]


def test_jpeg_reencoding_drops_the_manifest(keys: SigningKeys, created: Any) -> None:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(created.image)).save(buffer, format="JPEG", quality=75)
    assert read_manifest(buffer.getvalue(), keys.trust_anchors_pem) == {
        "state": "absent", "manifest": None, "record_id": None, "failures": []}


@pytest.mark.parametrize("data", [b"", b"plain text", encode_png(Image.new("RGB", (8, 8)))])
def test_files_without_a_manifest_are_absent(keys: SigningKeys, data: bytes) -> None:
    assert read_manifest(data, keys.trust_anchors_pem)["state"] == "absent"


def test_sidecar_verifies_the_stored_bytes_and_not_others(keys: SigningKeys, created: Any) -> None:
    assert created.manifest and created.manifest in created.image
    assert read_manifest(created.image, keys.trust_anchors_pem, sidecar=created.manifest)["state"] == "trusted"
    buffer = io.BytesIO()
    Image.open(io.BytesIO(created.image)).save(buffer, format="JPEG", quality=75)
    assert read_manifest(buffer.getvalue(), keys.trust_anchors_pem, sidecar=created.manifest)["state"] == "invalid"


def test_an_edit_names_its_inputs_as_ingredients(keys: SigningKeys, images: list[Image.Image]) -> None:
    content, style = encode_png(images[1]), encode_png(images[2])
    style_hash = hashlib.sha256(style).hexdigest()
    signed = sign_png(encode_png(images[3]), keys, kind="style_transfer", digital_source_type="trainedAlgorithmicMedia",
                      record_id="rec-2", job_id="job-2",
                      ingredients=[("content", content, "photo.png"), ("style", style_hash, "painting.png")])
    found = read_manifest(signed.image, keys.trust_anchors_pem)
    assert found["state"] == "trusted"
    manifest = found["manifest"]
    actions = assertion(manifest, "c2pa.actions.v2")["actions"]
    assert [a["action"] for a in actions] == ["c2pa.opened", "c2pa.edited"]
    assert actions[1]["digitalSourceType"] == CREATED
    by_title = {i["title"]: i for i in manifest["ingredients"]}
    assert by_title["photo.png"]["relationship"] == "parentOf"
    assert by_title["photo.png"]["metadata"]["org.artforge.sha256"] == hashlib.sha256(content).hexdigest()
    assert by_title["painting.png"]["relationship"] == "componentOf"
    assert by_title["painting.png"]["metadata"]["org.artforge.sha256"] == style_hash
    assert not any("thumbnail" in i for i in manifest["ingredients"])


def test_restoration_records_its_digital_source_type(keys: SigningKeys, images: list[Image.Image]) -> None:
    signed = sign_png(encode_png(images[4]), keys, kind="restoration", digital_source_type="algorithmicallyEnhanced",
                      record_id="rec-3", job_id="job-3", ingredients=[("image", encode_png(images[5]), "scan.png")])
    actions = assertion(read_manifest(signed.image, keys.trust_anchors_pem)["manifest"], "c2pa.actions.v2")["actions"]
    assert actions[-1]["digitalSourceType"].endswith("/algorithmicallyEnhanced")


def _sign_and_read(keys: SigningKeys, png: bytes, record_id: str) -> tuple[str, str | None]:
    found = read_manifest(sign_png(png, keys, kind="creation", digital_source_type="trainedAlgorithmicMedia",
                                   record_id=record_id, job_id="job-2").image, keys.trust_anchors_pem)
    return found["state"], found["record_id"]


def test_signers_are_reused_across_signings_threads_and_a_forked_child(keys: SigningKeys,
                                                                      images: list[Image.Image]) -> None:
    """Each thread keeps its signer; a child forked after its parent signed makes its own."""
    import multiprocessing
    from concurrent.futures import ThreadPoolExecutor

    png = encode_png(images[1])
    assert [_sign_and_read(keys, png, f"rec-{i}") for i in range(3)] == [("trusted", f"rec-{i}") for i in range(3)]
    with ThreadPoolExecutor(4) as pool:
        states = list(pool.map(lambda i: _sign_and_read(keys, png, f"rec-t{i}"), range(8)))
    assert states == [("trusted", f"rec-t{i}") for i in range(8)]
    with multiprocessing.get_context("fork").Pool(1) as child:
        assert child.apply(_sign_and_read, (keys, png, "rec-child")) == ("trusted", "rec-child")
