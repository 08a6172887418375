"""Dataset zips: labels from folders, normalised and deduplicated images, hostile zips refused whole;
images added to a dataset and the manifest versions they make."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile
from dataclasses import asdict

import pytest
from PIL import Image

from shared.dataset_store import DatasetRecord, DatasetVersion
from shared.datasets import (
    MANIFEST_SCHEMA,
    DatasetRejected,
    IngestedImage,
    build_manifest,
    grow_manifest,
    images_to_add,
    ingest_addition,
    ingest_zip,
    manifest_sha256,
    validate_label,
    validate_licence,
)

MAX_PIXELS = 10_000_000


def png(colour: tuple[int, int, int], size: tuple[int, int] = (6, 4)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def distinct_pngs(count: int) -> list[bytes]:
    return [png((10 * i, 255 - 10 * i, 7)) for i in range(count)]


def make_zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def rejection(data: bytes, **limits: object) -> DatasetRejected:
    with pytest.raises(DatasetRejected) as caught:
        ingest_zip(data, max_pixels=MAX_PIXELS, **limits)  # type: ignore[arg-type]
    return caught.value


def test_folders_become_labels() -> None:
    images = distinct_pngs(10)
    members = {f"cats/{i}.png": images[i] for i in range(5)} | {f"dogs/{i}.png": images[5 + i] for i in range(5)}
    dataset = ingest_zip(make_zip(members), max_pixels=MAX_PIXELS)
    assert dataset.labeled and dataset.labels == ["cats", "dogs"]
    assert sorted((image.source_name, image.label) for image in dataset.images) == sorted(
        (name, name.split("/")[0]) for name in members)


def test_a_wrapping_folder_is_looked_through_and_deeper_paths_use_the_first_folder() -> None:
    images = distinct_pngs(8)
    members = {f"my-art/cats/{i}.png": images[i] for i in range(4)}
    members |= {f"my-art/dogs/puppies/{i}.png": images[4 + i] for i in range(4)}
    dataset = ingest_zip(make_zip(members), max_pixels=MAX_PIXELS)
    assert dataset.labels == ["cats", "dogs"]


def test_top_level_images_are_unlabeled() -> None:
    dataset = ingest_zip(make_zip({f"{i}.png": data for i, data in enumerate(distinct_pngs(8))}), max_pixels=MAX_PIXELS)
    assert len(dataset.images) == 8 and not dataset.labeled
    assert all(image.label is None for image in dataset.images)


def test_labeled_and_unlabeled_images_cannot_be_mixed() -> None:
    images = distinct_pngs(8)
    members = {f"cats/{i}.png": images[i] for i in range(7)} | {"stray.png": images[7]}
    error = rejection(make_zip(members))
    assert (error.status, error.code) == (422, "mixed_labels") and error.details["unlabeled_members"] == ["stray.png"]


def test_images_are_normalised_to_rgb_png_and_hashed() -> None:
    rgba = io.BytesIO()
    Image.new("RGBA", (5, 3), (255, 0, 0, 0)).save(rgba, format="PNG")
    jpeg = io.BytesIO()
    Image.new("RGB", (7, 2), (0, 0, 200)).save(jpeg, format="JPEG")
    members = {f"{i}.png": data for i, data in enumerate(distinct_pngs(6))}
    members |= {"clear.png": rgba.getvalue(), "photo.jpg": jpeg.getvalue()}
    dataset = ingest_zip(make_zip(members), max_pixels=MAX_PIXELS)
    by_name = {image.source_name: image for image in dataset.images}
    for image in dataset.images:
        decoded = Image.open(io.BytesIO(image.png))
        assert decoded.format == "PNG" and decoded.mode == "RGB" and decoded.size == (image.width, image.height)
        assert image.sha256 == hashlib.sha256(image.png).hexdigest()
    assert Image.open(io.BytesIO(by_name["clear.png"].png)).getpixel((0, 0)) == (255, 255, 255)
    assert (by_name["photo.jpg"].width, by_name["photo.jpg"].height) == (7, 2)


def test_duplicate_images_are_kept_once_and_counted() -> None:
    images = distinct_pngs(8)
    members = {f"{i}.png": data for i, data in enumerate(images)} | {"copy.png": images[0]}
    dataset = ingest_zip(make_zip(members), max_pixels=MAX_PIXELS)
    assert len(dataset.images) == 8 and len({image.sha256 for image in dataset.images}) == 8
    assert dataset.duplicates == 1


def test_duplicates_do_not_count_towards_the_minimum() -> None:
    error = rejection(make_zip({f"{i}.png": png((1, 2, 3)) for i in range(10)}))
    assert (error.status, error.code) == (422, "too_few_images") and error.details["images"] == 1


def test_a_single_image_is_too_few() -> None:
    error = rejection(make_zip({"only.png": png((1, 2, 3))}))
    assert (error.status, error.code) == (422, "too_few_images")


def test_folders_macos_forks_and_dotfiles_are_ignored() -> None:
    members = {f"art/{i}.png": data for i, data in enumerate(distinct_pngs(8))}
    members |= {"art/": b"", "__MACOSX/art/._0.png": b"\x00\x05\x16\x07", ".DS_Store": b"\x00\x00\x00\x01Bud1",
                "art/.hidden.png": b"junk", ".git/config": b"[core]"}
    dataset = ingest_zip(make_zip(members), max_pixels=MAX_PIXELS)
    assert sorted(image.source_name for image in dataset.images) == sorted(f"art/{i}.png" for i in range(8))


def test_an_empty_zip_is_an_empty_dataset() -> None:
    error = rejection(make_zip({}))
    assert (error.status, error.code) == (422, "empty_dataset")
    only_clutter = make_zip({"folder/": b"", ".DS_Store": b"x"})
    assert rejection(only_clutter).code == "empty_dataset"


@pytest.mark.parametrize("data", [b"", b"not a zip at all", png((1, 2, 3))])
def test_other_files_are_not_a_zip(data: bytes) -> None:
    error = rejection(data)
    assert (error.status, error.code) == (415, "not_a_zip")


def test_non_image_members_are_named() -> None:
    members = {f"{i}.png": data for i, data in enumerate(distinct_pngs(8))}
    members |= {"notes.txt": b"hello", "broken.png": png((1, 1, 1))[:40]}
    error = rejection(make_zip(members))
    assert (error.status, error.code) == (422, "not_an_image")
    assert sorted(error.details["members"]) == ["broken.png", "notes.txt"]


def test_a_stray_text_file_beside_label_folders_is_reported_as_not_an_image() -> None:
    images = distinct_pngs(8)
    members = {f"cats/{i}.png": images[i] for i in range(4)} | {f"dogs/{i}.png": images[4 + i] for i in range(4)}
    error = rejection(make_zip(members | {"README.txt": b"my cats and dogs"}))
    assert (error.code, error.details["members"]) == ("not_an_image", ["README.txt"])


def test_at_most_ten_non_image_members_are_named() -> None:
    error = rejection(make_zip({f"{i}.txt": b"text" for i in range(30)}))
    assert error.code == "not_an_image" and len(error.details["members"]) == 10


@pytest.mark.parametrize("name", ["../evil.png", "/abs.png", "cats/../../evil.png", "cats\\evil.png", "C:/evil.png"])
def test_unsafe_member_names_refuse_the_whole_zip(name: str) -> None:
    members = {f"{i}.png": data for i, data in enumerate(distinct_pngs(8))} | {name: png((9, 9, 9))}
    error = rejection(make_zip(members))
    assert (error.status, error.code) == (422, "unsafe_path") and error.details["members"] == [name]


def test_a_member_with_a_huge_compression_ratio_is_a_zip_bomb() -> None:
    members = {f"{i}.png": data for i, data in enumerate(distinct_pngs(8))} | {"zeros.png": bytes(8 * 1024 * 1024)}
    error = rejection(make_zip(members))
    assert (error.status, error.code) == (413, "zip_bomb") and error.details["member"] == "zeros.png"


def test_declared_sizes_above_the_total_cap_are_a_zip_bomb() -> None:
    data = make_zip({f"{i}.png": d for i, d in enumerate(distinct_pngs(8))}, compression=zipfile.ZIP_STORED)
    error = rejection(data, max_total_uncompressed=500)
    assert (error.status, error.code) == (413, "zip_bomb")


def test_a_member_longer_than_its_declared_size_is_refused() -> None:
    data = bytearray(make_zip({f"{i}.png": d for i, d in enumerate(distinct_pngs(8))}))
    entry = data.index(b"PK\x01\x02")  # the first central directory entry
    declared = struct.unpack_from("<I", data, entry + 24)[0]
    struct.pack_into("<I", data, entry + 24, declared // 2)  # claim half the real size
    error = rejection(bytes(data))
    # Reading stops at the declared size, so the rest is never decompressed and the CRC fails.
    assert (error.status, error.code, error.details["member"]) == (422, "corrupt_zip", "0.png")


def test_more_than_max_images_is_refused_before_decoding() -> None:
    members = {f"{i}.txt": b"not even images" for i in range(9)}
    error = rejection(make_zip(members), max_images=8)
    assert (error.status, error.code) == (413, "too_many_images")


def test_an_image_above_the_pixel_cap_is_refused() -> None:
    members = {f"{i}.png": data for i, data in enumerate(distinct_pngs(8))} | {"huge.png": png((0, 0, 0), (100, 100))}
    with pytest.raises(DatasetRejected) as caught:
        ingest_zip(make_zip(members), max_pixels=5000)
    assert (caught.value.status, caught.value.code) == (413, "image_too_large")
    assert caught.value.details["member"] == "huge.png"


@pytest.mark.parametrize("licence", ["MIT", "CC-BY-4.0", "GPL-3.0+", "proprietary", "all-rights-reserved"])
def test_licences_that_are_accepted(licence: str) -> None:
    assert validate_licence(f"  {licence} ") == licence


@pytest.mark.parametrize("licence", [None, "", "   ", "x", "free for all", "MIT; DROP TABLE", "a" * 65, "MIT\nX"])
def test_licences_that_are_refused(licence: str | None) -> None:
    with pytest.raises(DatasetRejected) as caught:
        validate_licence(licence)
    assert (caught.value.status, caught.value.code) == (422, "licence_required")


def labeled_dataset_images() -> list[IngestedImage]:
    images = distinct_pngs(9)
    members = {f"red/{i}.png": images[i] for i in range(4)} | {f"blue/{i}.png": images[4 + i] for i in range(5)}
    return ingest_zip(make_zip(members), max_pixels=MAX_PIXELS).images


def test_manifest_lists_files_by_hash_with_counts() -> None:
    images = labeled_dataset_images()
    manifest = build_manifest("ds1", "tenant-a", "CC-BY-4.0", images, created_at=1700000000.5, name="colours")
    assert manifest["schema"] == MANIFEST_SCHEMA and manifest["id"] == "ds1" and manifest["tenant"] == "tenant-a"
    assert manifest["name"] == "colours" and manifest["licence"] == "CC-BY-4.0"
    assert manifest["counts"] == {"images": 9, "labels": {"blue": 5, "red": 4}} and manifest["labeled"] is True
    hashes = [entry["sha256"] for entry in manifest["files"]]
    assert hashes == sorted(hashes)
    assert all(entry["key"] == f"images/{entry['sha256']}.png" for entry in manifest["files"])


def test_manifest_of_an_unlabeled_dataset() -> None:
    images = ingest_zip(make_zip({f"{i}.png": d for i, d in enumerate(distinct_pngs(8))}), max_pixels=MAX_PIXELS).images
    manifest = build_manifest("ds2", "t", "proprietary", images, created_at=1.0, name=None)
    assert manifest["labeled"] is False and manifest["counts"]["labels"] == {}
    assert all(entry["label"] is None for entry in manifest["files"])


def test_manifest_hash_is_stable_under_reordering_and_changes_with_content() -> None:
    images = labeled_dataset_images()
    digest = manifest_sha256(build_manifest("ds1", "t", "MIT", images, created_at=2.0, name="n"))
    assert manifest_sha256(build_manifest("ds1", "t", "MIT", images[::-1], created_at=2.0, name="n")) == digest
    assert manifest_sha256(build_manifest("ds1", "t", "MIT", images[1:], created_at=2.0, name="n")) != digest
    assert manifest_sha256(build_manifest("ds1", "t", "Apache-2.0", images, created_at=2.0, name="n")) != digest


# -- images added to a dataset, and manifest versions -------------------------------------


def test_an_addition_may_be_a_zip_of_one_image() -> None:
    added = ingest_addition(make_zip({"cats/1.png": png((1, 2, 3))}), max_pixels=MAX_PIXELS)
    assert [(image.label, image.source_name) for image in added.images] == [("cats", "cats/1.png")]


def test_an_addition_may_be_one_image_with_or_without_a_label() -> None:
    jpeg = io.BytesIO()
    Image.new("RGB", (7, 5), (0, 0, 200)).save(jpeg, format="JPEG")
    labeled = ingest_addition(jpeg.getvalue(), max_pixels=MAX_PIXELS, label=" cats ", name="photo.jpg")
    (image,) = labeled.images
    assert (image.label, image.source_name, image.width, image.height) == ("cats", "photo.jpg", 7, 5)
    assert Image.open(io.BytesIO(image.png)).format == "PNG" and image.sha256 == hashlib.sha256(image.png).hexdigest()
    assert ingest_addition(jpeg.getvalue(), max_pixels=MAX_PIXELS, label="").images[0].label is None


@pytest.mark.parametrize("data,label,status,code", [
    (b"hello", None, 415, "unsupported_image"),
    (png((1, 2, 3), (100, 100)), None, 413, "image_too_large"),
    (make_zip({"cats/1.png": png((1, 2, 3))}), "cats", 422, "invalid_label"),
    (make_zip({}), None, 422, "empty_dataset"),
    (b"PK\x03\x04 broken", None, 415, "not_a_zip"),
])
def test_additions_that_are_refused(data: bytes, label: str | None, status: int, code: str) -> None:
    with pytest.raises(DatasetRejected) as caught:
        ingest_addition(data, max_pixels=5000, label=label)
    assert (caught.value.status, caught.value.code) == (status, code)


@pytest.mark.parametrize("label", ["cats", "Ölgemälde", "late 1890s", "a" * 200])
def test_labels_a_folder_could_carry_are_accepted(label: str) -> None:
    assert validate_label(label) == label


@pytest.mark.parametrize("label", ["a/b", "..", ".hidden", "a\\b", "tab\there", "__MACOSX", "a" * 201])
def test_labels_a_folder_could_not_carry_are_refused(label: str) -> None:
    with pytest.raises(DatasetRejected) as caught:
        validate_label(label)
    assert (caught.value.status, caught.value.code) == (422, "invalid_label")


def ingested(members: dict[str, bytes]) -> list[IngestedImage]:
    return ingest_addition(make_zip(members), max_pixels=MAX_PIXELS).images


def test_a_grown_manifest_is_the_next_version_and_points_at_its_parent() -> None:
    first = build_manifest("ds1", "t", "MIT", labeled_dataset_images(), created_at=1.0, name="n")
    assert (first["version"], first["parent_sha256"]) == (1, None)
    new = ingested({"green/1.png": png((0, 200, 0)), "red/x.png": png((200, 0, 1))})
    second = grow_manifest(first, new, created_at=2.0)
    assert (second["version"], second["parent_sha256"], second["created_at"]) == (2, manifest_sha256(first), 2.0)
    assert (second["id"], second["tenant"], second["name"], second["licence"]) == ("ds1", "t", "n", "MIT")
    assert second["counts"] == {"images": 11, "labels": {"blue": 5, "green": 1, "red": 5}}
    hashes = [entry["sha256"] for entry in second["files"]]
    assert hashes == sorted(hashes) and set(hashes) >= {entry["sha256"] for entry in first["files"]}
    assert grow_manifest(second, [], created_at=3.0)["parent_sha256"] == manifest_sha256(second)


def test_a_manifest_from_before_versions_grows_into_version_two() -> None:
    legacy = build_manifest("ds1", "t", "MIT", labeled_dataset_images(), created_at=1.0)
    del legacy["version"], legacy["parent_sha256"]
    assert grow_manifest(legacy, [], created_at=2.0)["version"] == 2


def test_images_already_in_the_dataset_are_duplicates() -> None:
    manifest = build_manifest("ds1", "t", "MIT", labeled_dataset_images(), created_at=1.0)
    held = distinct_pngs(9)[0]  # red/0.png of the dataset
    upload = ingest_addition(make_zip({"red/a.png": held, "cats/b.png": png((1, 2, 3)), "cats/c.png": png((1, 2, 3))}),
                             max_pixels=MAX_PIXELS)
    new, duplicates = images_to_add(manifest, upload)
    assert [image.source_name for image in new] == ["cats/b.png"] and duplicates == 2


def test_labeled_and_unlabeled_additions_must_match_the_dataset() -> None:
    labeled = build_manifest("ds1", "t", "MIT", labeled_dataset_images(), created_at=1.0)
    unlabeled_images = ingest_addition(png((1, 2, 3)), max_pixels=MAX_PIXELS)
    with pytest.raises(DatasetRejected) as caught:
        images_to_add(labeled, unlabeled_images)
    assert (caught.value.status, caught.value.code) == (422, "mixed_labels")
    unlabeled = build_manifest("ds2", "t", "MIT", unlabeled_images.images, created_at=1.0)
    with pytest.raises(DatasetRejected) as caught:
        images_to_add(unlabeled, ingest_addition(png((4, 5, 6)), max_pixels=MAX_PIXELS, label="cats"))
    assert caught.value.code == "mixed_labels"


def test_a_dataset_cannot_grow_past_its_image_cap() -> None:
    manifest = build_manifest("ds1", "t", "MIT", labeled_dataset_images(), created_at=1.0)
    with pytest.raises(DatasetRejected) as caught:
        images_to_add(manifest, ingest_addition(png((1, 2, 3)), max_pixels=MAX_PIXELS, label="x"), max_images=9)
    assert (caught.value.status, caught.value.code) == (413, "too_many_images")


def test_a_record_from_before_versions_reads_as_version_one() -> None:
    legacy = {"id": "ds1", "tenant": "t", "name": None, "licence": "MIT", "images": 9, "labels": {"red": 9},
              "manifest_key": "t/ds1/manifest.json", "manifest_sha256": "a" * 64, "created_at": 5.0}
    record = DatasetRecord.from_json(json.dumps(legacy))
    assert record.version == 1 and record.public()["version"] == 1
    assert record.versions() == [DatasetVersion(1, "a" * 64, 9, 5.0)]


def test_a_record_at_a_new_version_keeps_its_history_through_redis_json() -> None:
    manifest = build_manifest("ds1", "t", "MIT", labeled_dataset_images(), created_at=1.0)
    record = DatasetRecord(id="ds1", tenant="t", name=None, licence="MIT", images=0, created_at=1.0)
    record = record.at_version(manifest, "t/ds1/manifests/v1.json", "1" * 64)
    grown = grow_manifest(manifest, ingested({"green/1.png": png((0, 200, 0))}), created_at=2.0)
    record = record.at_version(grown, "t/ds1/manifests/v2.json", "2" * 64)
    assert (record.version, record.images, record.manifest_key, record.created_at) == (
        2, 10, "t/ds1/manifests/v2.json", 1.0)
    assert DatasetRecord.from_json(json.dumps(asdict(record))) == record
    assert [(v.version, v.manifest_sha256, v.images, v.created_at) for v in record.versions()] == [
        (1, "1" * 64, 9, 1.0), (2, "2" * 64, 10, 2.0)]
