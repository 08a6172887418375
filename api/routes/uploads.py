"""POST /v1/uploads: an image is decoded safely, normalised to PNG and stored, with its
perceptual hashes and, when the caller makes one, a rights declaration. The API never serves an
upload back whole; ``GET /v1/uploads/{id}/thumbnail`` shows the caller its own, small (the gallery
shows job inputs with it)."""

from __future__ import annotations

import io
import logging
from typing import Any

from flask import Response
from flask_smorest import Blueprint
from PIL import Image

from api.errors import ApiError
from api.schemas import RightsDeclarationFormSchema, UploadFormSchema, UploadRequestSchema, UploadSchema
from api.services import principal, services
from shared.images import FAST_TO_DECODE, decode_image, encode_png
from shared.marks.perceptual import perceptual_hashes
from shared.objects import ObjectNotFound
from shared.queue import enqueue_upload_indexing
from shared.uploads import (
    RightsDeclaration,
    Upload,
    UploadStore,
    new_upload_id,
    thumbnail_object_key,
    upload_object_key,
)

THUMBNAIL_SIDE = 256
log = logging.getLogger(__name__)

blp = Blueprint("uploads", __name__, url_prefix="/v1/uploads", description="Images to work on")


def rights_declaration(form: dict[str, Any]) -> RightsDeclaration:
    """The declaration the form makes: nothing, a full one, or a 422 for half of one."""
    declaration = RightsDeclaration(licence=form.get("licence"), rights_holder=form.get("rights_holder"),
                                    requester_holds_rights=form["requester_holds_rights"])
    partial = bool(declaration.licence) != bool(declaration.rights_holder)
    if partial and not declaration.requester_holds_rights:
        missing = "rights_holder" if declaration.licence else "licence"
        raise ApiError(422, "invalid_parameters",
                       "a rights declaration needs both licence and rights_holder, or requester_holds_rights=true",
                       {"fields": {missing: ["required with the other declaration field"]}})
    return declaration


@blp.route("", methods=["POST"])
@blp.arguments(RightsDeclarationFormSchema, location="form")
@blp.arguments(UploadFormSchema, location="files")
@blp.doc(requestBody={"required": True, "content": {"multipart/form-data": {"schema": UploadRequestSchema}}})
@blp.response(201, UploadSchema)
@blp.alt_response(413, description="larger than the byte or pixel limit")
@blp.alt_response(415, description="not an accepted image (PNG, JPEG, WebP, TIFF) or corrupt")
@blp.alt_response(422, description="no file, or half a rights declaration")
def create_upload(form: dict[str, Any], files: dict[str, Any]) -> dict[str, object]:
    who, svc = principal(), services()
    declaration = rights_declaration(form)
    data = files["file"].read(svc.settings.max_upload_bytes + 1)
    if len(data) > svc.settings.max_upload_bytes:
        raise ApiError(413, "too_large", f"uploads are limited to {svc.settings.max_upload_bytes} bytes")
    decoded = decode_image(data, svc.settings.max_image_pixels)
    upload_id = new_upload_id()
    key = upload_object_key(who.tenant, upload_id)
    stored = encode_png(decoded.image, FAST_TO_DECODE)  # every job that reads the upload decodes it
    svc.objects.put_bytes(svc.settings.bucket_uploads, key, stored, "image/png",
                          metadata={"artforge-sha256": decoded.sha256})
    upload = Upload(id=upload_id, tenant=who.tenant, sha256=decoded.sha256, width=decoded.width,
                    height=decoded.height, format=decoded.format, bytes=len(data), key=key,
                    created_at=UploadStore.now(), perceptual=perceptual_hashes(decoded.image), rights=declaration,
                    declared_by=who.key_id if declaration.complete else "")
    svc.uploads.save(upload)
    try:
        enqueue_upload_indexing(svc.celery, who.tenant, upload_id)
    except Exception:  # the broker blipped: the upload stands; a search asks for its indexing again
        log.warning("could not ask for upload %s to be indexed", upload_id, exc_info=True)
    return upload.public()


@blp.route("/<upload_id>/thumbnail", methods=["GET"])
@blp.response(200, description="the upload, at most 256 px on its longer side (JPEG)")
def get_thumbnail(upload_id: str) -> Response:
    svc = services()
    upload = svc.uploads.get_for_tenant(upload_id, principal().tenant)
    if upload is None:
        raise ApiError(404, "not_found", f"no upload {upload_id}")
    bucket, key = svc.settings.bucket_uploads, thumbnail_object_key(upload.tenant, upload.id)
    try:
        data = svc.objects.get_bytes(bucket, key)
    except ObjectNotFound:  # the first time it is asked for: made once, from the stored PNG
        data = thumbnail_jpeg(svc.objects.get_bytes(bucket, upload.key), svc.settings.max_image_pixels)
        svc.objects.put_bytes(bucket, key, data, "image/jpeg")
    # Private: the thumbnail is the tenant's, fetched with its key; it never changes.
    return Response(data, mimetype="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})


def thumbnail_jpeg(png: bytes, max_pixels: int) -> bytes:
    image = decode_image(png, max_pixels).image
    image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()
