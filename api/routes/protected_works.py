"""Protected works, managed by operators (admin keys): add one by uploading it, list, delete,
and read the log of refused inputs. Style references and images to restore that are
near-duplicates of a listed work are refused at submit (``api.job_kinds``).

Only the work's perceptual hashes, sha256, size and title are kept, never its pixels.
"""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api.errors import ApiError
from api.schemas import (
    ImageFileSchema,
    ProtectedWorkFormSchema,
    ProtectedWorkListSchema,
    ProtectedWorkRequestSchema,
    ProtectedWorkSchema,
    RefusalListSchema,
    RefusalQuerySchema,
)
from api.services import principal, services
from shared.images import decode_image
from shared.marks.perceptual import mirrored_hashes, perceptual_hashes
from shared.protected_works import ProtectedWork, ProtectedWorks, new_work_id
from shared.uploads import UploadStore

blp = Blueprint("protected_works", __name__, url_prefix="/v1/protected-works",
                description="Artworks that may not be used as style references or restoration inputs (admin)")


def admin_works() -> ProtectedWorks:
    if not principal().admin:
        raise ApiError(403, "forbidden", "protected works are managed with an admin key")
    return ProtectedWorks(services().jobs.redis)


@blp.route("", methods=["POST"])
@blp.arguments(ProtectedWorkFormSchema, location="form")
@blp.arguments(ImageFileSchema, location="files")
@blp.doc(requestBody={"required": True, "content": {"multipart/form-data": {"schema": ProtectedWorkRequestSchema}}})
@blp.response(201, ProtectedWorkSchema)
@blp.alt_response(403, description="not an admin key")
@blp.alt_response(413, description="larger than the byte or pixel limit")
@blp.alt_response(415, description="not an accepted image")
def add_work(form: dict[str, Any], files: dict[str, Any]) -> dict[str, Any]:
    works, who, svc = admin_works(), principal(), services()
    data = files["file"].read(svc.settings.max_upload_bytes + 1)
    if len(data) > svc.settings.max_upload_bytes:
        raise ApiError(413, "too_large", f"images are limited to {svc.settings.max_upload_bytes} bytes")
    decoded = decode_image(data, svc.settings.max_image_pixels)
    work = ProtectedWork(id=new_work_id(), title=form["title"], perceptual=perceptual_hashes(decoded.image),
                         mirrored=mirrored_hashes(decoded.image), sha256=decoded.sha256, width=decoded.width,
                         height=decoded.height, rights_holder=form.get("rights_holder"), note=form.get("note"),
                         added_by={"tenant": who.tenant, "key_id": who.key_id}, created_at=UploadStore.now())
    works.add(work)
    return work.public()


@blp.route("", methods=["GET"])
@blp.response(200, ProtectedWorkListSchema)
def list_works() -> dict[str, Any]:
    return {"items": [work.public() for work in admin_works().all()]}


@blp.route("/refusals", methods=["GET"])
@blp.arguments(RefusalQuerySchema, location="query")
@blp.response(200, RefusalListSchema)
def list_refusals(query: dict[str, Any]) -> dict[str, Any]:
    return {"items": admin_works().refusals(query["limit"])}


@blp.route("/<work_id>", methods=["GET"])
@blp.response(200, ProtectedWorkSchema)
@blp.alt_response(404, description="no such work")
def get_work(work_id: str) -> dict[str, Any]:
    work = admin_works().get(work_id)
    if work is None:
        raise ApiError(404, "not_found", f"no protected work {work_id}")
    return work.public()


@blp.route("/<work_id>", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(404, description="no such work")
def delete_work(work_id: str) -> None:
    if not admin_works().delete(work_id):
        raise ApiError(404, "not_found", f"no protected work {work_id}")
