"""Similar works: the nearest of the caller's own uploads and results to one of its uploads.

The search runs here, synchronously, over the tenant's works index (``shared.works_index``):
the workers put each work's style vector and pHash there as uploads and results arrive. An
upload too new to be indexed yet, or an index being rebuilt after a loss, is waited for up to
``WAIT_S``; after that the answer is 503 with Retry-After, never a 500.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from flask_smorest import Blueprint

from api.errors import ApiError, error_response
from api.schemas import SimilarWorksQuerySchema, SimilarWorksSchema
from api.services import principal, services
from shared.queue import enqueue_upload_indexing
from shared.works_index import WorkEntry, WorkRef, WorksIndex

WAIT_S = 20.0
POLL_S = 0.1

blp = Blueprint("works", __name__, url_prefix="/v1/works", description="Your uploads and results, by likeness")


@functools.cache
def _index(client: Any) -> WorksIndex:
    """One per process: it keeps each tenant's matrix and reads only what was added since."""
    return WorksIndex(client)


@blp.route("/similar", methods=["GET"])
@blp.arguments(SimilarWorksQuerySchema, location="query")
@blp.response(200, SimilarWorksSchema)
@blp.alt_response(404, description="no such upload of yours")
@blp.alt_response(503, description="the upload is not indexed yet (Retry-After)")
def similar_works(query: dict[str, Any]) -> Any:
    who, svc = principal(), services()
    upload = svc.uploads.get_for_tenant(query["upload"], who.tenant)
    if upload is None:
        raise ApiError(404, "not_found", f"no upload {query['upload']}")
    index, ref = _index(svc.jobs.redis), WorkRef("upload", upload.id)
    entry = _wait_for_entry(index, who.tenant, ref, svc)
    if entry is None:
        return error_response(503, "not_indexed_yet", f"upload {upload.id} is still being indexed; try again "
                              "shortly", headers={"Retry-After": "5"})
    works = index.similar(who.tenant, entry.embedding, entry.phash, query["k"], exclude=ref)
    return {"upload": upload.id, "k": query["k"], "indexed": index.count(who.tenant),
            "works": [work.to_dict() for work in works]}


def _wait_for_entry(index: WorksIndex, tenant: str, ref: WorkRef, svc: Any) -> WorkEntry | None:
    """The upload's entry in a usable index; where either is missing, a worker is asked to make it
    (which rebuilds a lost index first) and it is waited for."""
    asked = False
    deadline = time.monotonic() + WAIT_S
    while True:
        entry = index.get(tenant, ref) if index.is_built(tenant) else None
        if entry is not None:
            return entry
        if not asked:
            enqueue_upload_indexing(svc.celery, tenant, ref.id)
            asked = True
        if time.monotonic() > deadline:
            return None
        time.sleep(POLL_S)
