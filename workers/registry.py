"""The model registry, worker side: publish a trained version, load one for inference.

A tenant's weights are safetensors in the models bucket next to a JSON model card; the Redis index
(``shared.models``) is written last, so a version is visible only once it is durable. The shipped,
public models (``shared.builtin_models``) are read from the package itself. Loaded models are kept
in a small LRU per worker process, keyed by their identity (owner, name, version); a job that names
no version asks the index for the promoted one each time, so a newly promoted version is served
without a restart.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from safetensors.torch import load as load_safetensors

from shared.builtin_models import builtin_models
from shared.images import sha256_hex
from shared.models import (
    ModelCatalog,
    ModelCatalogs,
    ModelIndex,
    ModelRef,
    ResolvedModel,
    RetiredVersion,
    UnknownModel,
    card_key,
)
from shared.models import weights_key as stored_weights_key
from shared.objects import ObjectStore
from workers.job_context import InvalidJobInput

Build = Callable[[dict[str, Any], dict[str, Any]], Any]


class ModelRegistry:
    """Per process: S3 access and the LRU of built models, for every tenant."""

    def __init__(self, objects: ObjectStore, catalogs: ModelCatalogs, bucket: str, cache_size: int = 4):
        self.objects, self.catalogs, self.bucket = objects, catalogs, bucket
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def for_tenant(self, tenant: str) -> TenantModels:
        return TenantModels(self, self.catalogs.for_tenant(tenant))

    def weights(self, model: ResolvedModel) -> dict[str, Any]:
        """A version's tensors, checked against the sha256 its card records."""
        if model.public:
            weights = builtin_models()[model.name].weights()
        else:
            weights = self.objects.get_bytes(self.bucket, stored_weights_key(model.owner, model.name, model.version))
        if sha256_hex(weights) != model.card["weights_sha256"]:
            raise RuntimeError(f"weights of {model.identity} do not match their card")
        return dict(load_safetensors(weights))

    def load(self, model: ResolvedModel, build: Build) -> Any:
        """The model ``build(card, state_dict)`` made from a version's weights, cached (LRU)."""
        key = model.identity
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        built = build(model.card, self.weights(model))
        with self._lock:
            self._cache[key] = built
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return built


class TenantModels:
    """What a job's pipeline sees (``JobContext.models``): its tenant's own models and the public
    ones; publishing goes into the tenant's own index."""

    def __init__(self, registry: ModelRegistry, catalog: ModelCatalog):
        self.registry, self.catalog = registry, catalog

    @property
    def index(self) -> ModelIndex:
        """The tenant's own models (promotion, versions, history)."""
        return self.catalog.own

    def resolve(self, ref: str) -> ResolvedModel:
        """The model ``ref`` means now; a job pinned to a public version that is no longer served
        (queued before an upgrade) fails with ``model_version_retired``, never with other works."""
        try:
            return self.catalog.resolve(ModelRef.parse(ref))
        except RetiredVersion as exc:
            raise InvalidJobInput(str(exc), code="model_version_retired") from None

    def own(self, name: str, version: int) -> ResolvedModel:
        """One of the tenant's own versions."""
        card = self.index.card(name, version)
        if card is None:
            raise UnknownModel(f"{name}@{version}")
        return ResolvedModel(self.catalog.tenant, name, version, card)

    def weights(self, model: ResolvedModel) -> dict[str, Any]:
        return self.registry.weights(model)

    def load(self, model: ResolvedModel, build: Build) -> Any:
        return self.registry.load(model, build)

    def publish(self, name: str, weights: bytes, card: dict[str, Any]) -> tuple[int, bool]:
        """Store a new version of one of the tenant's models; returns (version, promoted). The
        first version is promoted."""
        owner, objects, bucket = self.catalog.tenant, self.registry.objects, self.registry.bucket
        version = self.index.reserve_version(name)
        card = {**card, "name": name, "version": version, "owner": owner, "weights_sha256": sha256_hex(weights),
                "created_at": card.get("created_at", time.time())}
        objects.put_bytes(bucket, stored_weights_key(owner, name, version), weights, "application/octet-stream")
        objects.put_json(bucket, card_key(owner, name, version), card)
        promoted = self.index.register(name, version, card)
        return version, promoted
