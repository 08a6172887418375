"""Models the service trained: versions, model cards, metrics, promotion history."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api.errors import ApiError
from api.schemas import ModelListSchema, ModelSchema
from api.services import services

blp = Blueprint("models", __name__, url_prefix="/v1/models", description="Trained models")


def model_summary(name: str) -> dict[str, Any]:
    index = services().models
    versions = index.versions(name)
    promoted = index.promoted(name)
    card = index.card(name, promoted) if promoted is not None else None
    return {"name": name, "versions": versions, "promoted_version": promoted,
            "labels": (card or {}).get("labels", []), "resolution": (card or {}).get("resolution")}


@blp.route("", methods=["GET"])
@blp.response(200, ModelListSchema)
def list_models() -> dict[str, Any]:
    return {"items": [model_summary(name) for name in services().models.names()]}


@blp.route("/<name>", methods=["GET"])
@blp.response(200, ModelSchema)
@blp.alt_response(404, description="no model of that name")
def get_model(name: str) -> dict[str, Any]:
    index = services().models
    if name not in index.names():
        raise ApiError(404, "not_found", f"no model {name}; train one with a 'training' job")
    summary = model_summary(name)
    summary["cards"] = [index.card(name, v) for v in summary["versions"]]
    summary["promotion_history"] = index.history(name)
    return summary
