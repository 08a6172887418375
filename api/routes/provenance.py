"""GET /v1/provenance/chain: does the caller's record chain still hold?

Every provenance record a tenant's jobs produced is chained to the one before it (hash links,
sequence numbers) and signed. This reads a window of the chain from S3, in log order, and checks
each record's hash and signature (against the trust anchors, by the certificate registered for
its key id), its link to the record before it and its place in the log, and at the end of the
chain that the head points at the last record. The first record that fails is reported.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask_smorest import Blueprint

from api.schemas import ChainCheckSchema, ChainQuerySchema
from api.services import Services, principal, services
from shared.objects import ObjectNotFound
from shared.provenance import chain_ok
from shared.provenance_index import RecordChain, SignerRegistry
from shared.signing import read_trust_anchors

blp = Blueprint("provenance", __name__, url_prefix="/v1/provenance", description="Provenance records")

FETCH_THREADS = 8


@blp.route("/chain", methods=["GET"])
@blp.arguments(ChainQuerySchema, location="query")
@blp.response(200, ChainCheckSchema)
def check_chain(query: dict[str, Any]) -> dict[str, Any]:
    who, svc = principal(), services()
    chain = RecordChain(svc.jobs.redis)
    length = chain.length(who.tenant)
    start = min(query["start"], length)
    # The record before the window comes too, so the window's first link is checked.
    first = max(start - 1, 0)
    keys = chain.record_keys(who.tenant, first, query["limit"] + (start - first)) if length else []
    records = read_records(svc, keys)
    anchors = read_trust_anchors(svc.settings)
    registry = SignerRegistry(svc.jobs.redis)
    end = first + len(keys)
    head = chain.head(who.tenant)
    answer: dict[str, Any] = {
        "tenant": who.tenant, "length": length, "checked": {"start": start, "end": end, "count": end - start},
        "next_start": end if end < length else None, "head": head,
        "signatures": "checked" if anchors else "unchecked",
    }
    breaks = first_break(records, first, keys, registry, anchors)
    if breaks is None and end == length and length and records[-1] is not None:
        if head is None or head.get("record_sha256") != records[-1].get("record_sha256"):
            breaks = describe(length - 1, records[-1], keys[-1], "the chain's head does not point at its last record")
    return {**answer, "ok": breaks is None, "first_break": breaks}


def read_records(svc: Services, keys: list[str]) -> list[dict[str, Any] | None]:
    def read(key: str) -> dict[str, Any] | None:
        try:
            document = json.loads(svc.objects.get_bytes(svc.settings.bucket_results, key))
        except (ObjectNotFound, ValueError):
            return None
        return document if isinstance(document, dict) else None

    if not keys:
        return []
    with ThreadPoolExecutor(max_workers=min(FETCH_THREADS, len(keys)), thread_name_prefix="chain") as pool:
        return list(pool.map(read, keys))


def first_break(records: list[dict[str, Any] | None], first: int, keys: list[str], registry: SignerRegistry,
                anchors: bytes) -> dict[str, Any] | None:
    for offset, record in enumerate(records):
        if record is None:
            return describe(first + offset, None, keys[offset], "the record is missing or unreadable")
        if record.get("sequence") != first + offset:
            return describe(first + offset, record, keys[offset], "the record is not at its place in the log")

    def signed(record: Mapping[str, Any]) -> bool:
        return registry.check(record, anchors) == "valid"

    present = [r for r in records if r is not None]
    check = chain_ok(present, verify=signed if anchors else None)
    if check:
        return None
    index = check.first_break or 0
    return describe(first + index, present[index], keys[index], check.reason)


def describe(sequence: int, record: Mapping[str, Any] | None, key: str, reason: str) -> dict[str, Any]:
    return {"sequence": sequence, "record_id": (record or {}).get("record_id"), "job_id": (record or {}).get("job_id"),
            "key": key, "reason": reason}
