"""Datasets over HTTP: safe zip ingestion, licences, and training on a tenant's own images."""

from __future__ import annotations

import io
import zipfile

import pytest
from PIL import Image

from tests.conftest import ApiClient, image_bytes
from workers.data.procedural import make_dataset


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
    assert dataset["images"] == 12 and dataset["labels"] == {"drips": 6, "grid": 6}
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
