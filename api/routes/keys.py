"""API keys over HTTP (admin keys): create one for a tenant (shown once), list a tenant's, revoke one.

Who may manage whose keys:

    caller            its own tenant's keys      another tenant's keys     create an operator key
    plain key         403                        403                       403
    admin key         yes                        404, as if none existed   403
    operator key      yes                        yes                       yes

An admin key of one tenant learns nothing about another's keys: a foreign tenant or key id
answers 404, the answer an unknown one gets. Keys are never listed with their secret; the full
key appears once, in the answer that creates it.
"""

from __future__ import annotations

import logging
from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields

from api.auth import KeyInfo, KeyStore, Principal
from api.errors import ApiError
from api.schemas import StrictSchema
from api.services import principal, services
from shared.tenants import valid_tenant_name

log = logging.getLogger(__name__)

blp = Blueprint("keys", __name__, description="API keys (admin)")

class KeyRequestSchema(StrictSchema):
    # JSON booleans only: "yes" or 1 is a mistake, not a role.
    admin = fields.Boolean(load_default=False, truthy={True}, falsy={False}, metadata={
        "description": "the key may train and manage schedules, models and its tenant's keys"})
    operator = fields.Boolean(load_default=False, truthy={True}, falsy={False}, metadata={
        "description": "the key may manage every tenant's keys (only an operator key may create one)"})


class KeySchema(Schema):
    id = fields.String(metadata={"description": "the key id: the part between 'af_' and the secret"})
    tenant = fields.String()
    admin = fields.Boolean()
    operator = fields.Boolean()
    created_at = fields.Float(metadata={"description": "Unix time"})


class CreatedKeySchema(KeySchema):
    key = fields.String(metadata={"description": "the full key, shown this once: only its hash is stored"})


class KeyListSchema(Schema):
    items = fields.List(fields.Nested(KeySchema), metadata={"description": "oldest first"})


def key_admin() -> tuple[Principal, KeyStore]:
    who = principal()
    if not who.admin:
        raise ApiError(403, "forbidden", "API keys are managed with an admin key")
    return who, services().keys


def managed_tenant(who: Principal, tenant: str) -> str:
    """``tenant`` if the caller may manage its keys; a foreign tenant is as unknown as a missing one."""
    if not valid_tenant_name(tenant):
        raise ApiError(422, "invalid_parameters", "a tenant name is 1 to 64 letters, digits, '-' and '_'")
    if not who.operator and tenant != who.tenant:
        raise ApiError(404, "not_found", f"no tenant {tenant}")
    return tenant


def key_json(info: KeyInfo) -> dict[str, Any]:
    return {"id": info.id, "tenant": info.tenant, "admin": info.admin, "operator": info.operator,
            "created_at": info.created_at}


@blp.route("/v1/tenants/<tenant>/keys", methods=["POST"])
@blp.arguments(KeyRequestSchema)
@blp.response(201, CreatedKeySchema)
@blp.alt_response(403, description="not an admin key, or an operator key asked for by a non-operator")
@blp.alt_response(409, description="the new key was revoked before the answer was made")
@blp.alt_response(422, description="not a valid tenant name")
def create_key(body: dict[str, Any], tenant: str) -> dict[str, Any]:
    who, keys = key_admin()
    tenant = managed_tenant(who, tenant)
    if body["operator"] and not who.operator:
        raise ApiError(403, "forbidden", "only an operator key may create an operator key")
    key, created = keys.create(tenant, admin=body["admin"], operator=body["operator"])
    info = keys.get(created.key_id)
    if info is None:  # revoked in the instant since: the caller may as well not have it
        raise ApiError(409, "conflict", "the new key was revoked before it could be returned")
    log.info("API key %s created for tenant %s (admin %s, operator %s) by key %s",
             info.id, tenant, info.admin, info.operator, who.key_id)
    return {**key_json(info), "key": key}


@blp.route("/v1/tenants/<tenant>/keys", methods=["GET"])
@blp.response(200, KeyListSchema)
@blp.alt_response(403, description="not an admin key")
@blp.alt_response(422, description="not a valid tenant name")
def list_keys(tenant: str) -> dict[str, Any]:
    who, keys = key_admin()
    return {"items": [key_json(info) for info in keys.of_tenant(managed_tenant(who, tenant))]}


@blp.route("/v1/keys/<key_id>", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(403, description="not an admin key")
def revoke_key(key_id: str) -> None:
    """Revoked at once: the key's next request, in any API process, answers 401."""
    who, keys = key_admin()
    info = keys.get(key_id)
    if info is None or not (who.operator or info.tenant == who.tenant) or not keys.revoke(key_id):
        raise ApiError(404, "not_found", f"no key {key_id}")
    log.info("API key %s of tenant %s revoked by key %s", key_id, info.tenant, who.key_id)
