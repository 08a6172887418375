"""Datasets over HTTP: safe zip ingestion, licences, growing datasets by versions, and training
on a tenant's own images."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from typing import Any

import pytest
import requests
from PIL import Image

from deploy.devstack import Stack
from shared.debian_images import MIXED_LICENCE
from tests.conftest import ApiClient, image_bytes
from workers.data.procedural import make_dataset
from workers.job_storage import S3Datasets
from workers.runtime import Runtime


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def labeled_zip() -> bytes:
    images, labels = make_dataset(per_style=6, size=48, seed=3)
    members = {}
    for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        if label in (0, 3):  # two styles: grid and drips
            members[f"{['grid', 'drips'][int(label) == 3]}/{i}.png"] = image_bytes(Image.fromarray(pixels))
    return zip_of(members)


def post_dataset(client: ApiClient, data: bytes, licence: str | None = "CC-BY-4.0"):  # type: ignore[no-untyped-def]
    form = {"licence": licence, "name": "my collection"} if licence is not None else {"name": "x"}
    return client.post("/v1/datasets", files={"file": ("data.zip", data)}, data=form)


def test_labeled_zip_becomes_a_dataset(client: ApiClient, other_client: ApiClient, labeled_zip: bytes) -> None:
    response = post_dataset(client, labeled_zip)
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["images"] == 12 and dataset["labels"] == {"drips": 6, "grid": 6} and dataset["version"] == 1
    assert dataset["licence"] == "CC-BY-4.0" and len(dataset["manifest_sha256"]) == 64
    assert client.get(f"/v1/datasets/{dataset['id']}").json() == dataset
    assert other_client.get(f"/v1/datasets/{dataset['id']}").status_code == 404


@pytest.mark.parametrize("name,members,status,code", [
    ("empty", {}, 422, "empty_dataset"),
    ("traversal", {"../evil.png": b"x"}, 422, "unsafe_path"),
    ("absolute", {"/etc/evil.png": b"x"}, 422, "unsafe_path"),
    ("non_image", {f"a/{i}.png": b"text, not an image" for i in range(9)}, 422, "not_an_image"),
    ("bomb", {"a/zeros.png": b"\0" * (64 * 1024 * 1024)}, 413, "zip_bomb"),
])
def test_bad_zips_are_refused(client: ApiClient, name: str, members: dict, status: int, code: str) -> None:
    response = post_dataset(client, zip_of(members))
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_one_image_and_not_a_zip_and_no_licence(client: ApiClient, labeled_zip: bytes) -> None:
    one = zip_of({"a/1.png": image_bytes(Image.new("RGB", (40, 40), (200, 0, 0)))})
    assert post_dataset(client, one).json()["error"]["code"] == "too_few_images"
    assert post_dataset(client, b"PK not really").status_code in (415, 422)
    response = post_dataset(client, labeled_zip, licence=None)
    assert response.status_code == 422 and response.json()["error"]["code"] == "licence_required"


@pytest.mark.slow
def test_training_on_a_tenants_dataset_registers_a_version(admin_client: ApiClient, labeled_zip: bytes) -> None:
    dataset = post_dataset(admin_client, labeled_zip).json()
    job = admin_client.submit({"kind": "training", "params": {
        "target": "gan", "model": "my-collection", "dataset": dataset["id"], "resolution": 32, "steps": 8,
        "batch_size": 8, "checkpoint_every": 4, "sample_every": 4}}).json()
    done = admin_client.wait(job["id"], timeout=300)
    assert done["status"] == "succeeded", done
    card = admin_client.get("/v1/models/my-collection").json()["cards"][-1]
    assert card["labels"] == ["drips", "grid"]
    assert card["dataset"] == {**card["dataset"], "id": dataset["id"], "manifest_sha256": dataset["manifest_sha256"],
                               "licence": "CC-BY-4.0"}


@pytest.mark.slow
def test_failed_training_registers_nothing(admin_client: ApiClient) -> None:
    # Eight images over eight labels: too few per label to train on.
    members = {f"label{i}/{i}.png": image_bytes(Image.new("RGB", (40, 40), (30 * i, 0, 0))) for i in range(8)}
    dataset = post_dataset(admin_client, zip_of(members)).json()
    job = admin_client.submit({"kind": "training", "params": {
        "target": "gan", "model": "too-small", "dataset": dataset["id"], "steps": 5}}).json()
    done = admin_client.wait(job["id"], timeout=120)
    assert done["status"] == "failed" and done["error"]["code"] == "dataset_too_small"
    assert admin_client.get("/v1/models/too-small").status_code == 404


# -- growing a dataset: POST /v1/datasets/{id}/images -------------------------------------


@pytest.fixture(scope="module")
def runtime(stack: Stack) -> Runtime:
    """The stores as a worker holds them, to look at what the API wrote."""
    return Runtime.from_settings(stack.settings())


def pngs(count: int, start: int = 0) -> list[bytes]:
    """Distinct flat images, none of them in ``labeled_zip``; ``start`` picks another run of colours."""
    return [image_bytes(Image.new("RGB", (24, 24), (7 + i % 200, 11 + i // 200, 250))) for i in
            range(start, start + count)]


def add_images(client: ApiClient, dataset_id: str, data: bytes, filename: str = "more.zip",
               label: str | None = None) -> requests.Response:
    form = {"label": label} if label is not None else {}
    return client.post(f"/v1/datasets/{dataset_id}/images", files={"file": (filename, data)}, data=form)


@pytest.fixture
def dataset(client: ApiClient, labeled_zip: bytes) -> dict[str, Any]:
    """A fresh labeled dataset of alice's: 6 drips and 6 grid images, version 1."""
    response = post_dataset(client, labeled_zip)
    assert response.status_code == 201, response.text
    return dict(response.json())


