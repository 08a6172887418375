"""Rate limits and quotas per tenant; both answer 429 in the API's one error shape, with Retry-After.

Rate limits (flask-limiter, fixed windows counted in the service's Redis): every request of a
tenant counts against ``rate_limit_default``, submissions (``POST /v1/jobs``) also against
``rate_limit_submit``. Requests are keyed by the tenant of a valid API key, else by the client's
address, so unauthenticated callers share their address's budget. /healthz, /readyz and /metrics
are never limited. Should Redis be unreachable the limiter lets the request through (the handler
then answers 503 on its own).

A tenant's submissions are counted by their admission instead (``shared.admission``: the rate
limits, the quota, the Idempotency-Key and the job's record in one Redis round trip), in the same
counters flask-limiter keeps for the tenant's other requests (``submission_windows``). A submission
refused before its admission (a bad body, say) is counted after its answer, and answered 429 in
place of that answer when it was over a limit: the same answers as counting first.

Quotas: a submission takes a slot in its tenant's active-jobs pool (``shared.quotas``) before its
record exists; refused -> 429 ``quota_exceeded`` with ``details: {active, limit, pool}``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.exceptions
from flask import Flask, Response, current_app, g, request
from flask_limiter import ApplicationLimit, Limiter, RateLimitExceeded
from limits import RateLimitItem, parse_many

from api.errors import ApiError, error_response
from api.services import services
from shared.admission import Admission, Admissions, Window
from shared.jobs import NewJob
from shared.quotas import POOL_TRAINING, ActiveJobQuota
from shared.settings import Settings

UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
SUBMIT_ENDPOINT = "jobs.submit_job"
_LIMITER = "artforge_limiter"
_QUOTA = "artforge_quota"
_ADMISSIONS = "artforge_admissions"
_SUBMIT_LIMITS = "artforge_submit_limits"
KEY_PREFIX = "af:ratelimit"
SCOPE_TENANT, SCOPE_SUBMIT = "tenant", "submit"
MESSAGE_TENANT, MESSAGE_SUBMIT = "too many requests", "too many job submissions"


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


def _admitted_submission() -> bool:
    """A tenant's submission: its admission counts it (flask-limiter counts submissions with bad
    keys, by address)."""
    return request.endpoint == SUBMIT_ENDPOINT and rate_limit_key().startswith("tenant:")


@dataclass(frozen=True)
class SubmitLimit:
    """One limit a tenant's submission counts against, as flask-limiter names its counter."""

    item: RateLimitItem
    scope: str
    message: str


def submission_windows(tenant: str) -> list[Window]:
    """The tenant's windows a submission counts in: flask-limiter's own counters (its storage's
    key for the limit, the key prefix, the tenant and the limit's scope), so that submissions and
    the tenant's other requests share the default limit."""
    limits: list[SubmitLimit] = current_app.extensions[_SUBMIT_LIMITS]
    if not limits:
        return []
    storage = current_app.extensions[_LIMITER].limiter.storage
    return [Window(storage.prefixed_key(limit.item.key_for(KEY_PREFIX, f"tenant:{tenant}", limit.scope)),
                   limit.item.amount, limit.item.get_expiry())
            for limit in limits]


def _rate_limited(window: int, retry_after_s: int) -> TooManyRequests:
    limit: SubmitLimit = current_app.extensions[_SUBMIT_LIMITS][window]
    text = str(limit.item)
    return TooManyRequests("rate_limited", f"{limit.message}: the limit is {text}; retry after Retry-After seconds",
                           min(retry_after_s, limit.item.get_expiry()), {"limit": text})


