"""Webhooks: the caller's signing secret (deliveries themselves are set up per job)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api.schemas import WebhookSecretSchema
from api.services import principal, services
from shared.webhooks import SIGNATURE_HEADER, WebhookSecrets

blp = Blueprint("webhooks", __name__, url_prefix="/v1/webhooks",
                description="Webhooks: a job with a webhook_url is POSTed there when it finishes")


@blp.route("/secret", methods=["GET"])
@blp.response(200, WebhookSecretSchema)
def get_secret() -> dict[str, Any]:
    svc = services()
    return {
        "secret": WebhookSecrets(svc.jobs.redis, svc.settings).for_tenant(principal().tenant),
        "header": SIGNATURE_HEADER,
        "scheme": "t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.' + raw body, keyed with the secret>",
    }
