"""Webhooks on the API side: checking a submitted ``webhook_url`` and showing delivery state."""

from __future__ import annotations

from typing import Any

from api.errors import ApiError
from shared.jobs import Job
from shared.settings import Settings
from shared.webhooks import WebhookUrlRefused, check_webhook_url


def checked_webhook_url(url: str | None, settings: Settings) -> str | None:
    """The URL to store on the job; 422 invalid_webhook_url when the SSRF guard refuses it."""
    if url is None:
        return None
    try:
        return check_webhook_url(url, settings).url
    except WebhookUrlRefused as refused:
        raise ApiError(422, "invalid_webhook_url", str(refused), {"field": "webhook_url"}) from None


def webhook_view(job: Job) -> dict[str, Any] | None:
    """``{"url", "state", "deliveries"}``; pending until the job has finished and a delivery ended."""
    if not job.webhook_url:
        return None
    state = job.webhook or {}
    return {"url": job.webhook_url, "state": state.get("state", "pending"),
            "deliveries": list(state.get("deliveries") or [])}
