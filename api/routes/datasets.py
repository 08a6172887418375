"""Datasets to train on: a zip of images (one folder per label, optional) plus a licence."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask_smorest import Blueprint

from api.errors import ApiError
from api.schemas import DatasetFormSchema, DatasetSchema
from api.services import principal, services
from shared.dataset_store import DatasetRecord, dataset_prefix, new_dataset_id
from shared.datasets import DatasetRejected, build_manifest, ingest_zip, manifest_sha256, validate_licence

blp = Blueprint("datasets", __name__, url_prefix="/v1/datasets", description="Training data")


@blp.route("", methods=["POST"])
@blp.arguments(DatasetFormSchema, location="form")
@blp.arguments(DatasetFormSchema.Files, location="files")
@blp.response(201, DatasetSchema)
@blp.alt_response(413, description="too many images, too many bytes, or a zip bomb")
@blp.alt_response(415, description="not a zip")
@blp.alt_response(422, description="no licence, unsafe names, non-images, too few images")
def create_dataset(form: dict[str, Any], files: dict[str, Any]) -> dict[str, object]:
    who, svc = principal(), services()
    try:
        licence = validate_licence(form.get("licence"))
        ingested = ingest_zip(files["file"].read(), max_pixels=svc.settings.max_image_pixels)
    except DatasetRejected as exc:
        raise ApiError(exc.status, exc.code, exc.message, exc.details) from None
    dataset_id = new_dataset_id()
    prefix = dataset_prefix(who.tenant, dataset_id)
    bucket = svc.settings.bucket_datasets
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda image: svc.objects.put_bytes(bucket, f"{prefix}images/{image.sha256}.png",
                                                           image.png, "image/png"), ingested.images))
    manifest = build_manifest(dataset_id, who.tenant, licence, ingested.images, time.time(), form.get("name"))
    svc.objects.put_json(bucket, f"{prefix}manifest.json", manifest)
    # The record is written last: a dataset is visible only once all of it is stored.
    record = DatasetRecord(id=dataset_id, tenant=who.tenant, name=form.get("name"), licence=licence,
                           images=len(ingested.images), labels=manifest["counts"]["labels"],
                           manifest_key=f"{prefix}manifest.json", manifest_sha256=manifest_sha256(manifest),
                           created_at=manifest["created_at"])
    svc.datasets.save(record)
    return record.public()


@blp.route("/<dataset_id>", methods=["GET"])
@blp.response(200, DatasetSchema)
def get_dataset(dataset_id: str) -> dict[str, object]:
    record = services().datasets.get_for_tenant(dataset_id, principal().tenant)
    if record is None:
        raise ApiError(404, "not_found", f"no dataset {dataset_id}")
    return record.public()
