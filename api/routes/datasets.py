"""Datasets to train on: a zip of images (one folder per label, optional) plus a licence,
grown later by adding images. Every change is a new manifest version; old ones are kept."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from flask_smorest import Blueprint

from api.errors import ApiError
from api.schemas import (
    DatasetAdditionFileSchema,
    DatasetAdditionFormSchema,
    DatasetAdditionRequestSchema,
    DatasetAdditionSchema,
    DatasetFormSchema,
    DatasetSchema,
    DatasetVersionListSchema,
)
from api.services import Services, principal, services
from shared.dataset_store import (
    BUILTIN_DATASETS,
    DatasetBusy,
    DatasetRecord,
    dataset_prefix,
    manifest_key,
    new_dataset_id,
)
from shared.datasets import (
    DatasetRejected,
    IngestedDataset,
    IngestedImage,
    build_manifest,
    grow_manifest,
    image_key,
    images_to_add,
    ingest_addition,
    ingest_zip,
    manifest_sha256,
    validate_licence,
)

blp = Blueprint("datasets", __name__, url_prefix="/v1/datasets", description="Training data")


@contextmanager
def refusals_as_api_errors() -> Iterator[None]:
    """Refused uploads and busy datasets answered in the API's one error shape."""
    try:
        yield
    except DatasetRejected as exc:
        raise ApiError(exc.status, exc.code, exc.message, exc.details) from None
    except DatasetBusy:
        raise ApiError(409, "dataset_busy", "another change to this dataset is still running; try again shortly"
                       ) from None


def tenant_dataset(dataset_id: str) -> DatasetRecord:
    """The caller's dataset (or the built-in one); 404 for unknown and foreign ones alike."""
    record = services().datasets.get_for_tenant(dataset_id, principal().tenant)
    if record is None:
        raise ApiError(404, "not_found", f"no dataset {dataset_id}")
    return record


def store_version(svc: Services, record: DatasetRecord, manifest: dict[str, Any],
                  images: list[IngestedImage]) -> DatasetRecord:
    """Write ``images``, then ``manifest``, and return ``record`` pointing at that manifest.
    The caller saves the record after this: a version is visible only once all of it is stored."""
    prefix, bucket = dataset_prefix(record.tenant, record.id), svc.settings.bucket_datasets
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda image: svc.objects.put_bytes(bucket, prefix + image_key(image.sha256), image.png,
                                                           "image/png"), images))
    key = manifest_key(record.tenant, record.id, manifest["version"])
    svc.objects.put_json(bucket, key, manifest)
    return record.at_version(manifest, key, manifest_sha256(manifest))


def grow_dataset(svc: Services, record: DatasetRecord, ingested: IngestedDataset) -> tuple[DatasetRecord, int, int]:
    """Add the images new to the dataset as its next version; the record, how many were added and how many
    were duplicates. With nothing new, nothing is written: version and manifest hash stay as they were.
    Run under the dataset's lock, with the record read under it."""
    manifest = json.loads(svc.objects.get_bytes(svc.settings.bucket_datasets, record.manifest_key))
    new, duplicates = images_to_add(manifest, ingested)
    if new:
        record = store_version(svc, record, grow_manifest(manifest, new, time.time()), new)
        svc.datasets.save(record)
    return record, len(new), duplicates


@blp.route("", methods=["POST"])
@blp.arguments(DatasetFormSchema, location="form")
@blp.arguments(DatasetFormSchema.Files, location="files")
@blp.response(201, DatasetSchema)
@blp.alt_response(413, description="too many images, too many bytes, or a zip bomb")
@blp.alt_response(415, description="not a zip")
@blp.alt_response(422, description="no licence, unsafe names, non-images, too few images")
def create_dataset(form: dict[str, Any], files: dict[str, Any]) -> dict[str, object]:
    who, svc = principal(), services()
    with refusals_as_api_errors():
        licence = validate_licence(form.get("licence"))
        ingested = ingest_zip(files["file"].read(), max_pixels=svc.settings.max_image_pixels)
    record = DatasetRecord(id=new_dataset_id(), tenant=who.tenant, name=form.get("name"), licence=licence,
                           images=0, created_at=time.time())
    manifest = build_manifest(record.id, record.tenant, licence, ingested.images, record.created_at, record.name)
    record = store_version(svc, record, manifest, ingested.images)
    svc.datasets.save(record)
    return record.public()


@blp.route("/<dataset_id>", methods=["GET"])
@blp.response(200, DatasetSchema)
def get_dataset(dataset_id: str) -> dict[str, object]:
    return tenant_dataset(dataset_id).public()


@blp.route("/<dataset_id>/images", methods=["POST"])
@blp.arguments(DatasetAdditionFormSchema, location="form")
@blp.arguments(DatasetAdditionFileSchema, location="files")
@blp.doc(requestBody={"required": True, "content": {"multipart/form-data": {"schema": DatasetAdditionRequestSchema}}})
@blp.response(200, DatasetAdditionSchema)
@blp.alt_response(404, description="no such dataset of the caller's")
@blp.alt_response(409, description="the built-in dataset, or another change to it running too long")
@blp.alt_response(413, description="too many images, too many bytes, or a zip bomb")
@blp.alt_response(415, description="neither a zip nor an accepted image")
@blp.alt_response(422, description="labeled images for an unlabeled dataset or the reverse, a bad label, "
                                   "unsafe names, non-images")
def add_images(form: dict[str, Any], files: dict[str, Any], dataset_id: str) -> dict[str, object]:
    """Add a zip's images, or one image, to a dataset; images it already holds are skipped."""
    svc = services()
    if tenant_dataset(dataset_id).id in BUILTIN_DATASETS:
        raise ApiError(409, "builtin_dataset", f"the built-in dataset {dataset_id} cannot grow; "
                       "create a dataset of your own with POST /v1/datasets")
    upload = files["file"]
    with refusals_as_api_errors():
        ingested = ingest_addition(upload.read(), max_pixels=svc.settings.max_image_pixels,
                                   label=form.get("label"), name=upload.filename or "image")
        with svc.datasets.changing(dataset_id):
            record, added, duplicates = grow_dataset(svc, tenant_dataset(dataset_id), ingested)
    return {**record.public(), "added": added, "duplicates": duplicates}


@blp.route("/<dataset_id>/versions", methods=["GET"])
@blp.response(200, DatasetVersionListSchema)
def list_versions(dataset_id: str) -> dict[str, object]:
    return {"items": [asdict(version) for version in tenant_dataset(dataset_id).versions()]}