def admit_submission(job: NewJob, kind: str, idempotency_key: str | None, body_sha256: str) -> Admission:
    """Admit a tenant's new job (``shared.admission``); 429 rate_limited or quota_exceeded when
    refused. A replay of an earlier Idempotency-Key comes back for the caller to answer."""
    g.submission_counted = True
    admissions: Admissions = current_app.extensions[_ADMISSIONS]
    decision = admissions.admit(job, kind, submission_windows(job.record["tenant"]), idempotency_key, body_sha256)
    if decision.outcome == "rate_limited":
        raise _rate_limited(decision.window, decision.retry_after_s)
    if decision.outcome == "quota_exceeded":
        what = "training jobs" if decision.pool == POOL_TRAINING else "jobs"
        raise TooManyRequests(
            "quota_exceeded",
            f"{decision.active} {what} of this tenant are queued or running, the limit is {decision.limit}; "
            "submit more when some have finished",
            current_app.config["ARTFORGE_SETTINGS"].retry_after_s,
            {"active": decision.active, "limit": decision.limit, "pool": decision.pool})
    return decision


def _count_refused_submission(response: Response) -> Response:
    """A tenant's submission answered before its admission (400, 403, 422, ...) counts too; over a
    limit, it is answered 429 instead, as it would have been had it been counted first."""
    if g.get("submission_counted") or request.endpoint != SUBMIT_ENDPOINT or g.get("principal") is None:
        return response
    admissions: Admissions = current_app.extensions[_ADMISSIONS]
    try:
        decision = admissions.count(submission_windows(g.principal.tenant))
    except redis.exceptions.RedisError:  # fail open, as flask-limiter does
        return response
    if decision.outcome != "rate_limited":
        return response
    exc = _rate_limited(decision.window, decision.retry_after_s)
    return error_response(429, exc.code, exc.message, exc.details, headers={"Retry-After": str(exc.retry_after_s)})


def install_limits(app: Flask, settings: Settings) -> Limiter:
    """Rate limiting and the quota store on ``app``. Call before the auth hook is registered:
    flask-limiter's check then runs first, so failed authentications are limited as well."""
    limits: list[str | Callable[[], str] | ApplicationLimit] = []
    # Parsed here, so a typo fails the start, not (silently, failing open) every request.
    submit_limits: list[SubmitLimit] = []
    if settings.rate_limit_default:
        limits.append(ApplicationLimit(settings.rate_limit_default, scope=SCOPE_TENANT, error_message=MESSAGE_TENANT))
        submit_limits += [SubmitLimit(item, SCOPE_TENANT, MESSAGE_TENANT)
                          for item in parse_many(settings.rate_limit_default)]
    if settings.rate_limit_submit:
        limits.append(ApplicationLimit(settings.rate_limit_submit, scope=SCOPE_SUBMIT, error_message=MESSAGE_SUBMIT,
                                       exempt_when=_not_submit))
        submit_limits += [SubmitLimit(item, SCOPE_SUBMIT, MESSAGE_SUBMIT)
                          for item in parse_many(settings.rate_limit_submit)]
    limiter = Limiter(
        rate_limit_key,
        application_limits=limits,
        storage_uri=settings.redis_url,
        storage_options={"socket_connect_timeout": 2, "socket_timeout": 5},
        strategy="fixed-window",
        key_prefix=KEY_PREFIX,
        # Fail open: with Redis down the request goes on and is answered 503 by what needs Redis.
        swallow_errors=True,
        headers_enabled=False,
        enabled=bool(limits),
    )
    limiter.request_filter(lambda: request.path in UNLIMITED_PATHS or _admitted_submission())
    limiter.init_app(app)
    app.extensions[_LIMITER] = limiter
    client = app.extensions["artforge"].jobs.redis
    app.extensions[_QUOTA] = quota = ActiveJobQuota.from_settings(client, settings)
    app.extensions[_ADMISSIONS] = Admissions(client, quota)
    # flask-limiter checks its limits in this order and stops at the first one over (so do admissions).
    app.extensions[_SUBMIT_LIMITS] = sorted(submit_limits, key=lambda limit: limit.item)
    app.after_request(_count_refused_submission)

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


def release_job_slot(tenant: str, job_id: str) -> None:
    quota: ActiveJobQuota = current_app.extensions[_QUOTA]
    quota.release(tenant, job_id)
