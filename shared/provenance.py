"""The minimal provenance record stored as JSON next to every result.

Schema ``artforge.provenance/0``: who asked, what ran, on which inputs, what came out.
The full record (signatures, lineage, rights, C2PA) is a later version of this schema.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

SCHEMA = "artforge.provenance/0"
CODE_VERSION = "0.1.0"


def params_hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def minimal_record(
    *,
    job_id: str,
    tenant: str,
    key_id: str,
    kind: str,
    params: dict[str, Any],
    model: dict[str, Any],
    inputs: list[dict[str, Any]],
    output: dict[str, Any],
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "job_id": job_id,
        "operation": kind,
        "requester": {"tenant": tenant, "key_id": key_id},
        "params": params,
        "params_sha256": params_hash(params),
        "model": model,
        "code_version": CODE_VERSION,
        "inputs": inputs,
        "output": output,
        "ai_generated": True,
        "created_at": datetime.now(UTC).isoformat(),
    }
