"""Webhook deliveries: a finished job's outcome POSTed, signed, to its ``webhook_url``.

Never part of the job: ``request_delivery`` runs after an attempt (or the reaper) and only sends
a task to the maintenance queue; each task (``deliver``) makes one attempt and, when it fails,
sends the next one ``webhook_backoff_s * 2**(attempt-1)`` seconds later, until
``webhook_max_attempts``. Every attempt is recorded on the job record (``webhook``:
``{"state": "pending|delivered|failed", "deliveries": [{"attempt", "at", "status_code" | "error",
"duration_ms"}]}``), which expires with it.

A delivery succeeds on a 2xx answer. Anything else is a failed attempt: other statuses (a
redirect is never followed), timeouts (``webhook_connect_timeout_s``, ``webhook_read_timeout_s``),
refused connections, and a host that now resolves to an address the SSRF guard refuses. The host
is resolved and checked at each attempt and the connection goes to the checked address, with the
URL's host name in the Host header and, for https, in SNI and the certificate check.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import certifi
import urllib3

from shared.jobs import Job, JobStatus
from shared.settings import Settings
from shared.webhooks import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    Resolver,
    WebhookSecrets,
    WebhookTarget,
    WebhookUrlRefused,
    check_webhook_url,
    resolve,
    sign,
)
from workers.runtime import Runtime

log = logging.getLogger(__name__)

EVENT = "job.finished"
USER_AGENT = "ArtForge-Webhooks/1"
# How many bytes of the receiver's answer are read (and dropped) before the connection closes.
MAX_RESPONSE_BYTES = 64 * 1024
# (job id, attempt, delay in seconds) -> the attempt's task is sent.
SendAttempt = Callable[[str, int, float], None]

# Mark the job's webhook pending, once: only a finished job that has a webhook_url and no
# webhook state yet. KEYS: job hash.  ARGV: initial state JSON.
_CLAIM_LUA = """
local v = redis.call('HMGET', KEYS[1], 'status', 'webhook_url', 'webhook')
if not v[1] or not v[2] or v[2] == '' or v[3] then return 0 end
if v[1] ~= 'succeeded' and v[1] ~= 'failed' and v[1] ~= 'canceled' then return 0 end
redis.call('HSET', KEYS[1], 'webhook', ARGV[1])
return 1
"""

# Never recreate an expired record. KEYS: job hash.  ARGV: state JSON.
_RECORD_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'webhook', ARGV[1])
return 1
"""


def request_delivery(rt: Runtime, job_id: str, send: SendAttempt) -> bool:
    """Start the deliveries of a finished job's webhook; a no-op for a job that is not finished,
    has none, or whose deliveries were started before (so calling it after every attempt is safe)."""
    pending = json.dumps({"state": "pending", "deliveries": []})
    key = rt.jobs.job_key(job_id)
    if not rt.jobs.redis.eval(_CLAIM_LUA, 1, key, pending):
        return False
    try:
        send(job_id, 1, 0.0)
    except Exception:
        # Not sent: let a later call (the next attempt's or the reaper's) start it again.
        rt.jobs.redis.hdel(key, "webhook")
        log.warning("could not send the webhook delivery of job %s", job_id, exc_info=True)
        return False
    return True


def deliver(rt: Runtime, job_id: str, attempt: int, send: SendAttempt, resolver: Resolver = resolve) -> str:
    """Make attempt ``attempt`` and record it; send the next one if it failed and attempts are left.
    Returns what happened, for logs and tests."""
    job = rt.jobs.get(job_id)
    if job is None or not job.webhook_url:
        return "gone"
    state = dict(job.webhook or {"state": "pending", "deliveries": []})
    deliveries = list(state.get("deliveries") or [])
    if state.get("state") != "pending" or len(deliveries) >= attempt:
        return "duplicate"  # a message delivered twice: that attempt was made already

    settings = rt.settings
    body = delivery_body(job, settings.public_url)
    secret = WebhookSecrets(rt.jobs.redis, settings).for_tenant(job.tenant)
    entry = attempt_delivery(job.webhook_url, body, secret, job_id, attempt, settings, resolver)
    deliveries.append(entry)
    delivered = 200 <= entry.get("status_code", 0) < 300
    last = attempt >= settings.webhook_max_attempts
    state = {"state": "delivered" if delivered else "failed" if last else "pending", "deliveries": deliveries}
    rt.jobs.redis.eval(_RECORD_LUA, 1, rt.jobs.job_key(job_id), json.dumps(state))
    if state["state"] != "pending":
        log.info("webhook of job %s %s after %d attempt(s)", job_id, state["state"], attempt)
        return str(state["state"])
    delay = settings.webhook_backoff_s * 2 ** (attempt - 1)
    try:
        send(job_id, attempt + 1, delay)
    except Exception:
        log.warning("could not schedule webhook attempt %d of job %s", attempt + 1, job_id, exc_info=True)
        state["state"] = "failed"
        rt.jobs.redis.eval(_RECORD_LUA, 1, rt.jobs.job_key(job_id), json.dumps(state))
        return "failed"
    return "retrying"


