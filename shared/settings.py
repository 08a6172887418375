"""Settings, read once from ``ARTFORGE_*`` environment variables into a frozen object.

pydantic-settings reads the variables and checks each value against its setting's type: a value
that does not parse is an error naming the variable (``ARTFORGE_S3_SECURE=ture`` is refused, not
read as false). ``Settings()`` reads the process's environment, ``Settings.from_env(mapping)``
the mapping alone. Secrets are excluded from ``repr`` so they never reach a log line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "ARTFORGE_"


class SettingsError(ValueError):
    """An ``ARTFORGE_*`` variable whose value does not fit its setting; the message names it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    s3_endpoint: str = "127.0.0.1:9000"
    s3_access_key: str = Field(default="artforge", repr=False)
    s3_secret_key: str = Field(default="artforge-secret", repr=False)
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    bucket_uploads: str = "artforge-uploads"
    bucket_results: str = "artforge-results"
    bucket_models: str = "artforge-models"
    bucket_datasets: str = "artforge-datasets"
    # Public base URL of the API, used to build result links in job records.
    public_url: str = ""
    max_upload_bytes: int = 32 * 1024 * 1024
    # Well below Pillow's default of ~89 M pixels: a 2048x2048 result needs 4.2 M.
    max_image_pixels: int = 40_000_000
    max_job_side: int = 2048
    finished_job_ttl_s: int = 7 * 24 * 3600
    max_attempts: int = 3
    # A running job's lease; the worker's heartbeat renews it, the reaper requeues expired ones.
    lease_s: int = 30
    heartbeat_s: int = 5
    # A job queued this long without a message in the broker has lost it and is sent again;
    # beat looks every lost_job_check_s (workers.maintenance.resend_lost_jobs).
    lost_job_after_s: int = 300
    lost_job_check_s: int = 60
    inference_soft_limit_s: int = 600
    inference_hard_limit_s: int = 660
    training_soft_limit_s: int = 6 * 3600
    training_hard_limit_s: int = 6 * 3600 + 300
    presign_expiry_s: int = 3600
    device: str = "auto"
    # Creation jobs for the same model that are already queued when a worker starts one join it in
    # one generator forward, as long as all their images together stay within this many
    # (workers.creation_batching); 0: every creation job runs alone (and none is listed as waiting).
    creation_batch_max_images: int = 256
    # Steps of finished attempts (marking, signing, storing, settling) a worker process may have
    # waiting on its finalize thread while it runs its next job (workers.finalizing); 0: none, each
    # attempt is stored and settled before the worker takes the next.
    finalize_backlog: int = 4
    # Threads each worker process gives torch on the CPU (0: torch's default, one per core).
    # Set it to cores / worker processes when several workers share a machine's CPUs:
    # oversubscribed torch threads slow training on 2 cores by an order of magnitude.
    torch_threads: int = 0
    # Server-sent event streams (GET /v1/jobs/{id}/events): the longest a stream stays open (the
    # client then reconnects with Last-Event-ID) and the keep-alive comment interval.
    sse_max_s: float = 3600.0
    sse_heartbeat_s: float = 15.0
    # Streams one API process keeps open at once (api/event_streams.py); beyond it the endpoint
    # answers 503 and clients poll. None: no cap (deploy/gunicorn_conf.py sets half the threads).
    sse_streams_per_process: int | None = None
    # Retry-After seconds sent with 503 answers.
    retry_after_s: int = 5
    # Provenance. The watermark key is a secret: with the empty default the public development key
    # is used, which anyone can read marks with; production sets ARTFORGE_WATERMARK_KEY.
    watermark_key: str = Field(default="", repr=False)
    # Where workers keep (and make at first start) the local CA and signing key; the API reads
    # only the CA certificate there. Operators may bring their own certificate chain and key
    # (PEM paths, both or neither) and the trust anchors verifiers use.
    signing_dir: str = "signing"
    signing_cert: str = ""
    signing_key: str = Field(default="", repr=False)
    trust_anchors: str = ""
    # The built-in debian-images corpus's manifest (``make datasets``); empty: the repository's
    # .artforge/datasets/debian-images.json (shared.debian_images).
    debian_images_manifest: str = ""
    # Object lock on the results bucket: results, their C2PA sidecars and provenance records are
    # stored with this many days of retention (0 = off); mode GOVERNANCE or COMPLIANCE. Needs a
    # bucket created with object lock (ObjectStore.ensure_buckets does so when this is set).
    results_retention_days: int = 0
    results_retention_mode: str = "GOVERNANCE"
    # Results expiry, unlike the object lock above: a tenant's results (and everything else under
    # {tenant}/{job_id}/) are deleted this many days after their job finished; fractions allowed;
    # 0 = kept forever. Each tenant's own policy (PUT /v1/tenants/{tenant}/policy) overrides it.
    results_expire_days: float = 0
    # How often beat runs the housekeeping tasks: pruning keys of expired job records, expiring results.
    housekeeping_interval_s: int = 3600
    # Reliability. A worker's S3 calls ride out a short outage: an unreachable server or a 5xx answer
    # is tried again up to s3_retry_attempts times in all, waiting s3_retry_backoff_s, then twice
    # that, ... (at most s3_retry_backoff_max_s) in between; the job keeps its lease meanwhile. Past
    # that budget the attempt hands the job back to the queue (a new attempt, counted). Keep the
    # budget (about 15 s with these values) well under the provenance chain's 60 s lock. The API
    # never waits like this: it answers 503 at once.
    s3_retry_attempts: int = 6
    s3_retry_backoff_s: float = 0.5
    s3_retry_backoff_max_s: float = 8.0
    # Test and operations knob, 0 = derived: the broker's visibility timeout (shared.queue) is
    # normally the longest job's hard limit plus an hour. Set it only to show that a short one is
    # harmless (the job's lease refuses the early redelivery), never to speed up recovery.
    visibility_timeout_s: int = 0
    # Test-only fault injection (workers.faults), off when empty. Never set it in production.
    fault_injection: str = ""
    # Observability. Log lines are JSON ("json") or plain text for humans ("text"). A worker serves
    # Prometheus metrics on this port and address (0 = off); keep the port inside the cluster.
    log_format: str = "json"
    worker_metrics_port: int = 0
    worker_metrics_host: str = "127.0.0.1"

    # Webhooks (shared.webhooks, workers.webhooks). The SSRF guard refuses non-public addresses unless
    # allowed here: every private/loopback/link-local one, or the listed host names and IP networks
    # (comma-separated). The master secret signs deliveries (per tenant, derived); empty = a random
    # one kept in Redis. A delivery is tried up to webhook_max_attempts times, waiting
    # webhook_backoff_s, then twice that, ... between tries (1, 2, 4, 8, 16 s by default).
    webhook_allow_private: bool = False
    webhook_allowed_hosts: str = ""
    webhook_secret: str = Field(default="", repr=False)
    webhook_max_attempts: int = 6
    webhook_backoff_s: float = 1.0
    webhook_connect_timeout_s: float = 3.0
    webhook_read_timeout_s: float = 10.0
    # CA bundle (PEM path) for https receivers; empty = certifi's.
    webhook_ca_certs: str = ""
    # Rate limits per tenant (by IP before authentication), in flask-limiter's notation; "" = none.
    # The default limit counts every request of the tenant; submissions also count against their own.
    rate_limit_default: str = "1200/minute"
    rate_limit_submit: str = "120/minute"
    # Queued + running jobs a tenant may have (0 = no cap); training jobs have their own cap.
    max_active_jobs_per_tenant: int = 100
    max_active_training_jobs_per_tenant: int = 2

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """The settings in ``environ`` (default: the process's environment), then ``overrides``;
        ``SettingsError`` names each variable whose value does not fit."""
        unknown = sorted(set(overrides) - set(cls.model_fields))
        if unknown:
            raise TypeError(f"no setting named {', '.join(unknown)}")
        given: dict[str, Any] = {}
        if environ is not None:  # every setting from the mapping (or its default): os.environ plays no part
            given = {name: environ.get(env_name(name), field.default) for name, field in cls.model_fields.items()}
        try:
            return cls(**{**given, **overrides})
        except ValidationError as exc:
            raise SettingsError("; ".join(_described(error, overrides) for error in exc.errors())) from None


def env_name(setting: str) -> str:
    return ENV_PREFIX + setting.upper()


def _described(error: Any, overrides: Mapping[str, Any]) -> str:
    name = str(error["loc"][0]) if error["loc"] else "?"
    where = f"setting {name}" if name in overrides else env_name(name)
    return f"{where}={error['input']!r}: {error['msg']}"
