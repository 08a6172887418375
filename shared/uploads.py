"""Upload records in Redis. The bytes live in the uploads bucket as a re-encoded PNG.

An upload may carry a rights declaration, made when it is uploaded: a licence and a rights
holder, or the requester's statement that they hold the rights. Style references and images
to restore must have one (``api.job_kinds``); it is copied into every provenance record that
uses the upload. The perceptual hashes are taken at upload time, so checking an input against
the protected works costs no image decoding at submit.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from shared.jobs import PREFIX


@dataclass(frozen=True)
class RightsDeclaration:
    licence: str | None = None  # an SPDX id, "proprietary", or the licence's name
    rights_holder: str | None = None
    requester_holds_rights: bool = False

    @property
    def complete(self) -> bool:
        """A licence and a rights holder, or the requester's own statement."""
        return self.requester_holds_rights or bool(self.licence and self.rights_holder)

    def public(self) -> dict[str, Any]:
        return {"licence": self.licence, "rights_holder": self.rights_holder,
                "requester_holds_rights": self.requester_holds_rights}


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
    perceptual: dict[str, str] = field(default_factory=dict)  # {"phash", "dhash"}; {} for older uploads
    rights: RightsDeclaration = field(default_factory=RightsDeclaration)
    declared_by: str = ""  # key id that made the rights declaration

    def public(self) -> dict[str, object]:
        return {"id": self.id, "sha256": self.sha256, "width": self.width, "height": self.height,
                "format": self.format, "bytes": self.bytes, "perceptual": dict(self.perceptual),
                "rights": self.rights.public()}


def new_upload_id() -> str:
    return uuid.uuid4().hex


def upload_object_key(tenant: str, upload_id: str) -> str:
    return f"{tenant}/{upload_id}.png"


def thumbnail_object_key(tenant: str, upload_id: str) -> str:
    """The upload's small JPEG, made from it when first asked for (``GET /v1/uploads/{id}/thumbnail``)."""
    return f"{tenant}/{upload_id}.thumbnail.jpg"


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
        if not raw:
            return None
        fields = json.loads(raw)
        fields["rights"] = RightsDeclaration(**(fields.get("rights") or {}))
        return Upload(**fields)

    def get_for_tenant(self, upload_id: str, tenant: str) -> Upload | None:
        """The upload if it belongs to ``tenant``; None for unknown and foreign ones alike."""
        upload = self.get(upload_id)
        return upload if upload is not None and upload.tenant == tenant else None

    @staticmethod
    def now() -> float:
        return time.time()
