"""The public models that ship inside the package: trained by the project's own code
(``make models``: ``workers.training.default_models``), read-only, pinned to one version, usable
by every tenant. A tenant's own model of the same name takes precedence for that tenant.

Each lives in ``shared/assets/models/<name>/`` as ``weights.safetensors`` and ``card.json``; the
card says which version it is. Reading a card needs no torch, so the API lists and validates
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
