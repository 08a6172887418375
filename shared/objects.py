"""Object storage (MinIO, or any S3 server) through the minio SDK.

Result keys are deterministic (``{tenant}/{job_id}/...``), so a re-run after a crash
overwrites the same objects and leaves exactly one result set.

Object lock: with ``results_retention_days`` set, the results bucket is created with object
lock (which turns versioning on) and results, their C2PA sidecars and provenance records are
stored with a retention date (``put_bytes(..., retain=True)``): no version of them can be
deleted or overwritten in place until then; a re-run adds a new version beside the locked one.
Object lock can only be enabled when a bucket is created; ``ensure_buckets`` refuses to go on
with an existing results bucket that lacks it. Checked against SeaweedFS (tests) and written
for MinIO, whose API is the same.

Outages: one retry budget per call (``RetryPolicy``, tenacity); the HTTP client under it makes a
single try, so retries are never layered. The API's store fails fast (a second try at once, for a
connection the server dropped; then callers answer 503). A worker's store (``with_retries``) tries
reads and writes again while S3 is unreachable or answers 5xx, with exponential backoff, and raises
``StorageUnavailable`` once its budget is spent; a missing object or a refusal (4xx) is never retried.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import tenacity
import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE, GOVERNANCE
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.retention import Retention

from shared.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


class ObjectNotFound(Exception):
    pass


class StorageUnavailable(ConnectionError):
    """S3 stayed unreachable (or kept answering 5xx) through every try of a retried call.
    A ConnectionError, so whatever treats a dependency outage as one (the API's 503) does here too."""


def is_outage(exc: BaseException) -> bool:
    """A failure worth trying again: no connection, a dropped one, or a 5xx answer."""
    if isinstance(exc, S3Error):
        return exc.response is not None and exc.response.status >= 500
    if isinstance(exc, ServerError):
        return exc.status_code >= 500
    if isinstance(exc, InvalidResponseError):  # a proxy's HTML error page, say
        return int(getattr(exc, "_code", 0) or 0) >= 500
    return isinstance(exc, urllib3.exceptions.HTTPError | OSError)


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all, waiting ``backoff_s``, 2x, 4x ... (at most ``max_backoff_s``) between
    them, while the failure is an outage (``is_outage``). The default is the API's: one more try at
    once, for a pooled connection the server closed."""

    attempts: int = 2
    backoff_s: float = 0.0
    max_backoff_s: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The worker's budget: ARTFORGE_S3_RETRY_ATTEMPTS, _BACKOFF_S and _BACKOFF_MAX_S."""
        return cls(max(1, settings.s3_retry_attempts), settings.s3_retry_backoff_s, settings.s3_retry_backoff_max_s)

    def call(self, fn: Callable[[], T], what: str) -> T:
        """``fn()``, tried again on an outage; past the budget, ``StorageUnavailable`` (the original
        error where the policy allows one try)."""

        def before_sleep(state: tenacity.RetryCallState) -> None:
            wait = state.next_action.sleep if state.next_action else 0.0
            exc = state.outcome.exception() if state.outcome else None
            log.warning("S3 unavailable for %s (try %d of %d): %s; trying again in %.1f s",
                        what, state.attempt_number, self.attempts, exc, wait)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=tenacity.wait_exponential(multiplier=self.backoff_s, max=self.max_backoff_s),
            retry=tenacity.retry_if_exception(is_outage),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(fn)
        except Exception as exc:
            if self.attempts > 1 and is_outage(exc):
                raise StorageUnavailable(f"S3 unavailable for {what} after {self.attempts} tries: {exc}") from exc
            raise


class ObjectLockUnavailable(Exception):
    """Retention is configured but the results bucket has no object lock (or the server has none)."""


RETENTION_MODES = {"GOVERNANCE": GOVERNANCE, "COMPLIANCE": COMPLIANCE}


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    key: str
    size: int
    content_type: str
    metadata: dict[str, str]


class ObjectStore:
    def __init__(self, settings: Settings, client: Minio | None = None, retry: RetryPolicy | None = None):
        self.settings = settings
        self.retry = retry or RetryPolicy()
        self.client = client or Minio(
            settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            secure=settings.s3_secure,
            region=settings.s3_region,
            # One try per request: RetryPolicy is the only retry budget (minio's default client
            # would retry 5 times under it). Fail fast when S3 is down: callers turn errors into
            # 503s or retries.
            http_client=urllib3.PoolManager(
                timeout=urllib3.Timeout(connect=3.0, read=60.0),
                retries=False,
                maxsize=16,
            ),
        )

    def with_retries(self, policy: RetryPolicy) -> ObjectStore:
        """This store (same client, same connection pool) with reads and writes retried by ``policy``."""
        return ObjectStore(self.settings, client=self.client, retry=policy)

    @property
    def buckets(self) -> tuple[str, ...]:
        s = self.settings
        return (s.bucket_uploads, s.bucket_results, s.bucket_models, s.bucket_datasets)

    def ensure_buckets(self) -> None:
        for bucket in self.buckets:
            locked = bucket == self.settings.bucket_results and self.retention_enabled
            if not self.client.bucket_exists(bucket):
                try:
                    self.client.make_bucket(bucket, object_lock=locked)
                except S3Error as exc:  # another process made it first
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
        if self.retention_enabled:
            self.check_object_lock()

    @property
    def retention_enabled(self) -> bool:
        return self.settings.results_retention_days > 0

    def check_object_lock(self) -> None:
        """Raise ``ObjectLockUnavailable`` unless the results bucket has object lock enabled."""
        bucket = self.settings.bucket_results
        if self.settings.results_retention_mode not in RETENTION_MODES:
            raise ObjectLockUnavailable(f"results_retention_mode must be one of {sorted(RETENTION_MODES)}")
        try:
            self.client.get_object_lock_config(bucket)
        except S3Error as exc:
            raise ObjectLockUnavailable(
                f"results retention is configured but bucket {bucket} has no object lock ({exc.code}); object "
                "lock can only be enabled when a bucket is created: create a new results bucket with it "
                "(mc mb --with-lock) and point ARTFORGE_BUCKET_RESULTS at it") from None

    def _retention(self) -> Retention:
        until = datetime.now(UTC) + timedelta(days=self.settings.results_retention_days)
        return Retention(RETENTION_MODES[self.settings.results_retention_mode], until)

    def ping(self) -> None:
        self.client.bucket_exists(self.settings.bucket_results)

    def put_bytes(
        self,
        bucket: str,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
        retain: bool = False,
    ) -> None:
        """``retain``: apply the configured retention (results bucket only; nothing when it is off)."""
        retention = self._retention() if retain and self.retention_enabled else None
        self.retry.call(lambda: self.client.put_object(
            bucket, key, io.BytesIO(data), len(data), content_type=content_type, metadata=dict(metadata or {}),
            retention=retention,
        ), f"writing {bucket}/{key}")

    def put_json(self, bucket: str, key: str, document: Any, retain: bool = False) -> bytes:
        # No indent: json's C encoder only runs without one (a record encodes 10x faster).
        body = json.dumps(document, sort_keys=True, ensure_ascii=False).encode()
        self.put_bytes(bucket, key, body, content_type="application/json", retain=retain)
        return body

    def _open(self, bucket: str, key: str):  # type: ignore[no-untyped-def]
        try:
            return self.client.get_object(bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket"):
                raise ObjectNotFound(f"{bucket}/{key}") from None
            raise

    def get_bytes(self, bucket: str, key: str) -> bytes:
        def read() -> bytes:
            response = self._open(bucket, key)
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()

        return self.retry.call(read, f"reading {bucket}/{key}")

    def stream(self, bucket: str, key: str, chunk_size: int = 256 * 1024) -> Iterator[bytes]:
        """Open the object now (so a missing key raises here) and yield its bytes."""
        response = self._open(bucket, key)

        def chunks() -> Iterator[bytes]:
            try:
                yield from response.stream(chunk_size)
            finally:
                response.close()
                response.release_conn()

        return chunks()

    def stat(self, bucket: str, key: str) -> StoredObject:
        try:
            st = self.retry.call(lambda: self.client.stat_object(bucket, key), f"reading {bucket}/{key}")
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
                raise ObjectNotFound(f"{bucket}/{key}") from None
            raise
        # S3 servers differ in the case of user metadata keys: normalise them.
        meta = {}
        for name, value in (st.metadata or {}).items():
            lower = name.lower()
            if lower.startswith("x-amz-meta-"):
                meta[lower[len("x-amz-meta-"):]] = value
        return StoredObject(bucket, key, st.size or 0, st.content_type or "", meta)

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.stat(bucket, key)
        except ObjectNotFound:
            return False
        return True

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        return self.retry.call(lambda: [o.object_name for o in self.client.list_objects(bucket, prefix=prefix,
                                                                                        recursive=True)
                                        if o.object_name], f"listing {bucket}/{prefix}")

    def presigned_get(self, bucket: str, key: str, expiry_s: int | None = None) -> str:
        return self.client.presigned_get_object(
            bucket, key, expires=timedelta(seconds=expiry_s or self.settings.presign_expiry_s)
        )
