"""Upload records in Redis. The bytes live in the uploads bucket as a re-encoded PNG."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass

import redis

from shared.jobs import PREFIX


@dataclass(frozen=True)
class Upload:
    id: str
    tenant: str
    sha256: str  # of the bytes the client sent
    width: int
    height: int
    format: str  # the format the client sent
    bytes: int
    key: str  # object key of the normalised PNG in the uploads bucket
    created_at: float

    def public(self) -> dict[str, object]:
        return {"id": self.id, "sha256": self.sha256, "width": self.width, "height": self.height,
                "format": self.format, "bytes": self.bytes}


def new_upload_id() -> str:
    return uuid.uuid4().hex


def upload_object_key(tenant: str, upload_id: str) -> str:
    return f"{tenant}/{upload_id}.png"


class UploadStore:
    def __init__(self, client: redis.Redis):
        self.redis = client

    @staticmethod
    def _key(upload_id: str) -> str:
        return f"{PREFIX}upload:{upload_id}"

    def save(self, upload: Upload) -> None:
        self.redis.set(self._key(upload.id), json.dumps(asdict(upload)))

    def get(self, upload_id: str) -> Upload | None:
        raw = self.redis.get(self._key(upload_id))
        return Upload(**json.loads(raw)) if raw else None

    def get_for_tenant(self, upload_id: str, tenant: str) -> Upload | None:
        """The upload if it belongs to ``tenant``; None for unknown and foreign ones alike."""
        upload = self.get(upload_id)
        return upload if upload is not None and upload.tenant == tenant else None

    @staticmethod
    def now() -> float:
        return time.time()
