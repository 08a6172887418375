"""The public models that ship inside the package: trained by the project's own code
(``make models``: ``workers.training.default_models``), read-only, pinned to one version, usable
by every tenant. A tenant's own model of the same name takes precedence for that tenant.

Each lives in ``shared/assets/models/<name>/`` as ``weights.safetensors`` and ``card.json``; the
card says which version it is. A version names one set of weights: ``releases.json`` lists every
version that ever shipped with its weights' sha256, and ``make models`` gives new weights the
next version (``release_version``). So a job pinned to ``public/abstract@3`` either gets the works
version 3 drew, or, once version 3 is no longer shipped, the error ``model_version_retired``;
never other works under the same pin. Reading a card needs no torch, so the API lists and validates
them as the workers do.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

BUILTIN_MODELS_DIR = Path(__file__).parent / "assets" / "models"
RELEASES_PATH = BUILTIN_MODELS_DIR / "releases.json"


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    version: int
    card: dict[str, Any]
    weights_path: Path

    def weights(self) -> bytes:
        return self.weights_path.read_bytes()


@lru_cache(maxsize=1)
def builtin_models() -> dict[str, BuiltinModel]:
    """Every shipped model by name (empty before ``make models`` has written any)."""
    models = {}
    for folder in sorted(BUILTIN_MODELS_DIR.glob("*/")) if BUILTIN_MODELS_DIR.exists() else []:
        card_path, weights_path = folder / "card.json", folder / "weights.safetensors"
        if not (card_path.exists() and weights_path.exists()):
            continue
        card = json.loads(card_path.read_text())
        sha = hashlib.sha256(weights_path.read_bytes()).hexdigest()
        card = {**card, "public": True, "read_only": True, "weights_sha256": sha}
        models[card["name"]] = BuiltinModel(card["name"], int(card["version"]), card, weights_path)
    return models


def releases(path: Path = RELEASES_PATH) -> dict[str, list[dict[str, Any]]]:
    """Every version of every shipped model, oldest first: version, weights_sha256, released,
    summary."""
    return json.loads(path.read_text()) if path.exists() else {}


def release_version(name: str, weights_sha256: str, summary: str, released: str,
                    path: Path = RELEASES_PATH) -> int:
    """The version of ``name`` whose weights have this sha256; weights never shipped before
    become the next version, recorded in ``path``."""
    ledger = releases(path)
    history = ledger.setdefault(name, [])
    for release in history:
        if release["weights_sha256"] == weights_sha256:
            return int(release["version"])
    version = max((int(release["version"]) for release in history), default=0) + 1
    history.append({"version": version, "weights_sha256": weights_sha256, "released": released, "summary": summary})
    path.write_text("{\n" + ",\n".join(
        f" {json.dumps(model)}: [\n" + ",\n".join("  " + json.dumps(entry, ensure_ascii=False) for entry in entries)
        + "\n ]" for model, entries in ledger.items()) + "\n}\n")
    return version
