"""Models the service trained: versions, model cards, metrics, promotion history."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api.errors import ApiError
from api.schemas import ModelListSchema, ModelSchema, PromoteRequestSchema
from api.services import principal, services

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


@blp.route("/<name>/promote", methods=["POST"])
@blp.arguments(PromoteRequestSchema)
@blp.response(200, ModelSchema)
@blp.alt_response(403, description="not an admin key")
@blp.alt_response(404, description="no model of that name, or no such version")
def promote_model(body: dict[str, Any], name: str) -> dict[str, Any]:
    """Serve another version: a manual promotion, or a rollback to an earlier version. Workers
    serve it from their next job on, without a restart."""
    who, index = principal(), services().models
    if not who.admin:
        raise ApiError(403, "forbidden", "promoting a model needs an admin key")
    version = body["version"]
    if index.card(name, version) is None:
        raise ApiError(404, "not_found", f"no model {name}@{version}")
    current = index.promoted(name)
    kind = "rollback" if current is not None and version < current else "manual promotion"
    index.promote(name, version, f"{kind} from v{current} by key {who.key_id}", details={"by": who.key_id})
    return get_model(name)
