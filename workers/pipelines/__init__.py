"""Pipelines: plain functions (inputs, params, progress, cancel check, context) -> PipelineResult.

They know nothing of Celery, Redis or S3, so tests call them directly: the context gives
them the device and a job-scoped workspace for artifacts (checkpoints, sample grids),
which the worker backs with S3 and tests with memory. Each job kind registers its
pipeline here by name.
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


class Workspace(Protocol):
    """Job-scoped artifact storage. Names are stable, so a re-run overwrites, not adds."""

    def save(self, name: str, data: bytes, content_type: str, listed: bool = True) -> None: ...

    def load(self, name: str) -> bytes | None: ...


class MemoryWorkspace:
    """A workspace in a dict: for dry runs, benches and pipeline tests."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str, bool]] = {}

    def save(self, name: str, data: bytes, content_type: str, listed: bool = True) -> None:
        self.files[name] = (data, content_type, listed)

    def load(self, name: str) -> bytes | None:
        found = self.files.get(name)
        return found[0] if found else None


@dataclass(frozen=True)
class JobContext:
    job_id: str
    device: str  # "auto", "cpu" or "cuda"
    workspace: Workspace
    # The model registry, for pipelines that load or publish models (None where unused).
    models: Any = None
    # The tenant's datasets: manifest(id) -> dict and image(id, key) -> PNG bytes.
    datasets: Any = None

    @classmethod
    def local(cls, device: str = "cpu", models: Any = None, datasets: Any = None) -> JobContext:
        return cls(job_id="local", device=device, workspace=MemoryWorkspace(), models=models, datasets=datasets)


class Pipeline(Protocol):
    def __call__(
        self,
        inputs: dict[str, Image.Image],
        params: dict[str, Any],
        progress: ProgressFn,
        check_cancel: CancelCheck,
        ctx: JobContext,
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
    from workers.pipelines import creation, restoration, style, training  # noqa: F401
