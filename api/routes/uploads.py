"""POST /v1/uploads: an image is decoded safely, normalised to PNG and stored."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api.errors import ApiError
from api.schemas import UploadFormSchema, UploadSchema
from api.services import principal, services
from shared.images import decode_image, encode_png
from shared.uploads import Upload, UploadStore, new_upload_id, upload_object_key

blp = Blueprint("uploads", __name__, url_prefix="/v1/uploads", description="Images to work on")


@blp.route("", methods=["POST"])
@blp.arguments(UploadFormSchema, location="files")
@blp.response(201, UploadSchema)
@blp.alt_response(413, description="larger than the byte or pixel limit")
@blp.alt_response(415, description="not an accepted image (PNG, JPEG, WebP, TIFF) or corrupt")
def create_upload(form: dict[str, Any]) -> dict[str, object]:
    who, svc = principal(), services()
    data = form["file"].read(svc.settings.max_upload_bytes + 1)
    if len(data) > svc.settings.max_upload_bytes:
        raise ApiError(413, "too_large", f"uploads are limited to {svc.settings.max_upload_bytes} bytes")
    decoded = decode_image(data, svc.settings.max_image_pixels)
    upload_id = new_upload_id()
    key = upload_object_key(who.tenant, upload_id)
    svc.objects.put_bytes(svc.settings.bucket_uploads, key, encode_png(decoded.image), "image/png",
                          metadata={"artforge-sha256": decoded.sha256})
    upload = Upload(id=upload_id, tenant=who.tenant, sha256=decoded.sha256, width=decoded.width,
                    height=decoded.height, format=decoded.format, bytes=len(data), key=key,
                    created_at=UploadStore.now())
    svc.uploads.save(upload)
    return upload.public()
