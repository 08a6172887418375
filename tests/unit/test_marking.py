"""The store step's marking order and a verify request's evidence, end to end and offline:
a marked result is trusted as is; a JPEG q75 copy loses C2PA but keeps the watermark; a
half-size copy is still identified; an unrelated image is not ours."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from shared.marks import watermark
from shared.marks.evidence import examine_image
from shared.marks.perceptual import changed_fraction, perceptual_hashes, same_picture
from shared.provenance import build_record, chain_ok, digital_source_type, new_record_id, seal, verify_signature
from shared.signing import SigningKeys
from workers.data.procedural import make_dataset
from workers.provenance.marking import MarkedResult, mark_result

MAX_PIXELS = 40_000_000


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> SigningKeys:
    return SigningKeys.load_or_create(tmp_path_factory.mktemp("signing"))


@pytest.fixture(scope="module")
def result(keys: SigningKeys) -> tuple[str, MarkedResult]:
    image = Image.fromarray(make_dataset(1, 512, seed=21)[0][3])
    record_id = new_record_id()
    marked = mark_result(image, keys, record_id=record_id, job_id="job-1", kind="creation",
                         digital_source_type=digital_source_type("creation"), watermark_payload=0xC0FFEE,
                         creator="ArtForge", rights="(c) 2026 alice", usage_terms="no TDM", model_name="gan/abstract",
                         model_version="2")
    return record_id, marked


def reencoded(data: bytes, fmt: str = "JPEG", scale: float = 1.0) -> bytes:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    if scale != 1.0:
        img = img.resize((int(img.width * scale), int(img.height * scale)), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **({"quality": 75} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def test_a_stored_result_is_trusted_and_names_its_record(keys: SigningKeys, result: tuple[str, MarkedResult]) -> None:
    record_id, marked = result
    evidence = examine_image(marked.png, keys.trust_anchors_pem, max_pixels=MAX_PIXELS)
    assert evidence.sha256 == marked.sha256
    assert evidence.c2pa["state"] == "trusted" and evidence.c2pa["record_id"] == record_id
    assert evidence.xmp is not None and evidence.xmp["record_id"] == record_id
    assert evidence.watermark_payload == 0xC0FFEE
    assert evidence.perceptual == marked.perceptual


def test_a_jpeg_q75_copy_loses_c2pa_but_the_watermark_identifies_the_job(
        keys: SigningKeys, result: tuple[str, MarkedResult]) -> None:
    _, marked = result
    evidence = examine_image(reencoded(marked.png), keys.trust_anchors_pem, max_pixels=MAX_PIXELS)
    assert evidence.c2pa["state"] == "absent" and evidence.xmp is None
    assert evidence.sha256 != marked.sha256
    assert evidence.watermark_payload == 0xC0FFEE
    assert same_picture(evidence.perceptual, marked.perceptual)


def test_a_half_size_copy_is_still_identified(keys: SigningKeys, result: tuple[str, MarkedResult]) -> None:
    _, marked = result
    for copy in (reencoded(marked.png, "PNG", 0.5), reencoded(marked.png, "JPEG", 0.5)):
        evidence = examine_image(copy, keys.trust_anchors_pem, max_pixels=MAX_PIXELS)
        assert evidence.watermark_payload == 0xC0FFEE
        assert same_picture(evidence.perceptual, marked.perceptual)


def test_an_unrelated_image_is_not_ours(keys: SigningKeys, result: tuple[str, MarkedResult]) -> None:
    _, marked = result
    other = Image.fromarray(make_dataset(1, 512, seed=77)[0][0])
    buffer = io.BytesIO()
    other.save(buffer, format="PNG")
    evidence = examine_image(buffer.getvalue(), keys.trust_anchors_pem, max_pixels=MAX_PIXELS)
    assert evidence.c2pa["state"] == "absent" and evidence.watermark_payload is None and evidence.xmp is None
    assert not same_picture(evidence.perceptual, marked.perceptual)


def test_the_record_of_a_marked_result_is_sealed_and_chained(keys: SigningKeys,
                                                             result: tuple[str, MarkedResult]) -> None:
    record_id, marked = result
    records: list[dict[str, Any]] = []
    for index in range(3):
        record = build_record(record_id=record_id if index == 0 else None, job_id="job-1", tenant="alice",
                              key_id="k1", kind="creation", params={"count": 3},
                              model={"name": "gan/abstract", "version": "2", "weights_sha256": "ab" * 32},
                              inputs=[], output=marked.output_facts(index),
                              marks=marked.marks(sidecar_key=f"alice/job-1/{index}.c2pa"))
        records.append(seal(record, records[-1] if records else None, keys.private_key_pem))
    assert records[0]["output"]["sha256"] == marked.sha256
    assert records[0]["marks"]["watermark"]["payload"] == 0xC0FFEE
    assert all(verify_signature(r, keys.signer_certificate_pem) for r in records)
    assert chain_ok(records, keys.signer_certificate_pem)


def test_changed_fraction_separates_inpainting_from_a_tone_change() -> None:
    before = Image.fromarray(make_dataset(1, 256, seed=5)[0][1])
    toned = Image.eval(before, lambda v: int(v * 0.8 + 30))
    assert changed_fraction(before, toned) < 0.005
    patched = before.copy()
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    patched.paste(Image.fromarray(noise), (40, 40))  # new content over 1/16 of the picture
    assert 0.6 / 16 < changed_fraction(before, patched) <= 1 / 16
    assert changed_fraction(before, before.resize((128, 128))) < 0.05


def test_watermark_payload_fits_the_record(result: tuple[str, MarkedResult]) -> None:
    _, marked = result
    assert marked.marks()["watermark"]["payload_bits"] == watermark.PAYLOAD_BITS == 32
    assert marked.watermark_readable and marked.marks()["watermark"]["readable"]


def test_a_result_too_small_for_the_watermark_says_so(keys: SigningKeys) -> None:
    tiny = mark_result(Image.fromarray(make_dataset(1, 32, seed=1)[0][0]), keys, record_id="r", job_id="j",
                       kind="creation", digital_source_type="trainedAlgorithmicMedia", watermark_payload=9,
                       creator="ArtForge", rights="r", usage_terms="u")
    assert not tiny.watermark_readable


def test_a_result_marked_without_a_watermark_keeps_its_pixels(keys: SigningKeys) -> None:
    mask = Image.fromarray(((np.arange(256 * 256).reshape(256, 256) % 7 == 0) * 255).astype(np.uint8))
    marked = mark_result(mask, keys, record_id="r", job_id="j", kind="restoration",
                         digital_source_type="algorithmicMedia", watermark_payload=None, creator="a", rights="r",
                         usage_terms="u", unmarked_reason="a damage mask")
    stored = np.asarray(Image.open(io.BytesIO(marked.png)).convert("L"))
    assert np.array_equal(stored, np.asarray(mask))
    assert marked.marks()["watermark"] == {"applied": False, "reason": "a damage mask"}
    evidence = examine_image(marked.png, keys.trust_anchors_pem, max_pixels=MAX_PIXELS)
    assert evidence.c2pa["state"] == "trusted" and evidence.watermark_payload is None


def test_a_deployment_key_reads_only_its_own_marks(keys: SigningKeys) -> None:
    image = Image.fromarray(make_dataset(1, 256, seed=31)[0][4])
    secret = watermark.key_from_secret("s3cret")
    assert secret != watermark.DEFAULT_KEY == watermark.key_from_secret("")
    marked = mark_result(image, keys, record_id="r", job_id="j", kind="creation",
                         digital_source_type="trainedAlgorithmicMedia", watermark_payload=77, creator="a",
                         rights="r", usage_terms="u", watermark_key=secret)
    assert examine_image(marked.png, None, max_pixels=MAX_PIXELS, watermark_key=secret).watermark_payload == 77
    assert examine_image(marked.png, None, max_pixels=MAX_PIXELS).watermark_payload is None


def test_striped_paintings_are_told_apart_by_colour_and_copies_are_not() -> None:
    """pHash and dHash see stripes as stripes; the colour signature separates unrelated ones."""
    images, labels = make_dataset(20, 256, seed=41)
    stripes = [Image.fromarray(img) for img, label in zip(images, labels, strict=True) if label == 4]
    hashes = [perceptual_hashes(img) for img in stripes]
    pairs = [(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1:]]
    luma_only = sum(same_picture(a, b, max_colour_distance=255) for a, b in pairs)
    assert sum(same_picture(a, b) for a, b in pairs) == 0 and luma_only > 0
    for img, original in zip(stripes, hashes, strict=True):
        for copy in (reencoded(_png(img)), reencoded(_png(img), "PNG", 0.5), _png(img.convert("L"))):
            assert same_picture(perceptual_hashes(Image.open(io.BytesIO(copy))), original)


def _png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()
