"""Keeping each tenant's works index (``shared.works_index``) in step with its works in S3.

What is indexed: every upload, and every image result except an analysis' annotated picture (it
shows another work) and a restoration's damage mask (data, not a work). Uploads are indexed by a
task the API sends when they arrive, results by one sent when their job succeeds
(``workers.tasks``). The index is derived data: where it is missing (lost with Redis, or a new
tenant) the next indexing or search rebuilds it from the objects under the tenant's prefix in the
uploads and results buckets; an entry that cannot be read is made again from its object.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

from PIL import Image

from shared.images import decode_image
from shared.objects import ObjectNotFound
from shared.works_index import SimilarWork, WorkEntry, WorkRef, WorksIndex, phash_of
from workers.analysis.style import style_embedding
from workers.runtime import Runtime

log = logging.getLogger(__name__)

# Kinds and result roles that are not works of the tenant's own.
UNINDEXED_KINDS = frozenset({"analysis", "training"})
UNINDEXED_ROLES = frozenset({"mask", "annotated", "report", "sample_grid"})


def entry_of(ref: WorkRef, image: Image.Image, device: str = "cpu") -> WorkEntry:
    return WorkEntry(ref, style_embedding(image, device).astype("float32"), phash_of(image))


def works_index(rt: Runtime) -> WorksIndex:
    """One per Redis client and process, so each tenant's matrix is read once and then extended."""
    return _index_on(rt.jobs.redis)


@functools.cache
def _index_on(client: Any) -> WorksIndex:
    return WorksIndex(client)


def _upload_key(tenant: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(tenant)}/([0-9a-f]{{32}})\.png$")


def _result_key(tenant: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(tenant)}/([0-9a-f]{{32}})/(\d+)\.png$")


def _image(rt: Runtime, ref: WorkRef, tenant: str) -> Image.Image | None:
    """The work's stored image, or None where it is gone or no work of the tenant's."""
    if ref.kind == "upload":
        upload = rt.uploads.get_for_tenant(ref.id, tenant)
        key, bucket = (upload.key if upload else f"{tenant}/{ref.id}.png"), rt.settings.bucket_uploads
    else:
        key, bucket = f"{tenant}/{ref.id}/{ref.result}.png", rt.settings.bucket_results
    try:
        data = rt.objects.get_bytes(bucket, key)
    except ObjectNotFound:
        return None
    return decode_image(data, rt.settings.max_image_pixels).image


def index_work(rt: Runtime, tenant: str, ref: WorkRef) -> bool:
    """Index one work (rebuilding the tenant's index first where it is missing); False if it is gone."""
    index = works_index(rt)
    if not index.is_built(tenant):
        rebuild(rt, tenant)
        return index.has(tenant, ref)
    image = _image(rt, ref, tenant)
    if image is None:
        return False
    index.add(tenant, entry_of(ref, image, rt.settings.device))
    return True


def job_work_refs(job: Any) -> list[WorkRef]:
    """A finished job's results that are works of their own."""
    if job is None or job.kind in UNINDEXED_KINDS:
        return []
    return [WorkRef("result", job.id, int(r["index"])) for r in job.results
            if (r.get("content_type") or "image/png") == "image/png" and r.get("role", "result") not in UNINDEXED_ROLES]


def index_job_results(rt: Runtime, job_id: str) -> int:
    job = rt.jobs.get(job_id)
    refs = job_work_refs(job)
    return sum(index_work(rt, job.tenant, ref) for ref in refs) if job is not None else 0


def rebuild(rt: Runtime, tenant: str) -> int:
    """The tenant's index made again from every work of it in S3; returns how many it holds."""
    index = works_index(rt)
    index.start_rebuild(tenant)
    refs: list[WorkRef] = []
    uploads = _upload_key(tenant)
    for key in rt.objects.list_keys(rt.settings.bucket_uploads, f"{tenant}/"):
        found = uploads.match(key)
        if found:
            refs.append(WorkRef("upload", found.group(1)))
    results = _result_key(tenant)
    jobs: dict[str, list[WorkRef] | None] = {}
    for key in rt.objects.list_keys(rt.settings.bucket_results, f"{tenant}/"):
        found = results.match(key)
        if not found:
            continue
        job_id, result = found.group(1), int(found.group(2))
        if job_id not in jobs:
            job = rt.jobs.get_for_tenant(job_id, tenant)
            jobs[job_id] = job_work_refs(job) if job is not None else None
        known = jobs[job_id]
        ref = WorkRef("result", job_id, result)
        if known is None or ref in known:  # a job record past retention: its image is still a work
            refs.append(ref)
    for ref in refs:
        image = _image(rt, ref, tenant)
        if image is not None:
            index.add(tenant, entry_of(ref, image, rt.settings.device))
    index.mark_built(tenant)
    log.info("works index of tenant %s rebuilt from S3: %d works", tenant, index.count(tenant))
    return index.count(tenant)


def repair(rt: Runtime, tenant: str) -> None:
    """A usable index: rebuilt where lost, its unreadable entries made again."""
    index = works_index(rt)
    if not index.is_built(tenant):
        rebuild(rt, tenant)
    for text in index.corrupt(tenant):
        ref = WorkRef.parse(text)
        image = _image(rt, ref, tenant)
        if image is None:
            index.drop(tenant, ref)
        else:
            index.add(tenant, entry_of(ref, image, rt.settings.device))


class IndexedWorks:
    """A job's view of its tenant's works (``JobContext.works``): the analysed work itself is left out."""

    def __init__(self, rt: Runtime, tenant: str, itself: WorkRef | None):
        self.rt, self.tenant, self.itself = rt, tenant, itself
        self.index = works_index(rt)

    def similar(self, image: Image.Image, embedding: Any, k: int) -> list[SimilarWork]:
        repair(self.rt, self.tenant)
        return self.index.similar(self.tenant, embedding, phash_of(image), k, exclude=self.itself)
