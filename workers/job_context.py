"""What a running job hands its pipeline besides inputs and params: progress and cancel
callbacks, and a context (device, artifact workspace, models, datasets). Plain types with no
Celery, Redis or S3 in them, so pipelines, data loaders and tests share them without importing
each other."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


class JobCanceled(Exception):
    """Raised by the cancel check; the job ends ``canceled``."""


class InvalidJobInput(Exception):
    """The request cannot be carried out; the job fails without another attempt."""

    def __init__(self, message: str, code: str = "invalid_input"):
        super().__init__(message)
        self.code = code


ProgressFn = Callable[[float, str, str], None]  # fraction, stage, message
CancelCheck = Callable[[], None]  # raises JobCanceled


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
    # The tenant's indexed works: similar(image, style vector, k) -> [shared.works_index.SimilarWork]
    # (workers.works_indexing.IndexedWorks); None where there is no index (a local run).
    works: Any = None

    @classmethod
    def local(cls, device: str = "cpu", models: Any = None, datasets: Any = None, works: Any = None) -> JobContext:
        return cls(job_id="local", device=device, workspace=MemoryWorkspace(), models=models, datasets=datasets,
                   works=works)