def delivery_body(job: Job, public_url: str) -> bytes:
    """What the receiver gets: the same bytes at every attempt (the signature covers them)."""
    base = f"{public_url.rstrip('/')}/v1/jobs/{job.id}"
    return json.dumps({
        "event": EVENT,
        "job": {
            "id": job.id,
            "kind": job.kind,
            "status": job.status.value,
            "url": base,
            "created_at": _iso(job.created_at),
            "finished_at": _iso(job.finished_at),
            "attempts": job.attempts,
            "error": job.error,
            "results": [{"index": r["index"], "url": f"{base}/results/{r['index']}",
                         "provenance_url": f"{base}/results/{r['index']}/provenance",
                         "sha256": r.get("sha256"), "width": r.get("width"), "height": r.get("height")}
                        for r in (job.results if job.status == JobStatus.SUCCEEDED else [])],
        },
    }, separators=(",", ":"), sort_keys=True).encode()


def attempt_delivery(url: str, body: bytes, secret: str, job_id: str, attempt: int, settings: Settings,
                     resolver: Resolver = resolve) -> dict[str, Any]:
    """One signed POST; the attempt's record (``status_code`` or ``error``)."""
    started, clock = time.time(), time.monotonic()
    entry: dict[str, Any] = {"attempt": attempt, "at": _iso(started)}
    try:
        target = check_webhook_url(url, settings, resolver)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_HEADER: EVENT,
            DELIVERY_HEADER: job_id,
            ATTEMPT_HEADER: str(attempt),
            SIGNATURE_HEADER: sign(secret, timestamp, body),
        }
        status = post_pinned(target, body, headers, settings)
        entry["status_code"] = status
        if 300 <= status < 400:
            entry["error"] = "redirects are not followed"
        elif not 200 <= status < 300:
            entry["error"] = f"the receiver answered {status}"
    except WebhookUrlRefused as refused:
        entry["error"] = str(refused)
    except urllib3.exceptions.HTTPError as exc:
        entry["error"] = _describe(exc)
    except OSError as exc:
        entry["error"] = f"{type(exc).__name__}: {exc}"
    entry["duration_ms"] = round((time.monotonic() - clock) * 1000, 1)
    return entry


def post_pinned(target: WebhookTarget, body: bytes, headers: dict[str, str], settings: Settings) -> int:
    """POST to ``target.addresses[0]`` (no second name lookup), naming ``target.host`` in the Host
    header and, for https, in SNI and the certificate check. No retries, no redirects."""
    timeout = urllib3.Timeout(connect=settings.webhook_connect_timeout_s, read=settings.webhook_read_timeout_s)
    address = target.addresses[0]
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            address, target.port, timeout=timeout, retries=False, maxsize=1, cert_reqs="CERT_REQUIRED",
            ca_certs=settings.webhook_ca_certs or certifi.where(), server_hostname=target.host,
            assert_hostname=target.host)
    else:
        pool = urllib3.HTTPConnectionPool(address, target.port, timeout=timeout, retries=False, maxsize=1)
    try:
        response = pool.urlopen("POST", target.path, body=body, headers={**headers, "Host": target.host_header},
                                retries=False, redirect=False, assert_same_host=False, preload_content=False)
        try:
            response.read(MAX_RESPONSE_BYTES)
        except urllib3.exceptions.HTTPError:
            pass  # the status is what counts
        response.release_conn()
        return int(response.status)
    finally:
        pool.close()


def _describe(exc: urllib3.exceptions.HTTPError) -> str:
    reason = getattr(exc, "reason", None)
    error = reason if isinstance(reason, Exception) else exc
    if isinstance(error, urllib3.exceptions.NewConnectionError):  # (a subclass of ConnectTimeoutError)
        return f"could not connect: {str(error).rpartition(': ')[2]}"
    if isinstance(error, urllib3.exceptions.ConnectTimeoutError):
        return "connect timeout"
    if isinstance(error, urllib3.exceptions.ReadTimeoutError):
        return "read timeout"
    if isinstance(error, urllib3.exceptions.SSLError):
        return f"TLS error: {error}"
    return f"{type(error).__name__}: {error}"


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts else None
