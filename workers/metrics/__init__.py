"""Quality metrics for class-conditional image generators, one file per metric, in a registry.

Every registered metric has the same signature::

    metric(real_images, real_labels, fake_images, fake_labels, *, seed=0) -> dict[str, Any]

- ``real_images``, ``fake_images``: uint8 arrays [N, H, W, 3] of one size (32, 64 or 128 px).
  The real images should be held out from the generator's training data.
- ``real_labels``, ``fake_labels``: int arrays [N] of class indices in ``[0, n_classes)``; a fake
  image's label is the class it was generated for. A metric that ignores labels still takes them.
- ``seed``: all randomness of the metric; the same inputs and seed give the same result.
- The result is a JSON-serialisable dict of floats, ints and nested dicts of those.

Registered: ``"swd"`` (workers/metrics/swd.py) and ``"conditional_accuracy"``
(workers/metrics/conditional_accuracy.py).
"""

from __future__ import annotations

from workers.metrics.registry import Metric, registered_metrics


def get_metric(name: str) -> Metric:
    """The metric registered as ``name``; KeyError names the known metrics when it is unknown."""
    _load_all()
    metrics = registered_metrics()
    try:
        return metrics[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {sorted(metrics)}") from None


def list_metrics() -> list[str]:
    """Names of all registered metrics, sorted."""
    _load_all()
    return sorted(registered_metrics())


def _load_all() -> None:
    # Importing a metric module registers it; kept lazy so importing this package loads no torch.
    from workers.metrics import conditional_accuracy, swd  # noqa: F401
