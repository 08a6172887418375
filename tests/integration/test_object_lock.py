"""Object lock on the results bucket against a real S3 server (SeaweedFS): with retention
configured, stored results and records cannot be deleted or overwritten in place; without
object lock on the bucket, the store refuses to pretend."""

from __future__ import annotations

import pytest
from minio.error import S3Error

from deploy.devstack import Stack
from shared.objects import ObjectLockUnavailable, ObjectStore
from shared.settings import Settings
from tests.conftest import stack_on


@pytest.fixture(scope="module")
def s3(servers: Stack, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """The session's S3 server; the buckets here are this module's own."""
    return stack_on(servers, tmp_path_factory.mktemp("object-lock"))


def store_for(stack: Stack, **overrides: object) -> ObjectStore:
    return ObjectStore(Settings.from_env(dict(stack.env), **overrides))


def versions(store: ObjectStore, bucket: str, key: str) -> list[str]:
    return [str(o.version_id) for o in store.client.list_objects(bucket, prefix=key, include_version=True)]


def test_retained_results_cannot_be_deleted_or_replaced(s3: Stack) -> None:
    store = store_for(s3, bucket_results="locked-results", results_retention_days=1,
                      results_retention_mode="COMPLIANCE")
    store.ensure_buckets()
    bucket = "locked-results"
    store.put_json(bucket, "alice/records/r1.json", {"record": 1}, retain=True)
    store.put_json(bucket, "alice/records/r1.json", {"record": "rewritten"}, retain=True)
    first, *_ = versions(store, bucket, "alice/records/r1.json")[::-1]
    assert len(versions(store, bucket, "alice/records/r1.json")) == 2  # a new version, the old one kept
    with pytest.raises(S3Error) as refused:
        store.client.remove_object(bucket, "alice/records/r1.json", version_id=first)
    assert refused.value.code == "AccessDenied"
    # Objects stored without retention (checkpoints, samples) stay deletable.
    store.put_bytes(bucket, "alice/job/artifacts/checkpoint.bin", b"x")
    version = versions(store, bucket, "alice/job/artifacts/checkpoint.bin")[0]
    store.client.remove_object(bucket, "alice/job/artifacts/checkpoint.bin", version_id=version)


def test_retention_on_a_bucket_without_object_lock_is_refused(s3: Stack) -> None:
    store_for(s3, bucket_results="plain-results").ensure_buckets()
    locked = store_for(s3, bucket_results="plain-results", results_retention_days=1)
    with pytest.raises(ObjectLockUnavailable, match="object lock"):
        locked.ensure_buckets()
    with pytest.raises(ObjectLockUnavailable, match="mode"):
        store_for(s3, bucket_results="locked-results", results_retention_days=1,
                  results_retention_mode="FOREVER").check_object_lock()
