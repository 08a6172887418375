"""The named styles, with thumbnails rendered once by a worker."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask_smorest import Blueprint

from api.errors import ApiError
from api.schemas import StyleListSchema
from api.services import services
from shared.objects import ObjectNotFound
from shared.styles import NAMED_STYLES, list_styles, thumbnail_key

blp = Blueprint("styles", __name__, url_prefix="/v1/styles", description="Named painting styles")


@blp.route("", methods=["GET"])
@blp.response(200, StyleListSchema)
def get_styles() -> dict[str, Any]:
    base = (services().settings.public_url or request.host_url).rstrip("/")
    return {"items": [{"name": s.name, "description": s.description,
                       "thumbnail_url": f"{base}/v1/styles/{s.name}/thumbnail"} for s in NAMED_STYLES]}


@blp.route("/<name>/thumbnail", methods=["GET"])
@blp.response(200, description="the style applied to a reference photo (PNG)")
def get_thumbnail(name: str) -> Response:
    if name not in list_styles():
        raise ApiError(404, "not_found", f"no style {name}")
    svc = services()
    try:
        data = svc.objects.get_bytes(svc.settings.bucket_results, thumbnail_key(name))
    except ObjectNotFound:
        raise ApiError(404, "not_ready", "thumbnails are rendered by a worker shortly after it starts") from None
    return Response(data, mimetype="image/png", headers={"Cache-Control": "public, max-age=86400"})
