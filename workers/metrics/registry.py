"""The metric registry: ``register_metric`` fills it (each metric's module), ``workers.metrics``
reads it (``get_metric``, ``list_metrics``). Apart from the package, so a metric module that
registers itself imports this and not the package that imports it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np


class Metric(Protocol):
    def __call__(
        self,
        real_images: np.ndarray,
        real_labels: np.ndarray,
        fake_images: np.ndarray,
        fake_labels: np.ndarray,
        *,
        seed: int = 0,
    ) -> dict[str, Any]: ...


_METRICS: dict[str, Metric] = {}


def register_metric(name: str) -> Callable[[Metric], Metric]:
    """Decorator that registers a metric under ``name``; a name can be registered once."""

    def decorate(fn: Metric) -> Metric:
        if name in _METRICS:
            raise ValueError(f"metric {name!r} registered twice")
        _METRICS[name] = fn
        return fn

    return decorate


def registered_metrics() -> dict[str, Metric]:
    return dict(_METRICS)
