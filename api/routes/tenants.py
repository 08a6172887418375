"""Tenant policies, managed by operators (admin keys): how long a tenant's results are kept."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api.errors import ApiError
from api.schemas import TenantPolicyRequestSchema, TenantPolicySchema
from api.services import principal, services
from shared.tenants import TenantPolicy, TenantPolicyStore, valid_tenant_name

blp = Blueprint("tenants", __name__, url_prefix="/v1/tenants", description="Tenant policies (admin)")


@blp.before_request
def _admins_only() -> None:
    # Before the body is validated: a key that may not ask gets 403, whatever it sent.
    if not principal().admin:
        raise ApiError(403, "forbidden", "tenant policies are managed with an admin key")


def policies_of(tenant: str) -> TenantPolicyStore:
    if not valid_tenant_name(tenant):
        raise ApiError(422, "invalid_parameters", "a tenant name is letters, digits, '-' and '_'")
    return TenantPolicyStore(services().jobs.redis)


def policy_to_json(policy: TenantPolicy) -> dict[str, Any]:
    default = services().settings.results_expire_days
    return {"tenant": policy.tenant, "results_retention_days": policy.results_retention_days,
            "effective_results_retention_days": policy.effective_results_retention_days(default)}


@blp.route("/<tenant>/policy", methods=["GET"])
@blp.response(200, TenantPolicySchema)
@blp.alt_response(403, description="not an admin key")
def get_policy(tenant: str) -> dict[str, Any]:
    return policy_to_json(policies_of(tenant).get(tenant))


@blp.route("/<tenant>/policy", methods=["PUT"])
@blp.arguments(TenantPolicyRequestSchema)
@blp.response(200, TenantPolicySchema)
@blp.alt_response(403, description="not an admin key")
@blp.alt_response(422, description="results_retention_days is not a number >= 0 (or null)")
def put_policy(body: dict[str, Any], tenant: str) -> dict[str, Any]:
    policies = policies_of(tenant)
    return policy_to_json(policies.set_results_retention(tenant, body["results_retention_days"]))
