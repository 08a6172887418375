"""Pipelines: plain functions (inputs, params, progress, cancel check) -> PipelineResult.

They know nothing of Celery, Redis or S3, so tests call them directly. Each job kind
registers its pipeline here by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image


class JobCanceled(Exception):
    """Raised by the cancel check; the job ends ``canceled``."""


class InvalidJobInput(Exception):
    """The request cannot be carried out; the job fails without another attempt."""

    def __init__(self, message: str, code: str = "invalid_input"):
        super().__init__(message)
        self.code = code


ProgressFn = Callable[[float, str, str], None]  # fraction, stage, message
CancelCheck = Callable[[], None]  # raises JobCanceled


@dataclass
class PipelineResult:
    images: list[Image.Image]
    # Facts for the provenance record: model name/version, effective parameters.
    metadata: dict[str, Any] = field(default_factory=dict)


class Pipeline(Protocol):
    def __call__(
        self,
        inputs: dict[str, Image.Image],
        params: dict[str, Any],
        progress: ProgressFn,
        check_cancel: CancelCheck,
    ) -> PipelineResult: ...


_PIPELINES: dict[str, Pipeline] = {}


def register_pipeline(kind: str) -> Callable[[Pipeline], Pipeline]:
    def decorate(fn: Pipeline) -> Pipeline:
        if kind in _PIPELINES:
            raise ValueError(f"pipeline for {kind!r} registered twice")
        _PIPELINES[kind] = fn
        return fn

    return decorate


def get_pipeline(kind: str) -> Pipeline:
    _load_all()
    return _PIPELINES[kind]


def list_pipelines() -> list[str]:
    _load_all()
    return sorted(_PIPELINES)


def _load_all() -> None:
    # Importing a pipeline module registers it; kept lazy so importing this package is cheap.
    from workers.pipelines import style  # noqa: F401
