"""Rate limits and quotas per tenant; both answer 429 in the API's one error shape, with Retry-After.

Rate limits (flask-limiter, fixed windows counted in the service's Redis): every request of a
tenant counts against ``rate_limit_default``, submissions (``POST /v1/jobs``) also against
``rate_limit_submit``. Requests are keyed by the tenant of a valid API key, else by the client's
address, so unauthenticated callers share their address's budget. /healthz, /readyz and /metrics
are never limited. Should Redis be unreachable the limiter lets the request through (the handler
then answers 503 on its own).

Quotas: a submission takes a slot in its tenant's active-jobs pool (``shared.quotas``) before its
record exists; refused -> 429 ``quota_exceeded`` with ``details: {active, limit, pool}``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, request
from flask_limiter import ApplicationLimit, Limiter, RateLimitExceeded
from limits import parse_many

from api.errors import ApiError, error_response
from api.services import services
from shared.quotas import POOL_TRAINING, ActiveJobQuota
from shared.settings import Settings

UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
SUBMIT_ENDPOINT = "jobs.submit_job"
_LIMITER = "artforge_limiter"
_QUOTA = "artforge_quota"


class TooManyRequests(ApiError):
    """A 429 with Retry-After."""

    def __init__(self, code: str, message: str, retry_after_s: int, details: dict[str, Any] | None = None):
        super().__init__(429, code, message, details)
        self.retry_after_s = max(1, retry_after_s)


def rate_limit_key() -> str:
    """``tenant:<name>`` for a request with a valid API key, else ``ip:<address>``. The key is
    checked here, before the auth hook (which then finds it in the key store's cache), so that
    requests with bad keys are limited by address too."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        who = services().keys.verify(token.strip())
        if who is not None:
            return f"tenant:{who.tenant}"
    return f"ip:{request.remote_addr or 'unknown'}"


def _not_submit() -> bool:
    return request.endpoint != SUBMIT_ENDPOINT


def install_limits(app: Flask, settings: Settings) -> Limiter:
    """Rate limiting and the quota store on ``app``. Call before the auth hook is registered:
    flask-limiter's check then runs first, so failed authentications are limited as well."""
    for text in (settings.rate_limit_default, settings.rate_limit_submit):
        if text:
            parse_many(text)  # a typo fails the start, not (silently, failing open) every request
    limits: list[str | Callable[[], str] | ApplicationLimit] = []
    if settings.rate_limit_default:
        limits.append(ApplicationLimit(settings.rate_limit_default, scope="tenant", error_message="too many requests"))
    if settings.rate_limit_submit:
        limits.append(ApplicationLimit(settings.rate_limit_submit, scope="submit", exempt_when=_not_submit,
                                       error_message="too many job submissions"))
    limiter = Limiter(
        rate_limit_key,
        application_limits=limits,
        storage_uri=settings.redis_url,
        storage_options={"socket_connect_timeout": 2, "socket_timeout": 5},
        strategy="fixed-window",
        key_prefix="af:ratelimit",
        # Fail open: with Redis down the request goes on and is answered 503 by what needs Redis.
        swallow_errors=True,
        headers_enabled=False,
        enabled=bool(limits),
    )
    limiter.request_filter(lambda: request.path in UNLIMITED_PATHS)
    limiter.init_app(app)
    app.extensions[_LIMITER] = limiter
    app.extensions[_QUOTA] = ActiveJobQuota.from_settings(app.extensions["artforge"].jobs.redis, settings)

    @app.errorhandler(TooManyRequests)
    def _too_many(exc: TooManyRequests) -> Any:
        return error_response(429, exc.code, exc.message, exc.details, headers={"Retry-After": str(exc.retry_after_s)})

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(exc: RateLimitExceeded) -> Any:
        current, window_s = limiter.current_limit, exc.limit.limit.get_expiry()
        # reset_at is rounded up to the next second: never announce more than the window itself.
        retry = min(window_s, math.ceil(current.reset_at - time.time())) if current is not None else 1
        limit = str(exc.limit.limit)
        return _too_many(TooManyRequests(
            "rate_limited", f"{exc.description}: the limit is {limit}; retry after Retry-After seconds",
            retry, {"limit": limit}))

    return limiter


def reserve_job_slot(tenant: str, kind: str, job_id: str) -> None:
    """Take a slot for a new job of ``tenant`` or answer 429 quota_exceeded."""
    quota: ActiveJobQuota = current_app.extensions[_QUOTA]
    decision = quota.claim(tenant, kind, job_id)
    if not decision.granted:
        what = "training jobs" if decision.pool == POOL_TRAINING else "jobs"
        retry = current_app.config["ARTFORGE_SETTINGS"].retry_after_s
        raise TooManyRequests(
            "quota_exceeded",
            f"{decision.active} {what} of this tenant are queued or running, the limit is {decision.limit}; "
            "submit more when some have finished",
            retry, {"active": decision.active, "limit": decision.limit, "pool": decision.pool})


def release_job_slot(tenant: str, job_id: str) -> None:
    quota: ActiveJobQuota = current_app.extensions[_QUOTA]
    quota.release(tenant, job_id)