def stored_manifest(rt: Runtime, dataset_id: str, version: int) -> dict[str, Any]:
    key = f"alice/{dataset_id}/manifests/v{version}.json"
    return dict(json.loads(rt.objects.get_bytes(rt.settings.bucket_datasets, key)))


def test_adding_a_zip_writes_the_next_manifest_version_and_keeps_the_first(
        client: ApiClient, runtime: Runtime, dataset: dict[str, Any], labeled_zip: bytes) -> None:
    first, second = pngs(2)
    already_there = next(iter(zipfile.ZipFile(io.BytesIO(labeled_zip)).namelist()))
    members = {"grid/new.png": first, "spots/new.png": second, "spots/copy.png": second,
               "grid/old.png": zipfile.ZipFile(io.BytesIO(labeled_zip)).read(already_there)}
    response = add_images(client, dataset["id"], zip_of(members))
    assert response.status_code == 200, response.text
    grown = response.json()
    assert (grown["added"], grown["duplicates"], grown["version"], grown["images"]) == (2, 2, 2, 14)
    assert grown["labels"] == {"drips": 6, "grid": 7, "spots": 1}
    assert grown["manifest_sha256"] != dataset["manifest_sha256"]
    assert client.get(f"/v1/datasets/{dataset['id']}").json() == {
        k: v for k, v in grown.items() if k not in ("added", "duplicates")}
    v1, v2 = stored_manifest(runtime, dataset["id"], 1), stored_manifest(runtime, dataset["id"], 2)
    assert (v1["version"], v1["parent_sha256"], v1["counts"]["images"]) == (1, None, 12)
    assert (v2["version"], v2["parent_sha256"], v2["counts"]["images"]) == (2, dataset["manifest_sha256"], 14)


def test_adding_one_image_with_a_label(client: ApiClient, dataset: dict[str, Any]) -> None:
    response = add_images(client, dataset["id"], pngs(1)[0], "photo.png", label="drips")
    assert response.status_code == 200, response.text
    grown = response.json()
    assert (grown["added"], grown["duplicates"], grown["version"], grown["images"]) == (1, 0, 2, 13)
    assert grown["labels"] == {"drips": 7, "grid": 6} and grown["created_at"] == dataset["created_at"]


def test_adding_only_duplicates_leaves_version_and_manifest_as_they_were(
        client: ApiClient, dataset: dict[str, Any], labeled_zip: bytes) -> None:
    response = add_images(client, dataset["id"], labeled_zip)
    assert response.status_code == 200, response.text
    assert response.json() == dataset | {"added": 0, "duplicates": 12}
    assert client.get(f"/v1/datasets/{dataset['id']}").json() == dataset
    assert len(client.get(f"/v1/datasets/{dataset['id']}/versions").json()["items"]) == 1


def test_labeled_and_unlabeled_images_do_not_mix_in_a_dataset(client: ApiClient, dataset: dict[str, Any]) -> None:
    unlabeled_zip = zip_of({f"{i}.png": data for i, data in enumerate(pngs(8))})
    for data, filename in ((unlabeled_zip, "more.zip"), (pngs(1)[0], "one.png")):
        response = add_images(client, dataset["id"], data, filename)
        assert response.status_code == 422 and response.json()["error"]["code"] == "mixed_labels", response.text
    unlabeled = post_dataset(client, unlabeled_zip).json()
    response = add_images(client, unlabeled["id"], pngs(1, start=50)[0], "one.png", label="cats")
    assert response.status_code == 422 and response.json()["error"]["code"] == "mixed_labels"
    assert add_images(client, unlabeled["id"], pngs(1, start=50)[0], "one.png").json()["images"] == 9
    assert client.get(f"/v1/datasets/{dataset['id']}").json() == dataset


@pytest.mark.parametrize("filename,data,label,status,code", [
    ("notes.txt", b"not an image", None, 415, "unsupported_image"),
    ("empty.zip", zip_of({}), None, 422, "empty_dataset"),
    ("evil.zip", zip_of({"../evil.png": b"x"}), None, 422, "unsafe_path"),
    ("broken.zip", b"PK\x03\x04 not really", None, 415, "not_a_zip"),
    ("labeled.zip", zip_of({"a/1.png": pngs(1)[0]}), "cats", 422, "invalid_label"),
    ("one.png", pngs(1)[0], "../cats", 422, "invalid_label"),
])
def test_bad_additions_are_refused_and_change_nothing(client: ApiClient, dataset: dict[str, Any], filename: str,
                                                      data: bytes, label: str | None, status: int,
                                                      code: str) -> None:
    response = add_images(client, dataset["id"], data, filename, label)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"} and response.json()["error"]["code"] == code
    assert client.get(f"/v1/datasets/{dataset['id']}").json() == dataset


