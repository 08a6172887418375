"""Models a tenant can use: its own (trained by its training jobs) and the service's shipped,
public ones; versions, model cards, metrics, promotion history."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api.errors import ApiError
from api.schemas import ModelListSchema, ModelSchema, PromoteRequestSchema
from api.services import principal, services
from shared.builtin_models import builtin_models
from shared.models import ModelIndex

blp = Blueprint("models", __name__, url_prefix="/v1/models", description="Trained and shipped models")


def own_summary(index: ModelIndex, name: str) -> dict[str, Any]:
    versions = index.versions(name)
    promoted = index.promoted(name)
    card = index.card(name, promoted) if promoted is not None else None
    return {"name": name, "public": False, "read_only": False, "versions": versions, "promoted_version": promoted,
            "labels": (card or {}).get("labels", []), "resolution": (card or {}).get("resolution")}


def public_summary(name: str) -> dict[str, Any]:
    model = builtin_models()[name]
    return {"name": name, "public": True, "read_only": True, "versions": [model.version],
            "promoted_version": model.version, "labels": model.card.get("labels", []),
            "resolution": model.card.get("resolution")}


@blp.route("", methods=["GET"])
@blp.response(200, ModelListSchema)
def list_models() -> dict[str, Any]:
    """The tenant's own models, then the public ones (a name in both: the tenant's own serves)."""
    own = services().models.for_tenant(principal().tenant).own
    return {"items": [own_summary(own, name) for name in own.names()]
            + [public_summary(name) for name in sorted(builtin_models())]}


@blp.route("/<name>", methods=["GET"])
@blp.response(200, ModelSchema)
@blp.alt_response(404, description="no model of that name")
def get_model(name: str) -> dict[str, Any]:
    """The model the name means for this tenant: its own if it has one, else the public one."""
    own = services().models.for_tenant(principal().tenant).own
    if name in own.names():
        summary = own_summary(own, name)
        return {**summary, "cards": [own.card(name, v) for v in summary["versions"]],
                "promotion_history": own.history(name)}
    if name in builtin_models():
        return public_model(name)
    raise ApiError(404, "not_found", f"no model {name}; train one with a 'training' job")


@blp.route("/public/<name>", methods=["GET"])
@blp.response(200, ModelSchema)
@blp.alt_response(404, description="no public model of that name")
def get_public_model(name: str) -> dict[str, Any]:
    """A model shipped with the service, even where the tenant has its own of that name."""
    if name not in builtin_models():
        raise ApiError(404, "not_found", f"no public model {name}; GET /v1/models lists them")
    return public_model(name)


def public_model(name: str) -> dict[str, Any]:
    return {**public_summary(name), "cards": [builtin_models()[name].card], "promotion_history": []}


@blp.route("/<name>/promote", methods=["POST"])
@blp.arguments(PromoteRequestSchema)
@blp.response(200, ModelSchema)
@blp.alt_response(403, description="not an admin key, or a read-only public model")
@blp.alt_response(404, description="no model of that name, or no such version")
def promote_model(body: dict[str, Any], name: str) -> dict[str, Any]:
    """Serve another version of one of the tenant's own models: a manual promotion, or a rollback
    to an earlier version. Workers serve it from their next job on, without a restart."""
    who = principal()
    own = services().models.for_tenant(who.tenant).own
    if not who.admin:
        raise ApiError(403, "forbidden", "promoting a model needs an admin key")
    if name not in own.names() and name in builtin_models():
        raise ApiError(403, "read_only", f"{name} is a public model shipped with the service: it has one "
                                         "version and cannot be promoted; train your own of that name")
    version = body["version"]
    if own.card(name, version) is None:
        raise ApiError(404, "not_found", f"no model {name}@{version}")
    current = own.promoted(name)
    kind = "rollback" if current is not None and version < current else "manual promotion"
    own.promote(name, version, f"{kind} from v{current} by key {who.key_id}", details={"by": who.key_id})
    return get_model(name)
