"""The model registry, worker side: publish a trained version, load one for inference.

Weights are safetensors in the models bucket next to a JSON model card; the Redis index
(shared.models) is written last, so a version is visible only once it is durable.
Loaded models are kept in a small LRU per worker process; a job that names no version
asks the index for the promoted one each time, so a newly promoted version is served
without a restart.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from safetensors.torch import load as load_safetensors

from shared.images import sha256_hex
from shared.models import ModelIndex, ModelRef, UnknownModel, card_key, weights_key
from shared.objects import ObjectStore


class ModelRegistry:
    def __init__(self, objects: ObjectStore, index: ModelIndex, bucket: str, cache_size: int = 4):
        self.objects, self.index, self.bucket = objects, index, bucket
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self._lock = threading.Lock()

    def publish(self, name: str, weights: bytes, card: dict[str, Any]) -> tuple[int, bool]:
        """Store a new version; returns (version, promoted). The first version is promoted."""
        version = self.index.reserve_version(name)
        card = {**card, "name": name, "version": version, "weights_sha256": sha256_hex(weights),
                "created_at": card.get("created_at", time.time())}
        self.objects.put_bytes(self.bucket, weights_key(name, version), weights, "application/octet-stream")
        self.objects.put_json(self.bucket, card_key(name, version), card)
        promoted = self.index.register(name, version, card)
        return version, promoted

    def resolve(self, ref: str) -> tuple[str, int, dict[str, Any]]:
        parsed = ModelRef.parse(ref)
        version, card = self.index.resolve(parsed)
        return parsed.name, version, card

    def weights(self, name: str, version: int) -> dict[str, Any]:
        """A version's tensors, checked against the sha256 its card records."""
        card = self.index.card(name, version)
        if card is None:
            raise UnknownModel(f"{name}@{version}")
        weights = self.objects.get_bytes(self.bucket, weights_key(name, version))
        if sha256_hex(weights) != card["weights_sha256"]:
            raise RuntimeError(f"weights of {name}@{version} do not match their card")
        return dict(load_safetensors(weights))

    def load(self, name: str, version: int, build: Callable[[dict[str, Any], dict[str, Any]], Any]) -> Any:
        """The model ``build(card, state_dict)`` made from a version's weights, cached (LRU)."""
        key = (name, version)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        state = self.weights(name, version)
        model = build(self.index.card(name, version) or {}, state)
        with self._lock:
            self._cache[key] = model
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return model