def test_an_addition_without_a_file_is_invalid(client: ApiClient, dataset: dict[str, Any]) -> None:
    response = client.post(f"/v1/datasets/{dataset['id']}/images", data={"label": "grid"})
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_parameters"


def test_the_builtin_dataset_cannot_grow(client: ApiClient) -> None:
    response = add_images(client, "procedural", pngs(1)[0], "one.png", label="grid")
    assert response.status_code == 409 and response.json()["error"]["code"] == "builtin_dataset"


def test_the_debian_corpus_is_built_in_and_a_worker_without_it_fails_training_clearly(
        client: ApiClient, admin_client: ApiClient) -> None:
    listed = client.get("/v1/datasets/debian-images")
    assert listed.status_code == 200, listed.text
    assert listed.json() == {**listed.json(), "id": "debian-images", "licence": MIXED_LICENCE, "images": 0}
    response = add_images(client, "debian-images", pngs(1)[0], "one.png")
    assert response.status_code == 409 and response.json()["error"]["code"] == "builtin_dataset"
    job = admin_client.submit({"kind": "training", "params": {
        "target": "restoration", "model": "debian-restoration", "dataset": "debian-images", "steps": 4}})
    assert job.status_code == 202, job.text
    done = admin_client.wait(job.json()["id"], timeout=120)
    assert done["status"] == "failed" and done["attempts"] == 1, done
    assert done["error"]["code"] == "dataset_not_installed" and "make datasets" in done["error"]["message"]


def test_another_tenants_dataset_is_not_found(client: ApiClient, other_client: ApiClient,
                                              dataset: dict[str, Any]) -> None:
    for path in (f"/v1/datasets/{dataset['id']}/versions", "/v1/datasets/0123456789abcdef0123456789abcdef/versions"):
        assert other_client.get(path).status_code == 404
    for dataset_id in (dataset["id"], "0123456789abcdef0123456789abcdef"):
        response = add_images(other_client, dataset_id, pngs(1)[0], "one.png", label="grid")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert client.get(f"/v1/datasets/{dataset['id']}").json() == dataset


def test_concurrent_additions_both_land(client: ApiClient, runtime: Runtime, dataset: dict[str, Any]) -> None:
    batches = [zip_of({f"grid/{i}.png": data for i, data in enumerate(pngs(20, start=100 * n))}) for n in (1, 2)]
    start = threading.Barrier(len(batches))
    responses: list[requests.Response] = []

    def add(batch: bytes) -> None:
        start.wait()
        responses.append(add_images(client, dataset["id"], batch))

    threads = [threading.Thread(target=add, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    assert sorted(r.json()["version"] for r in responses) == [2, 3]
    grown = client.get(f"/v1/datasets/{dataset['id']}").json()
    assert (grown["version"], grown["images"], grown["labels"]) == (3, 52, {"drips": 6, "grid": 46})
    assert len(stored_manifest(runtime, dataset["id"], 3)["files"]) == 52


def test_versions_list_every_manifest_oldest_first(client: ApiClient, dataset: dict[str, Any]) -> None:
    add_images(client, dataset["id"], pngs(1, start=300)[0], "a.png", label="grid")
    latest = add_images(client, dataset["id"], zip_of({"new/1.png": pngs(1, start=301)[0]})).json()
    versions = client.get(f"/v1/datasets/{dataset['id']}/versions").json()["items"]
    assert [(v["version"], v["images"]) for v in versions] == [(1, 12), (2, 13), (3, 14)]
    assert versions[0]["manifest_sha256"] == dataset["manifest_sha256"]
    assert versions[-1]["manifest_sha256"] == latest["manifest_sha256"]
    assert versions[0]["created_at"] == dataset["created_at"] < versions[1]["created_at"] <= versions[2]["created_at"]


def test_workers_read_the_newest_manifest_and_keep_the_version_they_read(
        client: ApiClient, runtime: Runtime, dataset: dict[str, Any]) -> None:
    reader = S3Datasets(runtime, "alice")
    assert reader.manifest(dataset["id"])["version"] == 1
    grown = add_images(client, dataset["id"], pngs(1, start=400)[0], "a.png", label="grid").json()
    assert reader.manifest(dataset["id"])["version"] == 1  # a job trains on the version it started with
    assert reader.manifest_sha256(dataset["id"]) == dataset["manifest_sha256"]
    fresh = S3Datasets(runtime, "alice")
    manifest = fresh.manifest(dataset["id"])
    assert (manifest["version"], fresh.manifest_sha256(dataset["id"])) == (2, grown["manifest_sha256"])
    newest = next(entry for entry in manifest["files"] if entry["label"] == "grid" and
                  entry["sha256"] not in {f["sha256"] for f in reader.manifest(dataset["id"])["files"]})
    assert Image.open(io.BytesIO(fresh.image(dataset["id"], newest["key"]))).size == (24, 24)
