"""Pipelines: plain functions (inputs, params, progress, cancel check, context) -> PipelineResult.

They know nothing of Celery, Redis or S3, so tests call them directly: the context
(``workers.job_context``) gives them the device and a job-scoped workspace for artifacts
(checkpoints, sample grids), which the worker backs with S3 and tests with memory. ``params`` is
the kind's frozen dataclass from ``shared.job_params``. Each job kind's module registers its
pipeline (``workers.pipelines.registry``); ``tests/unit/test_job_kinds.py`` checks that every
kind has one.
"""

from __future__ import annotations

from workers.pipelines.registry import Pipeline, registered_pipelines


def get_pipeline(kind: str) -> Pipeline:
    _load_all()
    return registered_pipelines()[kind]


def list_pipelines() -> list[str]:
    _load_all()
    return sorted(registered_pipelines())


def _load_all() -> None:
    # Importing a pipeline module registers it; here, not at the top, so that importing one
    # pipeline (or this package) does not import them all. A new job kind adds its module here.
    from workers.pipelines import analysis, creation, restoration, style, training_jobs  # noqa: F401
